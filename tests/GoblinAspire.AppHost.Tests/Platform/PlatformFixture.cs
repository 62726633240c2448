using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.AppHost.Tests.Platform;

/// <summary>The whole-platform classes run one after another: each starts the AppHost, and a 2-core machine runs one such platform well.</summary>
[CollectionDefinition(Name)]
public sealed class WholePlatformCollection
{
    public const string Name = "whole platform";
}

/// <summary>
/// The AppHost itself, started through <see cref="DistributedApplicationTestingBuilder"/> with the machine's own Redis
/// and PostgreSQL (no container runtime here), in a throwaway data folder, every secret parameter given. Disposing
/// stops the platform and checks that no server outlived it.
/// </summary>
public class PlatformFixture : IAsyncLifetime
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(4);

    private readonly ConcurrentQueue<string> _output = new();
    private readonly CancellationTokenSource _stopping = new();

    public string DataDirectory { get; } = TestParameters.DataDirectory();

    public Dictionary<string, string> Parameters { get; } = TestParameters.All();

    public DistributedApplication App { get; private set; } = null!;

    public string AdminKey => Parameters[PlatformSecrets.GatewayAdminKey.Parameter];

    public string DevelopmentKey => Operations.GatewayOperations.DevelopmentKey(Parameters["gateway-development-key"]);

    /// <summary>What the resources logged, for failure messages.</summary>
    public string Output => string.Join('\n', _output.TakeLast(300));

    protected virtual bool EnableDashboard => false;

    public virtual async Task InitializeAsync()
    {
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.GoblinAspire_AppHost>(
            new DistributedApplicationTestingBuilderOptions { EnableDashboard = EnableDashboard },
            [.. TestParameters.Arguments(DataDirectory, Parameters)]);
        appHost.Services.AddLogging(logging => logging.AddProvider(new QueueLoggerProvider(_output)));
        Configure(appHost);
        App = await appHost.BuildAsync();
        using var timeout = new CancellationTokenSource(StartTimeout);
        await App.StartAsync(timeout.Token);
        foreach (var service in PlatformResources.Services)
        {
            await App.ResourceNotifications.WaitForResourceHealthyAsync(service, timeout.Token);
        }
    }

    public virtual async Task DisposeAsync()
    {
        await _stopping.CancelAsync();
        if (App is not null)
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }

        var left = await LeftoverServers.WaitForNoneAsync(DataDirectory, TimeSpan.FromSeconds(30), Parameters["postgres-password"]);
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        Assert.True(left.Count == 0, $"processes outlived the AppHost: {string.Join(", ", left)}");
    }

    /// <summary>Settings a test class adds on top of the AppHost's wiring, e.g. shorter poll intervals.</summary>
    protected virtual void Configure(IDistributedApplicationTestingBuilder appHost)
    {
    }

    /// <summary>A client of the service, with its own token where it has one (the registry's, the worker's) unless given one.</summary>
    public HttpClient Client(string service, string? bearer = null)
    {
        var client = App.CreateHttpClient(service, PlatformResources.HttpEndpoint);
        client.Timeout = TimeSpan.FromSeconds(60);
        bearer ??= service switch
        {
            PlatformResources.ModelRegistry => Parameters[PlatformSecrets.RegistryToken.Parameter],
            PlatformResources.TrainingWorker => Parameters[PlatformSecrets.WorkerToken.Parameter],
            _ => null,
        };
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return client;
    }

    /// <summary>One client per running replica of <paramref name="service"/>, each straight to that replica's own port.</summary>
    public async Task<IReadOnlyList<HttpClient>> ReplicaClientsAsync(string service, string? bearer = null)
    {
        var replicas = new List<HttpClient>();
        foreach (var replica in await ReplicasAsync(service))
        {
            var urls = replica.Snapshot.EnvironmentVariables.First(v => v.Name == "ASPNETCORE_URLS").Value!;
            var client = new HttpClient { BaseAddress = new Uri(urls.Split(';')[0]), Timeout = TimeSpan.FromSeconds(60) };
            if (bearer is not null)
            {
                client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
            }

            replicas.Add(client);
        }

        return replicas;
    }

    /// <summary>The latest event of each instance of <paramref name="resource"/> (one per replica).</summary>
    public async Task<IReadOnlyList<ResourceEvent>> ReplicasAsync(string resource)
    {
        var latest = new Dictionary<string, ResourceEvent>(StringComparer.Ordinal);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await foreach (var e in App.ResourceNotifications.WatchAsync(cts.Token))
            {
                if (e.Resource.Name == resource)
                {
                    latest[e.ResourceId] = e;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        return [.. latest.Values.OrderBy(e => e.ResourceId, StringComparer.Ordinal)];
    }

    public HttpClient AdminClient() => Client(PlatformResources.Gateway, AdminKey);

    /// <summary>A virtual key made through the gateway's admin API.</summary>
    public async Task<string> CreateKeyAsync(int? rpm = null)
    {
        using var admin = AdminClient();
        using var response = await admin.PostAsync("/admin/keys", Json(JsonSerializer.Serialize(new { name = $"test-{Guid.NewGuid():N}", team = "tests", rpm })));
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode} {body}");
        return body.GetProperty("key").GetString()!;
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private sealed class QueueLoggerProvider(ConcurrentQueue<string> output) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new QueueLogger(categoryName, output);

        public void Dispose()
        {
        }
    }

    private sealed class QueueLogger(string category, ConcurrentQueue<string> output) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            output.Enqueue($"[{category.Replace("GoblinAspire.AppHost.Resources.", "", StringComparison.Ordinal)}] {formatter(state, exception)}");
            while (output.Count > 2000)
            {
                output.TryDequeue(out _);
            }
        }
    }
}
