using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using GoblinAspire.Testing;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>
/// The registry's token: every API but health, metrics and signed URLs needs it, each refusal in its API's shape, and
/// a job's run token reaches only its own run.
/// </summary>
[Collection(PlatformServers.Collection)]
public sealed class RegistryAccessTests(PlatformServers servers) : IAsyncLifetime
{
    private const string Token = "registry-token-for-tests-5e1f9a";
    private RegistryHost _registry = null!;

    private HttpClient Http => _registry.Host.Client;

    public async Task InitializeAsync() =>
        _registry = await RegistryHost.StartAsync(servers, settings: new Dictionary<string, string?> { ["ModelRegistry__Access__RequireToken"] = "true", ["ModelRegistry__Access__Token"] = Token });

    public async Task DisposeAsync() => await _registry.DisposeAsync();

    private async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpMethod method, string path, string? bearer, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    [Fact]
    public async Task Without_the_token_every_api_answers_401_in_its_own_shape_and_health_metrics_stay_open()
    {
        foreach (var bearer in new[] { null, "wrong-token", "grt_forged.9999999999.abc" })
        {
            var mlflow = await SendAsync(HttpMethod.Get, "/api/2.0/mlflow/experiments/search?max_results=1", bearer);
            Assert.Equal(HttpStatusCode.Unauthorized, mlflow.Status);
            Assert.Equal("UNAUTHENTICATED", mlflow.Body.GetProperty("error_code").GetString());
            var gcs = await SendAsync(HttpMethod.Get, "/storage/v1/b?project=goblin", bearer);
            Assert.Equal(HttpStatusCode.Unauthorized, gcs.Status);
            Assert.Equal(401, gcs.Body.GetProperty("error").GetProperty("code").GetInt32());
            var operations = await SendAsync(HttpMethod.Get, "/api/v1/models/any/production", bearer);
            Assert.Equal(HttpStatusCode.Unauthorized, operations.Status);
        }

        foreach (var open in new[] { "/health", "/alive", "/metrics" })
        {
            using var response = await Http.GetAsync(open);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Get, "/api/2.0/mlflow/experiments/search?max_results=1", Token)).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Get, "/storage/v1/b?project=goblin", Token)).Status);
    }

    [Fact]
    public async Task A_signed_url_works_without_the_token()
    {
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Post, "/storage/v1/b?project=goblin", Token, new { name = "signed-access" })).Status);
        var minted = await SendAsync(HttpMethod.Post, "/api/v1/storage/signed-urls", Token, new { bucket = "signed-access", @object = "a.txt", method = "PUT" });
        Assert.Equal(HttpStatusCode.OK, minted.Status);
        using var put = await Http.PutAsync(minted.Body.GetProperty("url").GetString(), new StringContent("hello"));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
    }

    /// <summary>As in GCS, opening a resumable session needs the token, and the session's URI then carries itself.</summary>
    [Fact]
    public async Task A_resumable_session_needs_the_token_to_open_and_its_uri_to_continue()
    {
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Post, "/storage/v1/b?project=goblin", Token, new { name = "sessions" })).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Post, "/upload/storage/v1/b/sessions/o?uploadType=resumable&name=a.bin", null, new { })).Status);
        using var open = new HttpRequestMessage(HttpMethod.Post, "/upload/storage/v1/b/sessions/o?uploadType=resumable&name=a.bin") { Content = JsonContent.Create(new { }) };
        open.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        using var opened = await Http.SendAsync(open);
        Assert.Equal(HttpStatusCode.OK, opened.StatusCode);
        using var chunk = await Http.PutAsync(opened.Headers.Location, new ByteArrayContent("session bytes"u8.ToArray()));
        Assert.Equal(HttpStatusCode.OK, chunk.StatusCode);
        using var unknown = await Http.PutAsync("/upload/storage/v1/b/sessions/o?uploadType=resumable&upload_id=not-a-session", new ByteArrayContent([1]));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task A_run_token_logs_to_its_own_run_and_reaches_nothing_else()
    {
        var experiment = (await SendAsync(HttpMethod.Post, "/api/2.0/mlflow/experiments/create", Token, new { name = "scoped" })).Body.GetProperty("experiment_id").GetString();
        var own = (await SendAsync(HttpMethod.Post, "/api/2.0/mlflow/runs/create", Token, new { experiment_id = experiment })).Body.GetProperty("run").GetProperty("info").GetProperty("run_id").GetString();
        var other = (await SendAsync(HttpMethod.Post, "/api/2.0/mlflow/runs/create", Token, new { experiment_id = experiment })).Body.GetProperty("run").GetProperty("info").GetProperty("run_id").GetString();
        var minted = await SendAsync(HttpMethod.Post, "/api/v1/run-tokens", Token, new { run_id = own, ttl_seconds = 3600 });
        Assert.Equal(HttpStatusCode.OK, minted.Status);
        var runToken = minted.Body.GetProperty("token").GetString()!;

        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Post, "/api/2.0/mlflow/runs/log-metric", runToken, new { run_id = own, key = "loss", value = 0.5, timestamp = 1, step = 1 })).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Get, $"/api/2.0/mlflow/runs/get?run_id={own}", runToken)).Status);
        var denied = await SendAsync(HttpMethod.Post, "/api/2.0/mlflow/runs/log-metric", runToken, new { run_id = other, key = "loss", value = 0.5, timestamp = 1, step = 1 });
        Assert.Equal(HttpStatusCode.Forbidden, denied.Status);
        Assert.Equal("PERMISSION_DENIED", denied.Body.GetProperty("error_code").GetString());
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(HttpMethod.Post, "/api/2.0/mlflow/runs/search", runToken, new { experiment_ids = new[] { experiment } })).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(HttpMethod.Get, "/storage/v1/b?project=goblin", runToken)).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(HttpMethod.Post, "/api/v1/run-tokens", runToken, new { run_id = other })).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(HttpMethod.Post, "/api/2.0/mlflow/experiments/create", runToken, new { name = "sneaky" })).Status);

        using (var ownArtifact = new HttpRequestMessage(HttpMethod.Put, $"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{own}/artifacts/model.txt") { Content = new StringContent("weights") })
        {
            ownArtifact.Headers.Authorization = new AuthenticationHeaderValue("Bearer", runToken);
            Assert.Equal(HttpStatusCode.OK, (await Http.SendAsync(ownArtifact)).StatusCode);
        }

        using (var otherArtifact = new HttpRequestMessage(HttpMethod.Put, $"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{other}/artifacts/model.txt") { Content = new StringContent("weights") })
        {
            otherArtifact.Headers.Authorization = new AuthenticationHeaderValue("Bearer", runToken);
            Assert.Equal(HttpStatusCode.Forbidden, (await Http.SendAsync(otherArtifact)).StatusCode);
        }

        // Tampering with the run in the token breaks its signature.
        var forged = runToken.Replace(own!, other, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Post, "/api/2.0/mlflow/runs/log-metric", forged, new { run_id = other, key = "loss", value = 0.5, timestamp = 1, step = 1 })).Status);
    }

    [Fact]
    public async Task Requiring_the_token_without_one_stops_the_start()
    {
        var settings = RegistryHost.Settings(await servers.Postgres.CreateDatabaseAsync("registry"), new Dictionary<string, string?> { ["ModelRegistry__Access__RequireToken"] = "true" });
        await using var app = ModelRegistryApp.Build([], builder => TestWebHost.Configure(builder, settings));
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("ModelRegistry:Access:Token", error.Message, StringComparison.Ordinal);
    }
}
