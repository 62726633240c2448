using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Tests;

[Collection(PlatformServers.Collection)]
public sealed class ModelOperationTests(PlatformServers servers) : IAsyncLifetime
{
    private RegistryHost _registry = null!;

    private HttpClient Http => _registry.Host.Client;

    private MlflowClient Mlflow => _registry.Mlflow;

    public async Task InitializeAsync() => _registry = await RegistryHost.StartAsync(servers);

    public async Task DisposeAsync() => await _registry.DisposeAsync();

    private async Task<JsonElement> RegisterAsync(string model, byte[] artifact, double accuracy, HttpStatusCode expected = HttpStatusCode.Created)
    {
        using var content = new MultipartFormDataContent();
        content.Add(new StringContent($$"""{"metrics":{"eval.accuracy":{{accuracy.ToString(System.Globalization.CultureInfo.InvariantCulture)}},"loss":0.3},"params":{"lr":"0.001","epochs":3},"description":"trained"}""", Encoding.UTF8, "application/json"), "metadata");
        var file = new ByteArrayContent(artifact);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Add(file, "artifact", "model.gguf");
        using var response = await Http.PostAsync($"/api/v1/models/{Uri.EscapeDataString(model)}/versions", content);
        return await MlflowClient.ReadAsync(response, expected);
    }

    [Fact]
    public async Task Register_stores_artifact_run_metrics_params_and_version_in_one_call()
    {
        var artifact = RandomNumberGenerator.GetBytes(200_000);
        var registered = await RegisterAsync("chat-small", artifact, 0.93);
        var version = registered.GetProperty("model_version");
        Assert.Equal("1", version.GetProperty("version").GetString());
        Assert.Equal("trained", version.GetProperty("description").GetString());
        Assert.Equal("mlflow-artifacts:/models/goblin/chat-small/1/model.gguf", version.GetProperty("source").GetString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(artifact)), registered.GetProperty("sha256").GetString());
        Assert.Equal(200_000, registered.GetProperty("size_bytes").GetInt64());

        Assert.Equal(artifact, await Http.GetByteArrayAsync("/api/2.0/mlflow-artifacts/artifacts/models/goblin/chat-small/1/model.gguf"));
        var run = (await Mlflow.GetAsync("runs/get", $"run_id={registered.GetProperty("run_id").GetString()}")).GetProperty("run");
        Assert.Equal("FINISHED", run.GetProperty("info").GetProperty("status").GetString());
        Assert.Contains(run.GetProperty("data").GetProperty("metrics").EnumerateArray(), m => m.GetProperty("key").GetString() == "eval.accuracy" && m.GetProperty("value").GetDouble() == 0.93);
        Assert.Contains(run.GetProperty("data").GetProperty("params").EnumerateArray(), p => p.GetProperty("key").GetString() == "epochs" && p.GetProperty("value").GetString() == "3");

        var staging = await MlflowClient.ReadAsync(await Http.GetAsync("/api/2.0/mlflow-artifacts/artifacts?path=staging"), HttpStatusCode.OK);
        Assert.False(staging.TryGetProperty("files", out _));
    }

    [Fact]
    public async Task Gates_refuse_a_weak_version_with_409_and_admit_a_strong_one_in_stage_and_alias()
    {
        await RegisterAsync("gated", [1, 2, 3], 0.85);
        await RegisterAsync("gated", [4, 5, 6], 0.95);
        using (var gates = new HttpRequestMessage(HttpMethod.Put, "/api/v1/models/gated/gates") { Content = new StringContent("""{"conditions":["eval.accuracy >= 0.9","loss<0.5"]}""", Encoding.UTF8, "application/json") })
        using (var response = await Http.SendAsync(gates))
        {
            Assert.Equal(["eval.accuracy >= 0.9", "loss < 0.5"], (await MlflowClient.ReadAsync(response, HttpStatusCode.OK)).GetProperty("conditions").EnumerateArray().Select(c => c.GetString()));
        }

        using (var refused = await Http.PostAsync("/api/v1/models/gated/versions/1/promote", null))
        {
            var body = await MlflowClient.ReadAsync(refused, HttpStatusCode.Conflict);
            Assert.Equal("FAILED_PRECONDITION", body.GetProperty("error_code").GetString());
            var failed = Assert.Single(body.GetProperty("failed_conditions").EnumerateArray());
            Assert.Equal("eval.accuracy >= 0.9", failed.GetProperty("condition").GetString());
            Assert.Equal(0.85, failed.GetProperty("actual").GetDouble());
        }

        Assert.Equal("None", (await Mlflow.GetAsync("model-versions/get", "name=gated&version=1")).GetProperty("model_version").GetProperty("current_stage").GetString());

        using (var promoted = await Http.PostAsync("/api/v1/models/gated/versions/2/promote", null))
        {
            Assert.Equal("Production", (await MlflowClient.ReadAsync(promoted, HttpStatusCode.OK)).GetProperty("model_version").GetProperty("current_stage").GetString());
        }

        // MLflow 2 clients (stages) and MLflow 3 clients (aliases) see the same production version.
        var latest = await Mlflow.PostAsync("registered-models/get-latest-versions", new { name = "gated", stages = new[] { "Production" } });
        Assert.Equal("2", Assert.Single(latest.GetProperty("model_versions").EnumerateArray()).GetProperty("version").GetString());
        Assert.Equal("2", (await Mlflow.GetAsync("registered-models/alias", "name=gated&alias=production")).GetProperty("model_version").GetProperty("version").GetString());

        var production = JsonDocument.Parse(await Http.GetStringAsync("/api/v1/models/gated/production")).RootElement;
        Assert.Equal("2", production.GetProperty("model_version").GetProperty("version").GetString());
        Assert.Equal(0.95, production.GetProperty("metrics").GetProperty("eval.accuracy").GetDouble());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(new byte[] { 4, 5, 6 })), production.GetProperty("sha256").GetString());
        Assert.Equal([4, 5, 6], await Http.GetByteArrayAsync(production.GetProperty("download_url").GetString()));
    }

    [Fact]
    public async Task Rollback_restores_an_earlier_version_and_mlflow_stage_and_alias_changes_stay_in_sync()
    {
        await RegisterAsync("rolling", [1], 0.9);
        await RegisterAsync("rolling", [2], 0.9);
        await Http.PostAsync("/api/v1/models/rolling/versions/2/promote", null);

        using (var rollback = await Http.PostAsync("/api/v1/models/rolling/rollback", new StringContent("""{"version":"1"}""", Encoding.UTF8, "application/json")))
        {
            Assert.Equal("Production", (await MlflowClient.ReadAsync(rollback, HttpStatusCode.OK)).GetProperty("model_version").GetProperty("current_stage").GetString());
        }

        Assert.Equal("Archived", (await Mlflow.GetAsync("model-versions/get", "name=rolling&version=2")).GetProperty("model_version").GetProperty("current_stage").GetString());
        Assert.Equal("1", JsonDocument.Parse(await Http.GetStringAsync("/api/v1/models/rolling/production")).RootElement.GetProperty("model_version").GetProperty("version").GetString());

        // An MLflow 3 client sets the alias: the stage follows.
        await Mlflow.PostAsync("registered-models/alias", new { name = "rolling", alias = "production", version = "2" });
        Assert.Equal("Production", (await Mlflow.GetAsync("model-versions/get", "name=rolling&version=2")).GetProperty("model_version").GetProperty("current_stage").GetString());
        Assert.Equal("Archived", (await Mlflow.GetAsync("model-versions/get", "name=rolling&version=1")).GetProperty("model_version").GetProperty("current_stage").GetString());

        // An MLflow 2 client archives production: the alias goes with it.
        await Mlflow.PostAsync("model-versions/transition-stage", new { name = "rolling", version = "2", stage = "Archived" });
        await Mlflow.GetAsync("registered-models/alias", "name=rolling&alias=production", HttpStatusCode.NotFound);
        using var none = await Http.GetAsync("/api/v1/models/rolling/production");
        MlflowClient.AssertError(await MlflowClient.ReadAsync(none, HttpStatusCode.NotFound), "RESOURCE_DOES_NOT_EXIST");
    }

    [Fact]
    public async Task Bad_registrations_and_gates_are_refused_without_leftovers()
    {
        using (var notMultipart = await Http.PostAsync("/api/v1/models/x/versions", new StringContent("{}", Encoding.UTF8, "application/json")))
        {
            MlflowClient.AssertError(await MlflowClient.ReadAsync(notMultipart, HttpStatusCode.BadRequest), "BAD_REQUEST");
        }

        using (var noArtifact = new MultipartFormDataContent { { new StringContent("{}"), "metadata" } })
        using (var response = await Http.PostAsync("/api/v1/models/x/versions", noArtifact))
        {
            MlflowClient.AssertError(await MlflowClient.ReadAsync(response, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE");
        }

        using (var traversal = new MultipartFormDataContent { { new ByteArrayContent([1]), "artifact", "../../evil.bin" } })
        using (var response = await Http.PostAsync("/api/v1/models/x/versions", traversal))
        {
            MlflowClient.AssertError(await MlflowClient.ReadAsync(response, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE");
        }

        using (var badMetadata = new MultipartFormDataContent { { new StringContent("{not json"), "metadata" }, { new ByteArrayContent([1]), "artifact", "m.bin" } })
        using (var response = await Http.PostAsync("/api/v1/models/x/versions", badMetadata))
        {
            MlflowClient.AssertError(await MlflowClient.ReadAsync(response, HttpStatusCode.BadRequest), "BAD_REQUEST");
        }

        await Mlflow.GetAsync("model-versions/get", "name=x&version=1", HttpStatusCode.NotFound);

        await RegisterAsync("gate-errors", [1], 0.5);
        using var gates = new HttpRequestMessage(HttpMethod.Put, "/api/v1/models/gate-errors/gates") { Content = new StringContent("""{"conditions":["accuracy >= lots"]}""", Encoding.UTF8, "application/json") };
        using var badGate = await Http.SendAsync(gates);
        MlflowClient.AssertError(await MlflowClient.ReadAsync(badGate, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE");
    }
}
