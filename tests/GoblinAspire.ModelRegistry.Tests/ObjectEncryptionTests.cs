using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using GoblinAspire.Testing;

namespace GoblinAspire.ModelRegistry.Tests;

[Collection(PlatformServers.Collection)]
public sealed class ObjectEncryptionTests(PlatformServers servers)
{
    private static readonly string FirstKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    private static readonly string SecondKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    [Fact]
    public async Task Encrypted_buckets_store_ciphertext_and_stay_readable_across_a_key_rotation()
    {
        var database = await servers.Postgres.CreateDatabaseAsync("registry");
        var root = Directory.CreateTempSubdirectory("goblin-encrypted-").FullName;
        var plaintext = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("secret-weights ", 20_000)));
        await using (var registry = await RegistryHost.StartAsync(servers, database, Keys(root, "k1", ("k1", FirstKey))))
        {
            await GcsApiTests.ReadAsync(await registry.Host.Client.PostAsync("/storage/v1/b?project=goblin", GcsApiTests.Json("""{"name":"secure","encryption":{"defaultKmsKeyName":"projects/goblin/locations/global/keyRings/goblin/cryptoKeys/k1"}}""")), HttpStatusCode.OK);
            var stored = await GcsApiTests.ReadAsync(await registry.Host.Client.PostAsync("/upload/storage/v1/b/secure/o?uploadType=media&name=old.bin", new ByteArrayContent(plaintext)), HttpStatusCode.OK);
            Assert.EndsWith("/k1", stored.GetProperty("kmsKeyName").GetString(), StringComparison.Ordinal);
            Assert.Equal(plaintext, await registry.Host.Client.GetByteArrayAsync("/storage/v1/b/secure/o/old.bin?alt=media"));

            // The MLflow artifact bucket is encrypted by configuration alone.
            Assert.Equal(HttpStatusCode.OK, (await registry.Host.Client.PutAsync("/api/2.0/mlflow-artifacts/artifacts/run/model.bin", new ByteArrayContent(plaintext))).StatusCode);
            Assert.Equal(plaintext, await registry.Host.Client.GetByteArrayAsync("/api/2.0/mlflow-artifacts/artifacts/run/model.bin"));

            await GcsApiTests.ExpectErrorAsync(await registry.Host.Client.PostAsync("/storage/v1/b?project=goblin", GcsApiTests.Json("""{"name":"unknown-key","encryption":{"defaultKmsKeyName":"nope"}}""")), HttpStatusCode.BadRequest, "invalid");
        }

        foreach (var data in Directory.EnumerateFiles(Path.Combine(root, "buckets"), "*", SearchOption.AllDirectories).Where(f => f.Contains("/data/", StringComparison.Ordinal)))
        {
            Assert.Equal(-1, File.ReadAllBytes(data).AsSpan().IndexOf("secret-weights"u8));
        }

        // Rotation: k2 writes from now on; k1 stays configured so what it wrote stays readable.
        await using (var registry = await RegistryHost.StartAsync(servers, database, Keys(root, "k2", ("k1", FirstKey), ("k2", SecondKey))))
        {
            Assert.Equal(plaintext, await registry.Host.Client.GetByteArrayAsync("/storage/v1/b/secure/o/old.bin?alt=media"));
            var fresh = await GcsApiTests.ReadAsync(await registry.Host.Client.PostAsync("/upload/storage/v1/b/secure/o?uploadType=media&name=new.bin", new ByteArrayContent(plaintext)), HttpStatusCode.OK);
            Assert.EndsWith("/k2", fresh.GetProperty("kmsKeyName").GetString(), StringComparison.Ordinal);
            Assert.Equal(plaintext, await registry.Host.Client.GetByteArrayAsync("/storage/v1/b/secure/o/new.bin?alt=media"));
            Assert.Equal(plaintext, await registry.Host.Client.GetByteArrayAsync("/api/2.0/mlflow-artifacts/artifacts/run/model.bin"));
        }

        // Without the old key its objects cannot be read: an error, never ciphertext passed off as the object.
        await using (var registry = await RegistryHost.StartAsync(servers, database, Keys(root, "k2", ("k2", SecondKey))))
        {
            await GcsApiTests.ExpectErrorAsync(await registry.Host.Client.GetAsync("/storage/v1/b/secure/o/old.bin?alt=media"), HttpStatusCode.InternalServerError, "dataLoss");
            Assert.Equal(plaintext, await registry.Host.Client.GetByteArrayAsync("/storage/v1/b/secure/o/new.bin?alt=media"));
        }
    }

    [Fact]
    public async Task Keys_given_by_value_rotate_by_moving_the_old_value_to_the_retired_list()
    {
        var database = await servers.Postgres.CreateDatabaseAsync("registry");
        var root = Directory.CreateTempSubdirectory("goblin-encrypted-").FullName;
        var plaintext = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("secret-weights ", 5_000)));
        var firstId = "sha256-" + Convert.ToHexStringLower(SHA256.HashData(Convert.FromBase64String(FirstKey)))[..16];
        var secondId = "sha256-" + Convert.ToHexStringLower(SHA256.HashData(Convert.FromBase64String(SecondKey)))[..16];

        // As the AppHost's registry-encryption-key parameter gives it: a value and the bucket, no key id.
        await using (var registry = await RegistryHost.StartAsync(servers, database, ByValue(root, FirstKey, retired: null)))
        {
            Assert.Equal(HttpStatusCode.OK, (await registry.Host.Client.PutAsync("/api/2.0/mlflow-artifacts/artifacts/run/old.bin", new ByteArrayContent(plaintext))).StatusCode);
            var record = await GcsApiTests.ReadAsync(await registry.Host.Client.GetAsync("/storage/v1/b/goblin-artifacts/o/run%2Fold.bin"), HttpStatusCode.OK);
            Assert.EndsWith("/" + firstId, record.GetProperty("kmsKeyName").GetString(), StringComparison.Ordinal);
        }

        await using (var registry = await RegistryHost.StartAsync(servers, database, ByValue(root, SecondKey, retired: " " + FirstKey + " ,")))
        {
            Assert.Equal(plaintext, await registry.Host.Client.GetByteArrayAsync("/api/2.0/mlflow-artifacts/artifacts/run/old.bin"));
            Assert.Equal(HttpStatusCode.OK, (await registry.Host.Client.PutAsync("/api/2.0/mlflow-artifacts/artifacts/run/new.bin", new ByteArrayContent(plaintext))).StatusCode);
            var record = await GcsApiTests.ReadAsync(await registry.Host.Client.GetAsync("/storage/v1/b/goblin-artifacts/o/run%2Fnew.bin"), HttpStatusCode.OK);
            Assert.EndsWith("/" + secondId, record.GetProperty("kmsKeyName").GetString(), StringComparison.Ordinal);
        }

        foreach (var data in Directory.EnumerateFiles(Path.Combine(root, "buckets"), "*", SearchOption.AllDirectories))
        {
            Assert.Equal(-1, File.ReadAllBytes(data).AsSpan().IndexOf("secret-weights"u8));
            Assert.DoesNotContain(FirstKey, File.ReadAllText(data), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Mlflow_download_uris_and_the_production_call_hand_out_signed_urls()
    {
        await using var registry = await RegistryHost.StartAsync(servers);
        var artifact = RandomNumberGenerator.GetBytes(10_000);
        using var form = new MultipartFormDataContent
        {
            { new StringContent("""{"metrics":{"eval.accuracy":0.9}}""", Encoding.UTF8, "application/json"), "metadata" },
            { new ByteArrayContent(artifact), "artifact", "model.gguf" },
        };
        Assert.Equal(HttpStatusCode.Created, (await registry.Host.Client.PostAsync("/api/v1/models/signed-model/versions", form)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await registry.Host.Client.PostAsync("/api/v1/models/signed-model/versions/1/promote", null)).StatusCode);

        var uri = (await registry.Mlflow.GetAsync("model-versions/get-download-uri", "name=signed-model&version=1")).GetProperty("artifact_uri").GetString()!;
        Assert.Contains("X-Goog-Signature=", uri, StringComparison.Ordinal);
        Assert.Contains("/goblin-artifacts/models/goblin/signed-model/1/model.gguf?", uri, StringComparison.Ordinal);
        using var plain = new HttpClient();
        Assert.Equal(artifact, await plain.GetByteArrayAsync(uri));

        var production = JsonDocument.Parse(await registry.Host.Client.GetStringAsync("/api/v1/models/signed-model/production")).RootElement;
        var download = production.GetProperty("download_url").GetString()!;
        Assert.Contains("X-Goog-Signature=", download, StringComparison.Ordinal);
        var bytes = await plain.GetByteArrayAsync(download);
        Assert.Equal(production.GetProperty("sha256").GetString(), Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }

    private static Dictionary<string, string?> ByValue(string root, string key, string? retired) => new()
    {
        ["ModelRegistry__ArtifactRoot"] = root,
        ["ModelRegistry__Storage__EncryptedBuckets__0"] = "goblin-artifacts",
        ["ModelRegistry__Storage__EncryptionKey"] = key,
        ["ModelRegistry__Storage__RetiredEncryptionKeys"] = retired,
    };

    private static Dictionary<string, string?> Keys(string root, string active, params (string Id, string Key)[] keys)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ModelRegistry__ArtifactRoot"] = root,
            ["ModelRegistry__Storage__EncryptedBuckets__0"] = "goblin-artifacts",
            ["ModelRegistry__Storage__ActiveEncryptionKey"] = active,
        };
        foreach (var (id, key) in keys)
        {
            settings[$"ModelRegistry__Storage__EncryptionKeys__{id}"] = key;
        }

        return settings;
    }
}
