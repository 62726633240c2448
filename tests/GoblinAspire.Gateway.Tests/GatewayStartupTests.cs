using System.Net;
using GoblinAspire.Gateway.Hosting;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Tests;

[Collection(PlatformServers.Collection)]
public sealed class GatewayStartupTests(PlatformServers servers)
{
    [Fact]
    public async Task Starts_with_aspire_connection_strings_and_reports_redis_and_postgres_in_health()
    {
        var database = await servers.Postgres.CreateDatabaseAsync("gateway");
        var app = GatewayApp.Build([], builder => TestWebHost.Configure(builder, new Dictionary<string, string?>
        {
            ["ConnectionStrings__redis"] = servers.Redis.ConnectionString,
            ["ConnectionStrings__gatewaydb"] = database,
        }));
        await using var host = await TestWebHost.StartAsync(app);

        // Readiness: healthy once the first connections are open, which under a loaded CI machine can take a moment.
        await Eventually.HoldsAsync(async () => (await host.Client.GetAsync("/health")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "healthy");
        using var health = await host.Client.GetAsync("/health");
        var body = await health.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Contains("\"redis\"", body, StringComparison.Ordinal);
        Assert.Contains("\"gatewaydb\"", body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/alive")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/metrics")).StatusCode);
    }

    [Fact]
    public void An_out_of_range_body_limit_is_rejected_at_start()
    {
        var app = GatewayApp.Build([], builder => TestWebHost.Configure(builder, new Dictionary<string, string?>
        {
            ["ConnectionStrings__redis"] = servers.Redis.ConnectionString,
            ["ConnectionStrings__gatewaydb"] = servers.Postgres.ConnectionString(),
            ["Gateway__MaxRequestBodyBytes"] = "12",
        }));
        var error = Assert.Throws<OptionsValidationException>(() => app.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("MaxRequestBodyBytes", error.Message, StringComparison.Ordinal);
    }

    /// <summary>As a process with Aspire's environment: exit code 2 and one line naming the bad value, no stack trace.</summary>
    [Fact]
    public async Task Invalid_configuration_stops_the_process_with_one_clear_line()
    {
        await using var process = ServiceProcess.Start("Gateway", new Dictionary<string, string>
        {
            ["ConnectionStrings__redis"] = servers.Redis.ConnectionString,
            ["ConnectionStrings__gatewaydb"] = servers.Postgres.ConnectionString(),
            ["services__chatfallback__http__0"] = "http://127.0.0.1:9",
            ["Gateway__MaxRequestBodyBytes"] = "7",
        });

        Assert.Equal(2, await process.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var line = Assert.Single(process.StandardError, l => l.Length > 0);
        Assert.StartsWith("GoblinAspire.Gateway: invalid configuration:", line, StringComparison.Ordinal);
        Assert.Contains("MaxRequestBodyBytes", line, StringComparison.Ordinal);
    }

    /// <summary>Started from another folder, the gateway still reads its own appsettings.json (it once aborted, exit 134).</summary>
    [Fact]
    public async Task Started_from_another_folder_it_reads_its_own_settings()
    {
        await using var process = ServiceProcess.Start("Gateway", new Dictionary<string, string>
        {
            ["ConnectionStrings__redis"] = servers.Redis.ConnectionString,
            ["ConnectionStrings__gatewaydb"] = servers.Postgres.ConnectionString(),
            ["services__chatfallback__http__0"] = "http://127.0.0.1:9",
        }, workingDirectory: Path.GetTempPath());
        await process.WaitForHealthyAsync(TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = process.BaseAddress };
        Assert.Contains("\"chatfallback\"", await client.GetStringAsync("/providers"), StringComparison.Ordinal);
    }
}
