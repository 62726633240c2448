using System.Net.Http.Json;
using System.Text.Json;
using GoblinAspire.ModelRegistry;
using GoblinAspire.Testing;

namespace GoblinAspire.TrainingWorker.Tests;

/// <summary>A real registry and training database for one test class, and workers started against them on demand.</summary>
public sealed class TrainingPlatform : IAsyncDisposable
{
    public const string SigningSecret = "training-tests-signing-secret-0123456789abcdef";
    private readonly List<IAsyncDisposable> _owned = [];

    private TrainingPlatform(PlatformServers servers, string trainingDatabase, TestWebHost registry)
    {
        Servers = servers;
        TrainingDatabase = trainingDatabase;
        Registry = registry;
    }

    public PlatformServers Servers { get; }

    public string TrainingDatabase { get; }

    public TestWebHost Registry { get; }

    /// <summary>The example trainer's entry point, copied beside the tests by the project reference.</summary>
    public static string TrainerPath { get; } = Path.Combine(AppContext.BaseDirectory, "GoblinAspire.ExampleTrainer.dll");

    public static async Task<TrainingPlatform> StartAsync(PlatformServers servers, IReadOnlyDictionary<string, string?>? registrySettings = null)
    {
        ArgumentNullException.ThrowIfNull(servers);
        var registryDatabase = await servers.Postgres.CreateDatabaseAsync("registry");
        var trainingDatabase = await servers.Postgres.CreateDatabaseAsync("training");
        var registry = await TestWebHost.StartAsync(ModelRegistryApp.Build([], builder => TestWebHost.Configure(builder, new Dictionary<string, string?>
        {
            ["ConnectionStrings__registrydb"] = registryDatabase,
            ["ModelRegistry__ArtifactRoot"] = Directory.CreateTempSubdirectory("goblin-training-artifacts-").FullName,
            ["ModelRegistry__Storage__SigningSecret"] = SigningSecret,
            ["Logging__LogLevel__Default"] = "Warning",
        }.Concat(registrySettings ?? new Dictionary<string, string?>()).ToDictionary())));
        return new TrainingPlatform(servers, trainingDatabase, registry);
    }

    /// <summary>
    /// The settings a worker gets from the AppHost, with short intervals. The lease is long enough that a loaded CI
    /// machine never loses one by accident; tests about expiry shorten it.
    /// </summary>
    public Dictionary<string, string?> WorkerSettings(IReadOnlyDictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ConnectionStrings__trainingdb"] = TrainingDatabase,
            ["services__modelregistry__http__0"] = Registry.BaseAddress.AbsoluteUri.TrimEnd('/'),
            ["TrainingWorker__RegistryUrl"] = Registry.BaseAddress.AbsoluteUri,
            ["TrainingWorker__LeaseDuration"] = "00:00:10",
            ["TrainingWorker__HeartbeatInterval"] = "00:00:00.500",
            ["TrainingWorker__RescueInterval"] = "00:00:00.500",
            ["TrainingWorker__PollInterval"] = "00:00:00.500",
            ["TrainingWorker__RetryBaseDelay"] = "00:00:00.100",
            ["TrainingWorker__RetryMaxDelay"] = "00:00:00.500",
            ["TrainingWorker__StopGracePeriod"] = "00:00:02",
            ["TrainingWorker__WorkDirectory"] = Directory.CreateTempSubdirectory("goblin-jobs-").FullName,
            ["Logging__LogLevel__Default"] = "Warning",
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return settings;
    }

    public async Task<TestWebHost> StartWorkerAsync(IReadOnlyDictionary<string, string?>? extra = null)
    {
        var worker = await TestWebHost.StartAsync(TrainingWorkerApp.Build([], builder => TestWebHost.Configure(builder, WorkerSettings(extra))));
        _owned.Add(worker);
        return worker;
    }

    public static async Task<JsonElement> SubmitAsync(HttpClient client, object spec)
    {
        ArgumentNullException.ThrowIfNull(client);
        using var response = await client.PostAsJsonAsync("/jobs", spec);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(response.IsSuccessStatusCode, $"submit answered {(int)response.StatusCode}: {body}");
        return body;
    }

    public static async Task<JsonElement> GetJobAsync(HttpClient client, string id)
    {
        ArgumentNullException.ThrowIfNull(client);
        return await client.GetFromJsonAsync<JsonElement>($"/jobs/{id}");
    }

    /// <summary>Waits until the job reaches one of <paramref name="states"/>, and returns it.</summary>
    public static async Task<JsonElement> WaitForStateAsync(HttpClient client, string id, TimeSpan timeout, params string[] states)
    {
        JsonElement job = default;
        await Eventually.HoldsAsync(async () =>
        {
            job = await GetJobAsync(client, id);
            return states.Contains(job.GetProperty("state").GetString());
        }, timeout, $"job {id} reaches {string.Join("/", states)}");
        return job;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var owned in Enumerable.Reverse(_owned))
        {
            await owned.DisposeAsync();
        }

        await Registry.DisposeAsync();
    }
}
