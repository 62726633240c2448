using GoblinAspire.Testing;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>
/// Google's own Node.js client (<c>@google-cloud/storage</c>, installed by test.sh into tests/gcs-client) against
/// the registry: the claim that official clients work unmodified, checked with an official client.
/// </summary>
[Collection(PlatformServers.Collection)]
public sealed class OfficialGcsClientTests(PlatformServers servers)
{
    [Theory]
    [InlineData("local", false)]
    [InlineData("local", true)]
    [InlineData("gcs", true)]
    public async Task The_official_node_client_uploads_downloads_lists_patches_copies_and_deletes(string backend, bool withToken)
    {
        var folder = Path.Combine(ServiceProcess.RepositoryRoot(), "tests", "gcs-client");
        Assert.True(Directory.Exists(Path.Combine(folder, "node_modules", "@google-cloud", "storage")), "run ./test.sh (it installs tests/gcs-client with npm ci) first");
        // On the gcs backend every call the client makes goes on to a Cloud Storage stand-in.
        await using var google = backend == "gcs" ? await GoogleCloudStandIn.StartAsync(servers) : null;
        // With a token the registry requires it (as the AppHost runs it) and the client sends it as Google's clients do.
        const string Token = "registry-token-for-the-official-client";
        var settings = new Dictionary<string, string?>(google?.BackendSettings("metadata") ?? new Dictionary<string, string?>());
        if (withToken)
        {
            settings["ModelRegistry__Access__RequireToken"] = "true";
            settings["ModelRegistry__Access__Token"] = Token;
        }

        await using var registry = await RegistryHost.StartAsync(servers, settings: settings);
        var endpoint = registry.Host.BaseAddress.ToString().TrimEnd('/');
        var output = await ChildProcess.RunAsync("node", ["official-client.mjs"], TimeSpan.FromMinutes(2), workingDirectory: folder, environment: new Dictionary<string, string?> { ["GCS_ENDPOINT"] = endpoint, ["GCS_TOKEN"] = withToken ? Token : null });
        Assert.Contains("all steps passed", output, StringComparison.Ordinal);
        Assert.True(google is null || google.AuthorisedStorageCalls > 10);
    }
}
