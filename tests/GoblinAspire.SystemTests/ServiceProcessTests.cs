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
        var environment = await AppHostEnvironmentAsync(service);
        var secrets = PlatformTopology.For(service).RequiredSecrets.Select(s => environment[s.Variable]).ToList();
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

    private async Task<Dictionary<string, string>> AppHostEnvironmentAsync(string service)
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
            _ => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24)));
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
