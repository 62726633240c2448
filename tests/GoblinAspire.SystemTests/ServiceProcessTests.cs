using System.Net;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.LocalHost;
using GoblinAspire.Testing;

namespace GoblinAspire.SystemTests;

/// <summary>
/// Each service as its own process with nothing but the environment the AppHost gives it: connection strings and
/// endpoints in Aspire's formats, HTTP_PORTS, OTEL_SERVICE_NAME.
/// </summary>
[Collection(PlatformServers.Collection)]
public sealed class ServiceProcessTests(PlatformServers servers)
{
    public static TheoryData<string> Services => new(PlatformResources.Services);

    [Theory]
    [MemberData(nameof(Services))]
    public async Task Service_runs_unchanged_on_the_apphost_environment(string service)
    {
        // Every secret parameter given, the optional ones too: each service must start with every feature turned on.
        var environment = await AppHostEnvironmentAsync(service);
        var secrets = PlatformTopology.For(service).SecretParameters.Select(s => environment[s.Variable]).ToList();
        await using var process = ServiceProcess.Start(ProjectOf(service), environment);
        await process.WaitForHealthyAsync(TimeSpan.FromSeconds(60));

        using var client = new HttpClient { BaseAddress = process.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/alive")).StatusCode);
        var metrics = await client.GetStringAsync("/metrics");
        Assert.Contains("# TYPE", metrics, StringComparison.Ordinal);
        foreach (var line in process.Output)
        {
            Assert.DoesNotContain(servers.Postgres.Password, line, StringComparison.Ordinal);
            Assert.DoesNotContain(servers.Redis.Password, line, StringComparison.Ordinal);
            Assert.All(secrets, secret => Assert.DoesNotContain(secret, line, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Optional_secrets_turn_their_features_on_and_stay_off_without_them()
    {
        var worker = await AppHostEnvironmentAsync(PlatformResources.TrainingWorker);
        var gateway = await AppHostEnvironmentAsync(PlatformResources.Gateway);
        var registry = await AppHostEnvironmentAsync(PlatformResources.ModelRegistry);
        await using (var withKeys = ServiceProcess.Start("TrainingWorker", worker))
        await using (var withProvider = ServiceProcess.Start("Gateway", gateway))
        await using (var encrypted = ServiceProcess.Start("ModelRegistry", registry))
        {
            await Task.WhenAll(withKeys.WaitForHealthyAsync(TimeSpan.FromSeconds(60)), withProvider.WaitForHealthyAsync(TimeSpan.FromSeconds(60)), encrypted.WaitForHealthyAsync(TimeSpan.FromSeconds(60)));
            Assert.DoesNotContain("executor", await RentedJobProblemsAsync(withKeys, "vastai"));
            Assert.DoesNotContain("executor", await RentedJobProblemsAsync(withKeys, "runpod"));

            using var client = new HttpClient { BaseAddress = withProvider.BaseAddress };
            var providers = await client.GetStringAsync("/providers");
            Assert.Contains("\"openai\"", providers, StringComparison.Ordinal);
            Assert.Contains("\"chatfallback\"", providers, StringComparison.Ordinal);

            using var registryClient = new HttpClient { BaseAddress = encrypted.BaseAddress };
            using var stored = await registryClient.PutAsync("/api/2.0/mlflow-artifacts/artifacts/probe/file.bin", new ByteArrayContent("weights"u8.ToArray()));
            Assert.Equal(HttpStatusCode.OK, stored.StatusCode);
            var record = await registryClient.GetStringAsync($"/storage/v1/b/{PlatformResources.ArtifactBucket}/o/probe%2Ffile.bin");
            Assert.Contains("\"kmsKeyName\"", record, StringComparison.Ordinal);
        }

        // The same environments without the optional secrets (and the settings that come with them).
        await using var bare = ServiceProcess.Start("TrainingWorker", await AppHostEnvironmentAsync(PlatformResources.TrainingWorker, optional: false));
        await bare.WaitForHealthyAsync(TimeSpan.FromSeconds(60));
        Assert.Contains("executor", await RentedJobProblemsAsync(bare, "vastai"));
        Assert.Contains("executor", await RentedJobProblemsAsync(bare, "runpod"));
        Assert.DoesNotContain(AppHostEnvironment.For(PlatformTopology.For(PlatformResources.Gateway), "g", _ => "", "", _ => new Uri("http://x"), s => s.Optional ? null : "k").Keys, k => k.StartsWith("Gateway__Providers__", StringComparison.Ordinal));
    }

    /// <summary>The fields a rented-GPU job spec without an image is refused for (nothing is rented: it never queues).</summary>
    private static async Task<IReadOnlyList<string>> RentedJobProblemsAsync(ServiceInstance worker, string executor)
    {
        using var client = new HttpClient { BaseAddress = worker.BaseAddress };
        using var response = await client.PostAsync("/jobs", new StringContent($$"""{"name":"probe","executor":"{{executor}}"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var problem = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var fields = problem.RootElement.GetProperty("errors").EnumerateObject().Select(p => p.Name).ToList();
        Assert.Contains("image", fields);
        return fields;
    }

    [Fact]
    public async Task Invalid_configuration_stops_the_start_with_one_clear_line()
    {
        var environment = await AppHostEnvironmentAsync(PlatformResources.Gateway);
        var bad = new Dictionary<string, string>(environment) { ["Gateway__MaxRequestBodyBytes"] = "7" };
        await using var process = ServiceProcess.Start("Gateway", bad);

        var exitCode = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(2, exitCode);
        var errors = process.StandardError.Where(l => l.Length > 0).ToList();
        var line = Assert.Single(errors);
        Assert.StartsWith("GoblinAspire.Gateway: invalid configuration:", line, StringComparison.Ordinal);
        Assert.Contains("MaxRequestBodyBytes", line, StringComparison.Ordinal);
    }

    private async Task<Dictionary<string, string>> AppHostEnvironmentAsync(string service, bool optional = true)
    {
        var wiring = PlatformTopology.For(service);
        var databases = new Dictionary<string, string>();
        foreach (var database in wiring.Databases)
        {
            databases[database] = await servers.Postgres.CreateDatabaseAsync(database);
        }

        return AppHostEnvironment.For(
            wiring,
            service,
            database => databases[database],
            servers.Redis.ConnectionString,
            // Nothing listens there: a service must start even while the services it calls are still coming up.
            _ => new Uri($"http://127.0.0.1:{FreePort.Next()}"),
            // Base64 of 32 random bytes suits every secret: API keys, the signing key and AES-256 keys alike.
            secret => secret.Optional && !optional ? null : Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
    }

    private static string ProjectOf(string service) => service switch
    {
        PlatformResources.Gateway => "Gateway",
        PlatformResources.ModelRegistry => "ModelRegistry",
        PlatformResources.TrainingWorker => "TrainingWorker",
        PlatformResources.ChatFallback => "ChatFallback",
        _ => throw new ArgumentOutOfRangeException(nameof(service)),
    };
}
