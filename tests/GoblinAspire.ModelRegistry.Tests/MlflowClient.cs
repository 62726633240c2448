using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GoblinAspire.Testing;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>Speaks MLflow's REST API as MLflow's own clients do: GET with query strings, JSON bodies otherwise.</summary>
public sealed class MlflowClient(HttpClient http, string prefix = "/api/2.0/mlflow")
{
    public HttpClient Http { get; } = http;

    public async Task<JsonElement> PostAsync(string path, object body, HttpStatusCode expected = HttpStatusCode.OK) =>
        await SendAsync(HttpMethod.Post, path, body, expected);

    public async Task<JsonElement> PatchAsync(string path, object body, HttpStatusCode expected = HttpStatusCode.OK) =>
        await SendAsync(HttpMethod.Patch, path, body, expected);

    public async Task<JsonElement> DeleteAsync(string path, object body, HttpStatusCode expected = HttpStatusCode.OK) =>
        await SendAsync(HttpMethod.Delete, path, body, expected);

    public async Task<JsonElement> GetAsync(string path, string query, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var response = await Http.GetAsync($"{prefix}/{path}?{query}");
        return await ReadAsync(response, expected);
    }

    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object body, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var request = new HttpRequestMessage(method, $"{prefix}/{path}")
        {
            Content = body is string raw ? new StringContent(raw, Encoding.UTF8, "application/json") : JsonContent.Create(body),
        };
        using var response = await Http.SendAsync(request);
        return await ReadAsync(response, expected);
    }

    public static async Task<JsonElement> ReadAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"expected {expected}, got {(int)response.StatusCode}: {text}");
        using var document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }

    public static void AssertError(JsonElement error, string code, string? messageContains = null)
    {
        Assert.Equal(code, error.GetProperty("error_code").GetString());
        if (messageContains is not null)
        {
            Assert.Contains(messageContains, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
    }
}

/// <summary>A model registry on its own fresh database, for one test class.</summary>
public sealed class RegistryHost : IAsyncDisposable
{
    private RegistryHost(TestWebHost host)
    {
        Host = host;
        Mlflow = new MlflowClient(host.Client);
    }

    public TestWebHost Host { get; }

    public MlflowClient Mlflow { get; }

    public const string SigningSecret = "test-signing-secret-0123456789abcdef";

    /// <param name="configure">Adds to the registry's services before it is built (a stand-in's front door, say).</param>
    public static async Task<RegistryHost> StartAsync(PlatformServers servers, string? connectionString = null, IReadOnlyDictionary<string, string?>? settings = null, Action<Microsoft.AspNetCore.Builder.WebApplicationBuilder>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(servers);
        var database = connectionString ?? await servers.Postgres.CreateDatabaseAsync("registry");
        var app = ModelRegistryApp.Build([], builder =>
        {
            TestWebHost.Configure(builder, Settings(database, settings));
            configure?.Invoke(builder);
        });
        return new RegistryHost(await TestWebHost.StartAsync(app));
    }

    /// <summary>What a registry needs to start, as environment-style keys, with <paramref name="extra"/> on top.</summary>
    public static Dictionary<string, string?> Settings(string database, IReadOnlyDictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ConnectionStrings__registrydb"] = database,
            ["ModelRegistry__ArtifactRoot"] = Directory.CreateTempSubdirectory("goblin-artifacts-").FullName,
            ["ModelRegistry__Storage__SigningSecret"] = SigningSecret,
            ["Logging__LogLevel__Default"] = "Warning",
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return settings;
    }

    public ValueTask DisposeAsync() => Host.DisposeAsync();
}
