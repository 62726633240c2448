using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using GoblinAspire.ModelRegistry.Objects;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>Resumable upload sessions outlive the process that started them, and end after their lifetime.</summary>
[Collection(PlatformServers.Collection)]
public sealed class ResumableSessionTests(PlatformServers servers)
{
    private const int Frame = ObjectFrames.FrameSize;

    [Fact]
    public async Task A_session_survives_a_kill_9_and_finishes_with_the_right_bytes_after_a_restart()
    {
        var environment = new Dictionary<string, string>
        {
            ["ConnectionStrings__registrydb"] = await servers.Postgres.CreateDatabaseAsync("registry"),
            ["ModelRegistry__ArtifactRoot"] = Directory.CreateTempSubdirectory("goblin-artifacts-").FullName,
            ["ModelRegistry__Storage__SigningSecret"] = RegistryHost.SigningSecret,
            ["Logging__LogLevel__Default"] = "Warning",
        };
        var content = RandomNumberGenerator.GetBytes((3 * 1024 * 1024) + 12_345);
        var sent = (2 * 1024 * 1024) + 100_000;
        Uri session;
        await using (var first = ServiceProcess.Start("ModelRegistry", environment))
        {
            await first.WaitForHealthyAsync(TimeSpan.FromSeconds(60));
            using var http = new HttpClient { BaseAddress = first.BaseAddress };
            await GcsApiTests.ReadAsync(await http.PostAsync("/storage/v1/b?project=goblin", GcsApiTests.Json("""{"name":"restart"}""")), HttpStatusCode.OK);
            using var start = new HttpRequestMessage(HttpMethod.Post, "/upload/storage/v1/b/restart/o?uploadType=resumable&name=ckpt%2Fstep-1.bin") { Content = GcsApiTests.Json("""{"metadata":{"step":"1"}}""") };
            using (var started = await http.SendAsync(start))
            {
                Assert.Equal(HttpStatusCode.OK, started.StatusCode);
                session = started.Headers.Location!;
            }

            using (var chunk = await PutAsync(http, session, content, 0, 2 * 1024 * 1024, null))
            {
                Assert.Equal(308, (int)chunk.StatusCode);
                Assert.Equal($"bytes=0-{(2 * 1024 * 1024) - 1}", chunk.Headers.GetValues("Range").Single());
            }

            // A chunk that ends inside a frame: only the whole frames are durable, and only they are claimed.
            using (var ragged = await PutAsync(http, session, content, 2 * 1024 * 1024, 100_000, null))
            {
                Assert.Equal(308, (int)ragged.StatusCode);
                Assert.Equal($"bytes=0-{Durable(sent) - 1}", ragged.Headers.GetValues("Range").Single());
            }

            first.Crash();
        }

        await using var second = ServiceProcess.Start("ModelRegistry", environment);
        await second.WaitForHealthyAsync(TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = second.BaseAddress };
        var resumed = new Uri(second.BaseAddress, session.PathAndQuery);
        long held;
        using (var status = await PutAsync(client, resumed, [], null, 0, content.Length))
        {
            Assert.Equal(308, (int)status.StatusCode);
            var range = status.Headers.GetValues("Range").Single();
            Assert.Equal($"bytes=0-{Durable(sent) - 1}", range);
            held = long.Parse(range["bytes=0-".Length..], System.Globalization.CultureInfo.InvariantCulture) + 1;
        }

        using (var rest = await PutAsync(client, resumed, content, held, (int)(content.Length - held), content.Length))
        {
            var done = await GcsApiTests.ReadAsync(rest, HttpStatusCode.OK);
            Assert.Equal(Convert.ToBase64String(MD5.HashData(content)), done.GetProperty("md5Hash").GetString());
            Assert.Equal(Crc32C.ToBase64(Crc32C.Compute(content)), done.GetProperty("crc32c").GetString());
            Assert.Equal("1", done.GetProperty("metadata").GetProperty("step").GetString());
        }

        Assert.Equal(content, await client.GetByteArrayAsync("/storage/v1/b/restart/o/ckpt%2Fstep-1.bin?alt=media"));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(environment["ModelRegistry__ArtifactRoot"], UploadSessions.FolderName)));
    }

    [Fact]
    public async Task Expired_sessions_answer_404_and_the_sweep_removes_their_files()
    {
        var root = Directory.CreateTempSubdirectory("goblin-sessions-").FullName;
        var registry = Options.Create(new ModelRegistryOptions { ArtifactRoot = root });
        var storage = Options.Create(new StorageOptions { SigningSecret = RegistryHost.SigningSecret, UploadSessionLifetime = TimeSpan.FromDays(7) });
        var time = new SteppedTime(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var store = new LocalObjectStore(registry, storage, time);
        await store.CreateBucketAsync("sweep", false, null, CancellationToken.None);
        var sessions = new UploadSessions(store, storage, registry, time, NullLogger<UploadSessions>.Instance);
        var target = new UploadTarget("sweep", "x.bin", new ObjectAttributes(), Preconditions.None, null, null);
        var old = await sessions.StartAsync(target, CancellationToken.None);
        var chunk = RandomNumberGenerator.GetBytes(2 * Frame);
        Assert.Equal(2 * Frame, (await sessions.AppendAsync(old, "sweep", new ChunkRange(0, chunk.Length - 1, null), new MemoryStream(chunk), CancellationToken.None)).Received);
        time.Now += TimeSpan.FromDays(6);
        var young = await sessions.StartAsync(target, CancellationToken.None);
        await sessions.AppendAsync(young, "sweep", new ChunkRange(0, chunk.Length - 1, null), new MemoryStream(chunk), CancellationToken.None);
        Assert.Equal(4, Directory.EnumerateFiles(sessions.Folder).Count());

        time.Now += TimeSpan.FromDays(1) + TimeSpan.FromSeconds(1);
        var expired = await Assert.ThrowsAsync<GcsException>(() => sessions.AppendAsync(old, "sweep", new ChunkRange(null, null, null), Stream.Null, CancellationToken.None));
        Assert.Equal(404, expired.StatusCode);
        Assert.Equal(1, await sessions.SweepAsync(CancellationToken.None));
        Assert.Equal([young], Directory.EnumerateFiles(sessions.Folder).Select(f => Path.GetFileName(f).Split('.')[0]).Distinct());

        // Taken up again by a new instance (a restart) with what it held, then swept once its week is out too.
        await sessions.DisposeAsync();
        var restarted = new UploadSessions(store, storage, registry, time, NullLogger<UploadSessions>.Instance);
        Assert.Equal(2 * Frame, (await restarted.AppendAsync(young, "sweep", new ChunkRange(null, null, null), Stream.Null, CancellationToken.None)).Received);
        time.Now += TimeSpan.FromDays(6);
        Assert.Equal(1, await restarted.SweepAsync(CancellationToken.None));
        Assert.Empty(Directory.EnumerateFiles(restarted.Folder));
        await restarted.DisposeAsync();
    }

    [Fact]
    public async Task The_background_sweep_removes_an_abandoned_session_of_a_running_registry()
    {
        await using var registry = await RegistryHost.StartAsync(servers, settings: new Dictionary<string, string?>
        {
            ["ModelRegistry__Storage__UploadSessionLifetime"] = "00:00:01",
            ["ModelRegistry__Storage__UploadSessionSweepInterval"] = "00:00:01",
        });
        var http = registry.Host.Client;
        await GcsApiTests.ReadAsync(await http.PostAsync("/storage/v1/b?project=goblin", GcsApiTests.Json("""{"name":"abandoned"}""")), HttpStatusCode.OK);
        Uri session;
        using (var started = await http.PostAsync("/upload/storage/v1/b/abandoned/o?uploadType=resumable&name=x.bin", null))
        {
            session = started.Headers.Location!;
        }

        var folder = registry.Host.Services.GetRequiredService<UploadSessions>().Folder;
        Assert.NotEmpty(Directory.EnumerateFiles(folder));
        await Eventually.HoldsAsync(() => Task.FromResult(!Directory.EnumerateFiles(folder).Any()), TimeSpan.FromSeconds(30), "the abandoned session's files to be swept");
        await GcsApiTests.ExpectErrorAsync(await PutAsync(http, session, [], null, 0, null), HttpStatusCode.NotFound, "notFound");
    }

    [Theory]
    [InlineData("UploadSessionLifetime", "8.00:00:00")]
    [InlineData("UploadSessionLifetime", "00:00:00")]
    [InlineData("UploadSessionSweepInterval", "00:00:00")]
    public void An_upload_session_lifetime_or_sweep_interval_out_of_range_is_refused_at_start(string option, string value)
    {
        var app = ModelRegistryApp.Build([], builder => TestWebHost.Configure(builder, RegistryHost.Settings(servers.Postgres.ConnectionString(), new Dictionary<string, string?> { [$"ModelRegistry__Storage__{option}"] = value })));
        var error = Assert.Throws<OptionsValidationException>(() => app.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains(option, error.Message, StringComparison.Ordinal);
    }

    /// <summary>What survives a crash of <paramref name="received"/> bytes: the whole frames among them.</summary>
    private static long Durable(long received) => received / Frame * Frame;

    private static async Task<HttpResponseMessage> PutAsync(HttpClient http, Uri session, byte[] content, long? offset, int length, long? total)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, session) { Content = new ByteArrayContent(offset is { } from ? content.AsSpan((int)from, length).ToArray() : []) };
        var totalText = total is { } t ? t.ToString(System.Globalization.CultureInfo.InvariantCulture) : "*";
        request.Content.Headers.TryAddWithoutValidation("Content-Range", offset is { } first ? $"bytes {first}-{first + length - 1}/{totalText}" : $"bytes */{totalText}");
        return await http.SendAsync(request);
    }

    /// <summary>A clock the test moves by hand.</summary>
    private sealed class SteppedTime(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
