using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace GoblinAspire.ChatFallback.Tests;

/// <summary>Where the model comes from: the registry's production version, a broken file, an upstream fallback.</summary>
public sealed class ModelSourceTests
{
    [Fact]
    public async Task A_broken_model_leaves_the_service_up_degraded_and_answering_503()
    {
        var path = TestModels.Create(GgmlType.Q8_0);
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..1000]);
        await using var host = await ChatApiTests.StartAsync(new() { ["ChatFallback__ModelPath"] = path });
        await Eventually.HoldsAsync(async () => (await host.Client.GetStringAsync("/health")).Contains("truncated", StringComparison.Ordinal), TimeSpan.FromSeconds(20), "the failure to show");
        using var health = await host.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("Degraded", JsonDocument.Parse(await health.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString());
        var error = (await ChatApiTests.ReadAsync(await host.Client.PostAsync("/v1/chat/completions", ChatApiTests.Json("""{"messages":[{"role":"user","content":"hi"}]}""")), HttpStatusCode.ServiceUnavailable)).GetProperty("error");
        Assert.Equal("model_not_loaded", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Without_a_local_model_requests_go_to_the_upstream_and_health_says_so()
    {
        await using var upstream = await StandInAsync(app =>
        {
            app.MapPost("/v1/chat/completions", async (HttpContext http) =>
            {
                var body = JsonDocument.Parse(await new StreamReader(http.Request.Body).ReadToEndAsync()).RootElement;
                http.Response.ContentType = "application/json";
                await http.Response.WriteAsync(JsonSerializer.Serialize(new
                {
                    id = "up-1",
                    @object = "chat.completion",
                    model = body.GetProperty("model").GetString(),
                    auth = http.Request.Headers.Authorization.ToString(),
                    choices = new[] { new { index = 0, message = new { role = "assistant", content = "from the cloud" }, finish_reason = "stop" } },
                }));
            });
        });
        await using var host = await ChatApiTests.StartAsync(new()
        {
            ["ChatFallback__Upstream__BaseUrl"] = upstream.BaseAddress.AbsoluteUri + "v1",
            ["ChatFallback__Upstream__ApiKey"] = "sk-upstream-secret",
            ["ChatFallback__Upstream__Model"] = "gpt-4o-mini",
            ["ChatFallback__ModelAliases__0"] = "local",
        });
        var answer = await ChatApiTests.ReadAsync(await host.Client.PostAsync("/v1/chat/completions", ChatApiTests.Json("""{"model":"local","messages":[{"role":"user","content":"hi"}]}""")), HttpStatusCode.OK);
        Assert.Equal("from the cloud", answer.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("gpt-4o-mini", answer.GetProperty("model").GetString());
        Assert.Equal("Bearer sk-upstream-secret", answer.GetProperty("auth").GetString());
        var health = await host.Client.GetStringAsync("/health");
        Assert.Contains("forwarding to 127.0.0.1", health, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-upstream-secret", health, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_production_version_is_downloaded_checked_loaded_and_swapped_when_it_changes()
    {
        var versions = new Dictionary<string, byte[]>
        {
            ["1"] = File.ReadAllBytes(TestModels.Create(GgmlType.Q8_0, seed: 1)),
            ["2"] = File.ReadAllBytes(TestModels.Create(GgmlType.Q4_0, seed: 2)),
        };
        var production = "1";
        var downloads = 0;
        await using var registry = await StandInAsync(app =>
        {
            app.MapGet("/api/v1/models/{name}/production", (HttpContext http, string name) =>
            {
                // The registry's token goes with registry calls, and never with a signed download.
                if (http.Request.Headers.Authorization != "Bearer registry-token-for-chat-tests")
                {
                    return Results.Json(new { error_code = "UNAUTHENTICATED", message = "no token" }, statusCode: 401);
                }

                var bytes = versions[production];
                return Results.Json(new
                {
                    model_version = new { name, version = production },
                    artifact_path = $"models/goblin/{name}/{production}/model.gguf",
                    download_url = $"{http.Request.Scheme}://{http.Request.Host}/signed/{production}?X-Goog-Signature=abc",
                    sha256 = Convert.ToHexStringLower(SHA256.HashData(bytes)),
                    size_bytes = bytes.Length,
                });
            });
            app.MapGet("/signed/{version}", (HttpContext http, string version) =>
            {
                Assert.False(http.Request.Headers.ContainsKey("Authorization"), "a signed download carried the registry token");
                Interlocked.Increment(ref downloads);
                return Results.Bytes(versions[version], "application/octet-stream");
            });
        });
        var cache = Directory.CreateTempSubdirectory("goblin-model-cache-").FullName;
        await using var host = await ChatApiTests.StartAsync(new()
        {
            ["ChatFallback__RegisteredModel"] = "chat-small",
            ["ChatFallback__RegistryUrl"] = registry.BaseAddress.AbsoluteUri,
            ["ChatFallback__RegistryToken"] = "registry-token-for-chat-tests",
            ["ChatFallback__RegistryPollInterval"] = "00:00:01",
            ["ChatFallback__CacheDirectory"] = cache,
            ["ChatFallback__MaxConcurrency"] = "2",
        });
        await Eventually.HoldsAsync(async () => (await host.Client.GetStringAsync("/health")).Contains("registry:chat-small/1", StringComparison.Ordinal), TimeSpan.FromSeconds(20), "version 1");
        Assert.Equal(1, downloads);

        // Requests keep being answered while version 2 is fetched and swapped in.
        production = "2";
        var answered = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!(await host.Client.GetStringAsync("/health")).Contains("registry:chat-small/2", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            using var response = await host.Client.PostAsync("/v1/chat/completions", ChatApiTests.Json("""{"messages":[{"role":"user","content":"hello"}],"max_tokens":4}"""));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            answered++;
        }

        Assert.Contains("registry:chat-small/2", await host.Client.GetStringAsync("/health"), StringComparison.Ordinal);
        Assert.True(answered > 0);
        Assert.Equal(2, downloads);
        Assert.True(File.Exists(Path.Combine(cache, "chat-small", "2", "model.gguf")));
        await Task.Delay(2500);
        Assert.Equal(2, downloads);
    }

    [Fact]
    public async Task A_download_that_fails_its_sha256_is_never_loaded()
    {
        var bytes = File.ReadAllBytes(TestModels.Create(GgmlType.Q8_0));
        await using var registry = await StandInAsync(app =>
        {
            app.MapGet("/api/v1/models/{name}/production", (HttpContext http, string name) => Results.Json(new
            {
                model_version = new { name, version = "1" },
                artifact_path = "../../../etc/evil.gguf",
                download_url = $"{http.Request.Scheme}://{http.Request.Host}/signed",
                sha256 = new string('0', 64),
            }));
            app.MapGet("/signed", () => Results.Bytes(bytes));
        });
        var cache = Directory.CreateTempSubdirectory("goblin-model-cache-").FullName;
        await using var host = await ChatApiTests.StartAsync(new()
        {
            ["ChatFallback__RegisteredModel"] = "chat-small",
            ["ChatFallback__RegistryUrl"] = registry.BaseAddress.AbsoluteUri,
            ["ChatFallback__CacheDirectory"] = cache,
        });
        await Eventually.HoldsAsync(async () => (await host.Client.GetStringAsync("/health")).Contains("SHA-256", StringComparison.Ordinal), TimeSpan.FromSeconds(20), "the mismatch to show");
        Assert.Equal("Degraded", JsonDocument.Parse(await host.Client.GetStringAsync("/health")).RootElement.GetProperty("checks").GetProperty("model").GetProperty("status").GetString());
        Assert.Empty(Directory.EnumerateFiles(cache, "*", SearchOption.AllDirectories));
    }

    private static Task<TestWebHost> StandInAsync(Action<WebApplication> map) => TestWebHost.StartStandInAsync(map);
}
