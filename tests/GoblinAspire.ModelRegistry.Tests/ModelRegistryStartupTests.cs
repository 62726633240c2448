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

    [Fact]
    public void Keys_given_by_value_are_checked_at_start_without_echoing_them()
    {
        const string NotAKey = "bm90LWEtMzItYnl0ZS1rZXk=";
        var app = ModelRegistryApp.Build([], builder => TestWebHost.Configure(builder, RegistryHost.Settings(servers.Postgres.ConnectionString(), new Dictionary<string, string?>
        {
            ["ModelRegistry__Storage__EncryptionKey"] = NotAKey,
            ["ModelRegistry__Storage__RetiredEncryptionKeys"] = Convert.ToBase64String(new byte[32]) + ", " + NotAKey,
        })));
        var error = Assert.Throws<OptionsValidationException>(() => app.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("ModelRegistry:Storage:EncryptionKey must be", error.Message, StringComparison.Ordinal);
        Assert.Contains("RetiredEncryptionKeys: entry 2 must be", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(NotAKey, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_encrypted_bucket_whose_key_was_not_given_refuses_to_start()
    {
        // The AppHost composes encryption with an empty secret where the operator left it unset: never plaintext then.
        var app = ModelRegistryApp.Build([], builder => TestWebHost.Configure(builder, RegistryHost.Settings(servers.Postgres.ConnectionString(), new Dictionary<string, string?>
        {
            ["ModelRegistry__Storage__EncryptionKey"] = "",
            ["ModelRegistry__Storage__EncryptedBuckets__0"] = "goblin-artifacts",
        })));
        var error = Assert.Throws<OptionsValidationException>(() => app.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("EncryptedBuckets needs an ActiveEncryptionKey", error.Message, StringComparison.Ordinal);
    }
}
