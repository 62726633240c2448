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

    [Fact]
    public async Task A_register_whose_upload_breaks_off_part_way_leaves_no_model_behind()
    {
        // Far more bytes than the socket and server buffers hold: the client can only have sent them once the server
        // was storing the artifact part, past every check. Then the upload breaks off.
        using var content = new BreaksOffContent(128L * 1024 * 1024);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => Http.PostAsync("/api/v1/models/broken-off/versions", content));

        MlflowClient.AssertError(await Mlflow.GetAsync("registered-models/get", "name=broken-off", HttpStatusCode.NotFound), "RESOURCE_DOES_NOT_EXIST");
        var experiments = await Mlflow.PostAsync("experiments/search", new { filter = "name = 'models/broken-off'", view_type = "ALL" });
        Assert.Equal(0, experiments.TryGetProperty("experiments", out var found) ? found.GetArrayLength() : 0);

        // The name is free: the next, whole upload makes the model and its first version.
        var registered = await RegisterAsync("broken-off", [1, 2, 3], 0.9);
        Assert.Equal("1", registered.GetProperty("model_version").GetProperty("version").GetString());
    }

    [Fact]
    public async Task A_register_that_fails_after_the_upload_leaves_no_model_run_version_or_bytes()
    {
        // The model's experiment exists but is deleted: recording the run fails after the artifact is stored.
        var experiment = (await Mlflow.PostAsync("experiments/create", new { name = "models/late-failure" })).GetProperty("experiment_id").GetString();
        await Mlflow.PostAsync("experiments/delete", new { experiment_id = experiment });

        var refused = await RegisterAsync("late-failure", [7, 7, 7], 0.9, HttpStatusCode.BadRequest);
        MlflowClient.AssertError(refused, "INVALID_PARAMETER_VALUE", "must be in the 'active' state");

        MlflowClient.AssertError(await Mlflow.GetAsync("registered-models/get", "name=late-failure", HttpStatusCode.NotFound), "RESOURCE_DOES_NOT_EXIST");
        var runs = await Mlflow.PostAsync("runs/search", new { experiment_ids = new[] { experiment }, run_view_type = "ALL" });
        Assert.False(runs.TryGetProperty("runs", out _));
        var staging = await MlflowClient.ReadAsync(await Http.GetAsync("/api/2.0/mlflow-artifacts/artifacts?path=staging"), HttpStatusCode.OK);
        Assert.False(staging.TryGetProperty("files", out _));
        var models = await MlflowClient.ReadAsync(await Http.GetAsync("/api/2.0/mlflow-artifacts/artifacts?path=models/goblin"), HttpStatusCode.OK);
        Assert.False(models.TryGetProperty("files", out _));

        await Mlflow.PostAsync("experiments/restore", new { experiment_id = experiment });
        Assert.Equal("1", (await RegisterAsync("late-failure", [7, 7, 7], 0.9)).GetProperty("model_version").GetProperty("version").GetString());
    }

    [Fact]
    public async Task Promoting_or_rolling_back_to_a_version_whose_artifact_is_gone_is_refused_and_changes_nothing()
    {
        await RegisterAsync("orphaned", [1], 0.9);
        await RegisterAsync("orphaned", [2], 0.9);
        using (var promoted = await Http.PostAsync("/api/v1/models/orphaned/versions/1/promote", null))
        {
            await MlflowClient.ReadAsync(promoted, HttpStatusCode.OK);
        }

        using (var deleted = await Http.DeleteAsync("/api/2.0/mlflow-artifacts/artifacts/models/goblin/orphaned/2/model.gguf"))
        {
            await MlflowClient.ReadAsync(deleted, HttpStatusCode.OK);
        }

        using (var refused = await Http.PostAsync("/api/v1/models/orphaned/versions/2/promote", null))
        {
            var error = await MlflowClient.ReadAsync(refused, HttpStatusCode.Conflict);
            MlflowClient.AssertError(error, "FAILED_PRECONDITION", "its artifact 'models/goblin/orphaned/2/model.gguf' is missing from the artifact store");
        }

        using (var rollback = await Http.PostAsync("/api/v1/models/orphaned/rollback", new StringContent("""{"version":"2"}""", Encoding.UTF8, "application/json")))
        {
            MlflowClient.AssertError(await MlflowClient.ReadAsync(rollback, HttpStatusCode.Conflict), "FAILED_PRECONDITION", "is missing from the artifact store");
        }

        Assert.Equal("1", JsonDocument.Parse(await Http.GetStringAsync("/api/v1/models/orphaned/production")).RootElement.GetProperty("model_version").GetProperty("version").GetString());
        Assert.Equal("Production", (await Mlflow.GetAsync("model-versions/get", "name=orphaned&version=1")).GetProperty("model_version").GetProperty("current_stage").GetString());
        Assert.Equal("None", (await Mlflow.GetAsync("model-versions/get", "name=orphaned&version=2")).GetProperty("model_version").GetProperty("current_stage").GetString());
        Assert.Equal("1", (await Mlflow.GetAsync("registered-models/alias", "name=orphaned&alias=production")).GetProperty("model_version").GetProperty("version").GetString());
        var audit = await _registry.Host.Services.GetRequiredService<Storage.RegistryStore>().AuditAsync("orphaned", CancellationToken.None);
        Assert.DoesNotContain(audit, entry => entry.Version == 2);
    }

    /// <summary>
    /// A register request whose multipart body declares more than it sends: metadata, the artifact part's headers and
    /// <paramref name="artifactBytes"/> bytes, then the upload fails as a dropped connection would.
    /// </summary>
    private sealed class BreaksOffContent : HttpContent
    {
        private const string Boundary = "upload-boundary";
        private readonly byte[] _head = Encoding.ASCII.GetBytes(
            $"--{Boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n" +
            """{"metrics":{"eval.accuracy":0.9}}""" +
            $"\r\n--{Boundary}\r\nContent-Disposition: form-data; name=\"artifact\"; filename=\"model.gguf\"\r\nContent-Type: application/octet-stream\r\n\r\n");

        private readonly long _artifactBytes;

        public BreaksOffContent(long artifactBytes)
        {
            _artifactBytes = artifactBytes;
            Headers.ContentType = MediaTypeHeaderValue.Parse($"multipart/form-data; boundary={Boundary}");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            await stream.WriteAsync(_head);
            var chunk = new byte[64 * 1024];
            for (long sent = 0; sent < _artifactBytes; sent += chunk.Length)
            {
                await stream.WriteAsync(chunk);
            }

            await stream.FlushAsync();
            throw new IOException("The upload broke off.");
        }

        protected override bool TryComputeLength(out long length)
        {
            // Twice what is sent, so the server waits for more rather than seeing a complete, well-formed body.
            length = _head.Length + (2 * _artifactBytes) + 64;
            return true;
        }
    }
}
