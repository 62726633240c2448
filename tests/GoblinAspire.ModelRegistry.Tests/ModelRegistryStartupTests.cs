using System.Net;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Tests;

[Collection(PlatformServers.Collection)]
public sealed class ModelRegistryStartupTests(PlatformServers servers)
{
    [Fact]
    public async Task Starts_with_an_aspire_connection_string_and_reports_postgres_in_health()
    {
        var database = await servers.Postgres.CreateDatabaseAsync("registry");
        var app = ModelRegistryApp.Build([], builder => TestWebHost.Configure(builder, RegistryHost.Settings(database)));
        await using var host = await TestWebHost.StartAsync(app);

        // Readiness: healthy once the first connections are open, which under a loaded CI machine can take a moment.
        await Eventually.HoldsAsync(async () => (await host.Client.GetAsync("/health")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "healthy");
        using var health = await host.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Contains("\"registrydb\"", await health.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_artifact_root_is_rejected_at_start()
    {
        var app = ModelRegistryApp.Build([], builder => TestWebHost.Configure(builder, RegistryHost.Settings(servers.Postgres.ConnectionString(), new Dictionary<string, string?> { ["ModelRegistry__ArtifactRoot"] = "" })));
        var error = Assert.Throws<OptionsValidationException>(() => app.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("ArtifactRoot", error.Message, StringComparison.Ordinal);
    }
}
