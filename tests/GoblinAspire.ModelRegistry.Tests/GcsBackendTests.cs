using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using GoblinAspire.ModelRegistry.Objects.Gcs;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>Every GCS API test again, with the registry on its GCS backend over a Cloud Storage stand-in.</summary>
[Collection(PlatformServers.Collection)]
public sealed class GcsBackendApiTests(PlatformServers servers) : GcsApiTests(servers)
{
    private GoogleCloudStandIn _google = null!;

    protected override string StoredObjectsRoot => _google.ArtifactRoot;

    protected override async Task<RegistryHost> StartRegistryAsync()
    {
        _google = await GoogleCloudStandIn.StartAsync(Servers);
        return await RegistryHost.StartAsync(Servers, settings: _google.BackendSettings("service-account"));
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _google.DisposeAsync();
    }
}

/// <summary>What only the GCS backend does: authorisation, plain objects in the bucket, resumed uploads, verified downloads.</summary>
[Collection(PlatformServers.Collection)]
public sealed class GcsBackendTests(PlatformServers servers) : IAsyncLifetime
{
    private GoogleCloudStandIn _google = null!;

    public async Task InitializeAsync() => _google = await GoogleCloudStandIn.StartAsync(servers);

    public async Task DisposeAsync() => await _google.DisposeAsync();

    [Theory]
    [InlineData("service-account")]
    [InlineData("metadata")]
    public async Task Objects_land_in_cloud_storage_as_plain_objects_under_either_kind_of_credential(string auth)
    {
        await using var registry = await RegistryHost.StartAsync(servers, settings: _google.BackendSettings(auth));
        var content = RandomNumberGenerator.GetBytes(300_000);
        using (var created = await registry.Host.Client.PostAsync("/storage/v1/b?project=goblin", GcsApiTests.Json("""{"name":"weights"}""")))
        {
            Assert.True(created.StatusCode == HttpStatusCode.OK, $"{created.StatusCode} {await created.Content.ReadAsStringAsync()} refusal: {_google.LastRefusal}");
        }

        var stored = await GcsApiTests.ReadAsync(await registry.Host.Client.PostAsync("/upload/storage/v1/b/weights/o?uploadType=media&name=models%2Fm%2F1%2Fmodel.gguf", new ByteArrayContent(content)), HttpStatusCode.OK);
        Assert.Equal(Convert.ToBase64String(MD5.HashData(content)), stored.GetProperty("md5Hash").GetString());
        Assert.False(stored.TryGetProperty("metadata", out _), "the SHA-256 the backend keeps in GCS metadata is not shown");

        // In Cloud Storage it is an ordinary object: the same bytes, readable by any GCS client, with its SHA-256 kept.
        var token = await registry.Host.Services.GetRequiredService<GoogleAccessTokens>().GetAsync(CancellationToken.None);
        using var direct = new HttpRequestMessage(HttpMethod.Get, "/storage/v1/b/weights/o/models%2Fm%2F1%2Fmodel.gguf?alt=media");
        direct.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        Assert.Equal(content, await (await _google.Client.SendAsync(direct)).Content.ReadAsByteArrayAsync());
        using var metadata = new HttpRequestMessage(HttpMethod.Get, "/storage/v1/b/weights/o/models%2Fm%2F1%2Fmodel.gguf");
        metadata.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var record = JsonDocument.Parse(await (await _google.Client.SendAsync(metadata)).Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content)), record.GetProperty("metadata").GetProperty(GcsObjectStore.Sha256MetadataKey).GetString());

        Assert.Equal(content, await registry.Host.Client.GetByteArrayAsync("/storage/v1/b/weights/o/models%2Fm%2F1%2Fmodel.gguf?alt=media"));
        Assert.True(_google.TokensIssued >= 1);
        Assert.True(_google.AuthorisedStorageCalls >= 5);

        // MLflow's artifacts and the registry's model files go to Cloud Storage too.
        Assert.Equal(HttpStatusCode.OK, (await registry.Host.Client.PutAsync("/api/2.0/mlflow-artifacts/artifacts/run/model.bin", new ByteArrayContent(content))).StatusCode);
        Assert.Equal(content, await registry.Host.Client.GetByteArrayAsync("/api/2.0/mlflow-artifacts/artifacts/run/model.bin"));
        using var artifact = new HttpRequestMessage(HttpMethod.Get, "/storage/v1/b/goblin-artifacts/o/run%2Fmodel.bin?alt=media");
        artifact.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        Assert.Equal(content, await (await _google.Client.SendAsync(artifact)).Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task A_key_cloud_storage_does_not_accept_gives_503_without_leaking_it()
    {
        using var stranger = RSA.Create(2048);
        var keyFile = _google.WriteKeyFile(stranger);
        await using var registry = await RegistryHost.StartAsync(servers, settings: _google.BackendSettings("service-account", keyFile));
        using var response = await registry.Host.Client.GetAsync("/storage/v1/b/anything");
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("backendError", body, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", body, StringComparison.Ordinal);
        Assert.DoesNotContain(stranger.ExportPkcs8PrivateKeyPem()[40..80], body, StringComparison.Ordinal);
        Assert.Equal(0, _google.TokensIssued);
    }

    [Fact]
    public void A_service_account_without_a_key_file_is_refused_at_start()
    {
        var settings = RegistryHost.Settings(servers.Postgres.ConnectionString(), _google.BackendSettings("service-account", "/nonexistent/key.json"));
        var app = ModelRegistryApp.Build([], builder => TestWebHost.Configure(builder, settings));
        var error = Assert.Throws<OptionsValidationException>(() => app.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("readable key file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_upload_whose_connection_breaks_resumes_where_cloud_storage_says_it_stopped()
    {
        await using var registry = await RegistryHost.StartAsync(servers, settings: _google.BackendSettings("metadata"));
        await GcsApiTests.ReadAsync(await registry.Host.Client.PostAsync("/storage/v1/b?project=goblin", GcsApiTests.Json("""{"name":"resumed"}""")), HttpStatusCode.OK);
        var content = RandomNumberGenerator.GetBytes(1_000_000);
        _google.BreakNextUpload = true;
        var stored = await GcsApiTests.ReadAsync(await registry.Host.Client.PostAsync("/upload/storage/v1/b/resumed/o?uploadType=media&name=big.bin", new ByteArrayContent(content)), HttpStatusCode.OK);
        Assert.False(_google.BreakNextUpload, "the stand-in broke the upload off");
        Assert.Equal("1000000", stored.GetProperty("size").GetString());
        Assert.Equal(content, await registry.Host.Client.GetByteArrayAsync("/storage/v1/b/resumed/o/big.bin?alt=media"));
    }

    [Fact]
    public async Task A_download_whose_bytes_changed_on_the_way_fails_instead_of_completing()
    {
        await using var registry = await RegistryHost.StartAsync(servers, settings: _google.BackendSettings("metadata"));
        await GcsApiTests.ReadAsync(await registry.Host.Client.PostAsync("/storage/v1/b?project=goblin", GcsApiTests.Json("""{"name":"flipped"}""")), HttpStatusCode.OK);
        var content = RandomNumberGenerator.GetBytes(200_000);
        await GcsApiTests.ReadAsync(await registry.Host.Client.PostAsync("/upload/storage/v1/b/flipped/o?uploadType=media&name=w.bin", new ByteArrayContent(content)), HttpStatusCode.OK);

        _google.CorruptNextDownload = true;
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => registry.Host.Client.GetByteArrayAsync("/storage/v1/b/flipped/o/w.bin?alt=media"));
        Assert.False(_google.CorruptNextDownload);
        Assert.Equal(content, await registry.Host.Client.GetByteArrayAsync("/storage/v1/b/flipped/o/w.bin?alt=media"));
    }

    [Fact]
    public async Task Registry_side_encryption_is_refused_with_the_gcs_backend()
    {
        var settings = new Dictionary<string, string?>(_google.BackendSettings("metadata")) { ["ModelRegistry__Storage__EncryptedBuckets__0"] = "goblin-artifacts", ["ModelRegistry__Storage__EncryptionKey"] = Convert.ToBase64String(new byte[32]) };
        var app = ModelRegistryApp.Build([], builder => TestWebHost.Configure(builder, RegistryHost.Settings(servers.Postgres.ConnectionString(), settings)));
        var error = Assert.Throws<OptionsValidationException>(() => app.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("default KMS key", error.Message, StringComparison.Ordinal);

        await using var registry = await RegistryHost.StartAsync(servers, settings: _google.BackendSettings("metadata"));
        await GcsApiTests.ExpectErrorAsync(await registry.Host.Client.PostAsync("/storage/v1/b?project=goblin", GcsApiTests.Json("""{"name":"secure","encryption":{"defaultKmsKeyName":"k1"}}""")), HttpStatusCode.BadRequest, "invalid");
    }

    /// <summary>
    /// Registering weights on the GCS backend: the bytes go to Cloud Storage once, streamed with no local staging
    /// copy, and the version is put in place by objects.move, with no copy inside Cloud Storage either.
    /// </summary>
    [Fact]
    public async Task Registered_weights_travel_to_cloud_storage_once_with_no_local_copy_and_no_server_side_copy()
    {
        await using var registry = await RegistryHost.StartAsync(servers, settings: _google.BackendSettings("metadata"));
        var staging = Path.Combine(Path.GetFullPath(registry.Host.Services.GetRequiredService<IOptions<ModelRegistryOptions>>().Value.ArtifactRoot), ".staging");
        var weights = System.Security.Cryptography.RandomNumberGenerator.GetBytes(GcsObjectStore.StreamChunkBytes * 2 + 12_345);
        var uploadedBefore = _google.UploadedBytes;
        var copiesBefore = _google.Copies;
        using var watcher = new FileSystemWatcher(staging) { IncludeSubdirectories = true, EnableRaisingEvents = true };
        var staged = 0;
        watcher.Created += (_, _) => Interlocked.Increment(ref staged);

        using var content = new MultipartFormDataContent();
        var file = new ByteArrayContent(weights);
        file.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
        content.Add(file, "artifact", "model.gguf");
        using var response = await registry.Host.Client.PostAsync("/api/v1/models/streamed/versions", content);
        var registered = await MlflowClient.ReadAsync(response, HttpStatusCode.Created);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(weights)), registered.GetProperty("sha256").GetString());

        Assert.Equal(weights.Length, _google.UploadedBytes - uploadedBefore);
        Assert.Equal(copiesBefore, _google.Copies);
        Assert.True(_google.Moves > 0);
        Assert.Equal(0, Volatile.Read(ref staged));
        var path = Uri.EscapeDataString(registered.GetProperty("artifact_path").GetString()!);
        Assert.Equal(weights, await registry.Host.Client.GetByteArrayAsync($"/storage/v1/b/goblin-artifacts/o/{path}?alt=media"));
    }
}
