using System.Net;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GoblinAspire.TrainingWorker.Tests;

[Collection(PlatformServers.Collection)]
public sealed class TrainingWorkerStartupTests(PlatformServers servers)
{
    [Fact]
    public async Task Starts_with_an_aspire_connection_string_and_reports_postgres_in_health()
    {
        var database = await servers.Postgres.CreateDatabaseAsync("training");
        var app = TrainingWorkerApp.Build([], builder => TestWebHost.Configure(builder, new Dictionary<string, string?>
        {
            ["ConnectionStrings__trainingdb"] = database,
        }));
        await using var host = await TestWebHost.StartAsync(app);

        // Readiness: healthy once the first connections are open, which under a loaded CI machine can take a moment.
        await Eventually.HoldsAsync(async () => (await host.Client.GetAsync("/health")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "healthy");
        using var health = await host.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Contains("\"trainingdb\"", await health.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_heartbeat_no_shorter_than_the_lease_and_an_unknown_queue_are_both_reported()
    {
        var app = TrainingWorkerApp.Build([], builder => TestWebHost.Configure(builder, new Dictionary<string, string?>
        {
            ["ConnectionStrings__trainingdb"] = servers.Postgres.ConnectionString(),
            ["TrainingWorker__LeaseDuration"] = "00:00:05",
            ["TrainingWorker__HeartbeatInterval"] = "00:00:05",
            ["TrainingWorker__QueueConcurrency__gpu_party"] = "3",
        }));
        var error = Assert.Throws<OptionsValidationException>(() => app.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("HeartbeatInterval", error.Message, StringComparison.Ordinal);
        Assert.Contains("gpu_party", error.Message, StringComparison.Ordinal);
    }
}
