using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using GoblinAspire.ModelRegistry.Api.Gcs;
using GoblinAspire.ModelRegistry.Objects;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>
/// The GCS JSON API as the official clients use it, over HTTP against a real registry on its local backend.
/// <see cref="GcsBackendApiTests"/> runs every one of these again with the registry on its GCS backend.
/// </summary>
[Collection(PlatformServers.Collection)]
public class GcsApiTests(PlatformServers servers) : IAsyncLifetime
{
    private RegistryHost _registry = null!;

    protected PlatformServers Servers => servers;

    private HttpClient Http => _registry.Host.Client;

    /// <summary>The folder the stored objects' files are in (the registry's own, or its GCS stand-in's).</summary>
    protected virtual string StoredObjectsRoot => _registry.Host.Services.GetRequiredService<IOptions<ModelRegistryOptions>>().Value.ArtifactRoot;

    public async Task InitializeAsync() => _registry = await StartRegistryAsync();

    public virtual async Task DisposeAsync() => await _registry.DisposeAsync();

    protected virtual Task<RegistryHost> StartRegistryAsync() => RegistryHost.StartAsync(servers);

    [Fact]
    public async Task Buckets_are_created_listed_fetched_and_deleted_in_gcs_shape()
    {
        var created = await ReadAsync(await Http.PostAsync("/storage/v1/b?project=goblin", Json("""{"name":"weights-1","labels":{"team":"ml"}}""")), HttpStatusCode.OK);
        Assert.Equal("storage#bucket", created.GetProperty("kind").GetString());
        Assert.Equal("weights-1", created.GetProperty("name").GetString());
        Assert.Equal("1", created.GetProperty("metageneration").GetString());
        Assert.Equal("ml", created.GetProperty("labels").GetProperty("team").GetString());

        await ExpectErrorAsync(await Http.PostAsync("/storage/v1/b?project=goblin", Json("""{"name":"weights-1"}""")), HttpStatusCode.Conflict, "conflict");
        var list = await ReadAsync(await Http.GetAsync("/storage/v1/b?project=goblin"), HttpStatusCode.OK);
        Assert.Contains(list.GetProperty("items").EnumerateArray(), b => b.GetProperty("name").GetString() == "weights-1");
        Assert.Equal("weights-1", (await ReadAsync(await Http.GetAsync("/b/weights-1"), HttpStatusCode.OK)).GetProperty("name").GetString());

        await UploadAsync("weights-1", "x", "1"u8.ToArray());
        await ExpectErrorAsync(await Http.DeleteAsync("/storage/v1/b/weights-1"), HttpStatusCode.Conflict, "conflict");
        Assert.Equal(HttpStatusCode.NoContent, (await Http.DeleteAsync("/storage/v1/b/weights-1/o/x")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await Http.DeleteAsync("/storage/v1/b/weights-1")).StatusCode);
        await ExpectErrorAsync(await Http.GetAsync("/storage/v1/b/weights-1"), HttpStatusCode.NotFound, "notFound");
    }

    [Theory]
    [InlineData("UPPER")]
    [InlineData("ab")]
    [InlineData("-starts-with-dash")]
    [InlineData("has space")]
    [InlineData("goog-bucket")]
    [InlineData("192.168.1.1")]
    [InlineData("api")]
    [InlineData("a..b")]
    public async Task Invalid_bucket_names_are_refused(string name)
    {
        await ExpectErrorAsync(await Http.PostAsync("/storage/v1/b?project=goblin", Json(JsonSerializer.Serialize(new { name }))), HttpStatusCode.BadRequest, "invalid");
    }

    [Fact]
    public async Task Media_uploads_report_gcs_metadata_and_download_with_hashes_and_ranges()
    {
        await CreateBucketAsync("media");
        var content = RandomNumberGenerator.GetBytes(200_000);
        var stored = await UploadAsync("media", "models/tiny/model.gguf", content, "application/octet-stream");
        Assert.Equal("storage#object", stored.GetProperty("kind").GetString());
        Assert.Equal("200000", stored.GetProperty("size").GetString());
        Assert.True(long.TryParse(stored.GetProperty("generation").GetString(), out _));
        Assert.Equal("1", stored.GetProperty("metageneration").GetString());
        Assert.Equal(Convert.ToBase64String(MD5.HashData(content)), stored.GetProperty("md5Hash").GetString());
        Assert.Equal(Crc32C.ToBase64(Crc32C.Compute(content)), stored.GetProperty("crc32c").GetString());
        Assert.Contains("/download/storage/v1/b/media/o/models%2Ftiny%2Fmodel.gguf", stored.GetProperty("mediaLink").GetString(), StringComparison.Ordinal);

        using (var download = await Http.GetAsync("/storage/v1/b/media/o/models%2Ftiny%2Fmodel.gguf?alt=media"))
        {
            Assert.Equal(HttpStatusCode.OK, download.StatusCode);
            Assert.Equal(content, await download.Content.ReadAsByteArrayAsync());
            var hash = download.Headers.GetValues("x-goog-hash").Single();
            Assert.Equal($"crc32c={stored.GetProperty("crc32c").GetString()},md5={stored.GetProperty("md5Hash").GetString()}", hash);
            Assert.Equal("identity", download.Headers.GetValues("x-goog-stored-content-encoding").Single());
        }

        using (var ranged = new HttpRequestMessage(HttpMethod.Get, "/download/storage/v1/b/media/o/models%2Ftiny%2Fmodel.gguf?alt=media"))
        {
            ranged.Headers.Range = new RangeHeaderValue(65_530, 65_545);
            using var partial = await Http.SendAsync(ranged);
            Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
            Assert.Equal("bytes 65530-65545/200000", partial.Content.Headers.ContentRange!.ToString());
            Assert.Equal(content[65_530..65_546], await partial.Content.ReadAsByteArrayAsync());
        }

        using (var suffix = new HttpRequestMessage(HttpMethod.Get, "/storage/v1/b/media/o/models%2Ftiny%2Fmodel.gguf?alt=media"))
        {
            suffix.Headers.Range = new RangeHeaderValue(null, 10);
            using var tail = await Http.SendAsync(suffix);
            Assert.Equal(content[^10..], await tail.Content.ReadAsByteArrayAsync());
        }

        using (var beyond = new HttpRequestMessage(HttpMethod.Get, "/storage/v1/b/media/o/models%2Ftiny%2Fmodel.gguf?alt=media"))
        {
            beyond.Headers.Range = new RangeHeaderValue(300_000, 300_010);
            await ExpectErrorAsync(await Http.SendAsync(beyond), HttpStatusCode.RequestedRangeNotSatisfiable, "requestedRangeNotSatisfiable");
        }

        using (var head = await Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/storage/v1/b/media/o/models%2Ftiny%2Fmodel.gguf?alt=media")))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(200_000, head.Content.Headers.ContentLength);
        }

        // Without the /storage/v1 prefix, as emulator-host clients call it.
        Assert.Equal("200000", (await ReadAsync(await Http.GetAsync("/b/media/o/models%2Ftiny%2Fmodel.gguf"), HttpStatusCode.OK)).GetProperty("size").GetString());
        await ExpectErrorAsync(await Http.GetAsync("/storage/v1/b/media/o/missing"), HttpStatusCode.NotFound, "notFound");
    }

    [Fact]
    public async Task Multipart_uploads_take_metadata_and_refuse_bytes_that_do_not_match_declared_hashes()
    {
        await CreateBucketAsync("multi");
        var content = Encoding.UTF8.GetBytes("hello multipart");
        var stored = await ReadAsync(await Http.PostAsync("/upload/storage/v1/b/multi/o?uploadType=multipart", Multipart(
            $$"""{"name":"dir/hello.txt","contentType":"text/plain","metadata":{"stage":"dev"},"md5Hash":"{{Convert.ToBase64String(MD5.HashData(content))}}"}""", content)), HttpStatusCode.OK);
        Assert.Equal("text/plain", stored.GetProperty("contentType").GetString());
        Assert.Equal("dev", stored.GetProperty("metadata").GetProperty("stage").GetString());

        var wrong = Convert.ToBase64String(MD5.HashData("other"u8));
        await ExpectErrorAsync(await Http.PostAsync("/upload/storage/v1/b/multi/o?uploadType=multipart", Multipart($$"""{"name":"dir/bad.txt","md5Hash":"{{wrong}}"}""", content)), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.PostAsync("/upload/storage/v1/b/multi/o?uploadType=multipart", Multipart("""{"name":"dir/bad.txt","crc32c":"AAAAAA=="}""", content)), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.GetAsync("/storage/v1/b/multi/o/dir%2Fbad.txt"), HttpStatusCode.NotFound, "notFound");
        await ExpectErrorAsync(await Http.PostAsync("/upload/storage/v1/b/multi/o?uploadType=multipart", new StringContent("no boundary")), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.PostAsync("/upload/storage/v1/b/multi/o?uploadType=multipart", Multipart("{not json", content)), HttpStatusCode.BadRequest, "parseError");
        await ExpectErrorAsync(await Http.PostAsync("/upload/storage/v1/b/multi/o?uploadType=sideways&name=x", new ByteArrayContent(content)), HttpStatusCode.BadRequest, "invalid");
    }

    [Fact]
    public async Task Resumable_uploads_take_chunks_report_progress_with_308_and_finish_with_the_object()
    {
        await CreateBucketAsync("resume");
        var content = RandomNumberGenerator.GetBytes((3 * 256 * 1024) + 1000);
        using var start = new HttpRequestMessage(HttpMethod.Post, "/upload/storage/v1/b/resume/o?uploadType=resumable") { Content = Json("""{"name":"ckpt/step-100.bin","metadata":{"step":"100"}}""") };
        start.Headers.Add("X-Upload-Content-Type", "application/x-checkpoint");
        using var started = await Http.SendAsync(start);
        Assert.Equal(HttpStatusCode.OK, started.StatusCode);
        var session = started.Headers.Location!;
        Assert.True(session.IsAbsoluteUri);

        Assert.Equal(308, (int)(await PutChunkAsync(session, content, 0, 256 * 1024, null)).StatusCode);
        using (var status = await PutChunkAsync(session, [], null, null, null))
        {
            Assert.Equal(308, (int)status.StatusCode);
            Assert.Equal($"bytes=0-{(256 * 1024) - 1}", status.Headers.GetValues("Range").Single());
        }

        // A resend that overlaps what the session holds is skipped, as GCS skips it.
        Assert.Equal(308, (int)(await PutChunkAsync(session, content, 128 * 1024, 2 * 256 * 1024, null)).StatusCode);
        // A chunk beyond what the session holds leaves a gap: refused, nothing appended.
        await ExpectErrorAsync(await PutChunkAsync(session, content, 3 * 256 * 1024, 1000, null), HttpStatusCode.BadRequest, "invalid");
        // A Content-Range that disagrees with the body's length is refused.
        using (var lying = new HttpRequestMessage(HttpMethod.Put, session) { Content = new ByteArrayContent(content[..10]) })
        {
            lying.Content.Headers.ContentRange = new ContentRangeHeaderValue(512 * 1024, (512 * 1024) + 99);
            await ExpectErrorAsync(await Http.SendAsync(lying), HttpStatusCode.BadRequest, "invalid");
        }

        var rest = content.Length - (512 * 1024);
        using (var final = await PutChunkAsync(session, content, 512 * 1024, rest, content.Length))
        {
            var done = await ReadAsync(final, HttpStatusCode.OK);
            Assert.Equal(content.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), done.GetProperty("size").GetString());
            Assert.Equal("application/x-checkpoint", done.GetProperty("contentType").GetString());
            Assert.Equal("100", done.GetProperty("metadata").GetProperty("step").GetString());
        }

        Assert.Equal(content, await Http.GetByteArrayAsync("/storage/v1/b/resume/o/ckpt%2Fstep-100.bin?alt=media"));

        using var again = new HttpRequestMessage(HttpMethod.Post, "/upload/storage/v1/b/resume/o?uploadType=resumable&name=cancelled.bin");
        var cancelled = (await Http.SendAsync(again)).Headers.Location!;
        Assert.Equal(308, (int)(await PutChunkAsync(cancelled, content, 0, 1000, null)).StatusCode);
        Assert.Equal(499, (int)(await Http.DeleteAsync(cancelled)).StatusCode);
        await ExpectErrorAsync(await PutChunkAsync(cancelled, [], null, null, null), HttpStatusCode.NotFound, "notFound");
        await ExpectErrorAsync(await Http.GetAsync("/storage/v1/b/resume/o/cancelled.bin"), HttpStatusCode.NotFound, "notFound");
        await ExpectErrorAsync(await Http.PutAsync("/upload/storage/v1/b/resume/o?uploadType=resumable&upload_id=made-up", new ByteArrayContent([])), HttpStatusCode.NotFound, "notFound");
    }

    [Fact]
    public async Task Listing_uses_prefixes_delimiters_offsets_and_page_tokens()
    {
        await CreateBucketAsync("listing");
        foreach (var name in new[] { "a.txt", "models/m1/1/w.bin", "models/m1/2/w.bin", "models/m2/1/w.bin", "runs/r1/metrics.json", "z.txt" })
        {
            await UploadAsync("listing", name, "x"u8.ToArray());
        }

        var top = await ReadAsync(await Http.GetAsync("/storage/v1/b/listing/o?delimiter=/"), HttpStatusCode.OK);
        Assert.Equal(["models/", "runs/"], top.GetProperty("prefixes").EnumerateArray().Select(p => p.GetString()));
        Assert.Equal(["a.txt", "z.txt"], top.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()));

        var models = await ReadAsync(await Http.GetAsync("/storage/v1/b/listing/o?prefix=models/&delimiter=/"), HttpStatusCode.OK);
        Assert.Equal(["models/m1/", "models/m2/"], models.GetProperty("prefixes").EnumerateArray().Select(p => p.GetString()));
        Assert.False(models.TryGetProperty("items", out _));

        var names = new List<string>();
        string? token = null;
        do
        {
            var page = await ReadAsync(await Http.GetAsync($"/storage/v1/b/listing/o?maxResults=2{(token is null ? "" : "&pageToken=" + token)}"), HttpStatusCode.OK);
            names.AddRange(page.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()!));
            token = page.TryGetProperty("nextPageToken", out var next) ? next.GetString() : null;
        }
        while (token is not null);
        Assert.Equal(6, names.Count);
        Assert.Equal(names.Order(StringComparer.Ordinal), names);

        var window = await ReadAsync(await Http.GetAsync("/storage/v1/b/listing/o?startOffset=models/m2&endOffset=z"), HttpStatusCode.OK);
        Assert.Equal(["models/m2/1/w.bin", "runs/r1/metrics.json"], window.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()));
        await ExpectErrorAsync(await Http.GetAsync("/storage/v1/b/listing/o?maxResults=-1"), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.GetAsync("/storage/v1/b/nope/o"), HttpStatusCode.NotFound, "notFound");
    }

    [Fact]
    public async Task Patch_bumps_the_metageneration_and_preconditions_answer_412()
    {
        await CreateBucketAsync("preconditions");
        var first = await UploadAsync("preconditions", "w.bin", "one"u8.ToArray());
        var generation = first.GetProperty("generation").GetString();

        // ifGenerationMatch=0: only if nothing is there yet.
        await ExpectErrorAsync(await Http.PostAsync("/upload/storage/v1/b/preconditions/o?uploadType=media&name=w.bin&ifGenerationMatch=0", new ByteArrayContent("two"u8.ToArray())), HttpStatusCode.PreconditionFailed, "conditionNotMet");
        Assert.Equal("one", await Http.GetStringAsync("/storage/v1/b/preconditions/o/w.bin?alt=media"));

        var patched = await ReadAsync(await Http.PatchAsync($"/storage/v1/b/preconditions/o/w.bin?ifMetagenerationMatch=1", Json("""{"metadata":{"stage":"prod","drop":"x"},"contentType":"application/x-gguf"}""")), HttpStatusCode.OK);
        Assert.Equal("2", patched.GetProperty("metageneration").GetString());
        Assert.Equal(generation, patched.GetProperty("generation").GetString());
        Assert.Equal("application/x-gguf", patched.GetProperty("contentType").GetString());
        var removed = await ReadAsync(await Http.PatchAsync("/storage/v1/b/preconditions/o/w.bin", Json("""{"metadata":{"drop":null}}""")), HttpStatusCode.OK);
        Assert.False(removed.GetProperty("metadata").TryGetProperty("drop", out _));
        await ExpectErrorAsync(await Http.PatchAsync("/storage/v1/b/preconditions/o/w.bin?ifMetagenerationMatch=1", Json("""{"metadata":{"a":"b"}}""")), HttpStatusCode.PreconditionFailed, "conditionNotMet");
        await ExpectErrorAsync(await Http.PatchAsync("/storage/v1/b/preconditions/o/w.bin?ifMetagenerationNotMatch=3", Json("{}")), HttpStatusCode.PreconditionFailed, "conditionNotMet");

        var replaced = await ReadAsync(await Http.PostAsync($"/upload/storage/v1/b/preconditions/o?uploadType=media&name=w.bin&ifGenerationMatch={generation}", new ByteArrayContent("two"u8.ToArray())), HttpStatusCode.OK);
        Assert.NotEqual(generation, replaced.GetProperty("generation").GetString());
        await ExpectErrorAsync(await Http.GetAsync($"/storage/v1/b/preconditions/o/w.bin?alt=media&generation={generation}"), HttpStatusCode.NotFound, "notFound");
        await ExpectErrorAsync(await Http.DeleteAsync($"/storage/v1/b/preconditions/o/w.bin?ifGenerationMatch={generation}"), HttpStatusCode.PreconditionFailed, "conditionNotMet");
        await ExpectErrorAsync(await Http.GetAsync($"/storage/v1/b/preconditions/o/w.bin?ifGenerationNotMatch={replaced.GetProperty("generation").GetString()}"), HttpStatusCode.PreconditionFailed, "conditionNotMet");
        Assert.Equal("two", await Http.GetStringAsync("/storage/v1/b/preconditions/o/w.bin?alt=media"));
    }

    [Fact]
    public async Task Rewrite_and_copy_duplicate_objects_across_buckets()
    {
        await CreateBucketAsync("src-bucket");
        await CreateBucketAsync("dst-bucket");
        var content = RandomNumberGenerator.GetBytes(100_000);
        await UploadAsync("src-bucket", "runs/1/model.bin", content, "application/x-model");

        var rewrite = await ReadAsync(await Http.PostAsync("/storage/v1/b/src-bucket/o/runs%2F1%2Fmodel.bin/rewriteTo/b/dst-bucket/o/models%2Fm%2F1%2Fmodel.bin", Json("{}")), HttpStatusCode.OK);
        Assert.True(rewrite.GetProperty("done").GetBoolean());
        Assert.Equal("100000", rewrite.GetProperty("totalBytesRewritten").GetString());
        Assert.Equal("application/x-model", rewrite.GetProperty("resource").GetProperty("contentType").GetString());
        Assert.Equal(content, await Http.GetByteArrayAsync("/storage/v1/b/dst-bucket/o/models%2Fm%2F1%2Fmodel.bin?alt=media"));

        var copy = await ReadAsync(await Http.PostAsync("/storage/v1/b/src-bucket/o/runs%2F1%2Fmodel.bin/copyTo/b/dst-bucket/o/copy.bin", Json("""{"contentType":"text/plain"}""")), HttpStatusCode.OK);
        Assert.Equal("text/plain", copy.GetProperty("contentType").GetString());
        Assert.Equal(content, await Http.GetByteArrayAsync("/storage/v1/b/dst-bucket/o/copy.bin?alt=media"));
        await ExpectErrorAsync(await Http.PostAsync("/storage/v1/b/src-bucket/o/runs%2F1%2Fmodel.bin/copyTo/b/dst-bucket/o/copy.bin?ifGenerationMatch=0", Json("{}")), HttpStatusCode.PreconditionFailed, "conditionNotMet");
        await ExpectErrorAsync(await Http.PostAsync("/storage/v1/b/src-bucket/o/missing/rewriteTo/b/dst-bucket/o/x", Json("{}")), HttpStatusCode.NotFound, "notFound");
        await ExpectErrorAsync(await Http.PostAsync("/storage/v1/b/src-bucket/o/runs%2F1%2Fmodel.bin/moveSideways", Json("{}")), HttpStatusCode.NotFound, "notFound");
    }

    [Theory]
    [InlineData("..%2F..%2Fetc%2Fpasswd")]
    [InlineData("a%2F..%2Fb")]
    [InlineData("%2Fabsolute")]
    [InlineData("nul%00byte")]
    [InlineData("back%5Cslash")]
    [InlineData("line%0Abreak")]
    public async Task Hostile_object_names_are_refused_and_store_nothing(string encoded)
    {
        await CreateBucketAsync("hostile");
        await ExpectErrorAsync(await Http.PostAsync($"/upload/storage/v1/b/hostile/o?uploadType=media&name={encoded}", new ByteArrayContent("x"u8.ToArray())), HttpStatusCode.BadRequest, "invalid");
        // Kestrel itself refuses some of these in a path (an encoded NUL) before the API sees them; 400 either way.
        using (var fetch = await Http.GetAsync($"/storage/v1/b/hostile/o/{encoded}"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, fetch.StatusCode);
        }

        Assert.False((await ReadAsync(await Http.GetAsync("/storage/v1/b/hostile/o"), HttpStatusCode.OK)).TryGetProperty("items", out _));
    }

    [Fact]
    public async Task Oversized_and_malformed_metadata_is_refused_and_changes_nothing()
    {
        await CreateBucketAsync("limits");
        await UploadAsync("limits", "w.bin", "keep"u8.ToArray());
        var big = JsonSerializer.Serialize(new { metadata = new { blob = new string('x', 9000) } });
        await ExpectErrorAsync(await Http.PatchAsync("/storage/v1/b/limits/o/w.bin", Json(big)), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.PatchAsync("/storage/v1/b/limits/o/w.bin", Json(JsonSerializer.Serialize(new { contentType = new string('y', 2_000_000) }))), HttpStatusCode.RequestEntityTooLarge, "uploadTooLarge");
        await ExpectErrorAsync(await Http.PatchAsync("/storage/v1/b/limits/o/w.bin", Json("{\"metadata\":")), HttpStatusCode.BadRequest, "parseError");
        await ExpectErrorAsync(await Http.PatchAsync("/storage/v1/b/limits/o/w.bin", Json("""{"metadata":{"k":{"nested":1}}}""")), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.PostAsync("/storage/v1/b?project=goblin", Json("[]")), HttpStatusCode.BadRequest, "invalid");
        var record = await ReadAsync(await Http.GetAsync("/storage/v1/b/limits/o/w.bin"), HttpStatusCode.OK);
        Assert.Equal("1", record.GetProperty("metageneration").GetString());
        Assert.Equal("keep", await Http.GetStringAsync("/storage/v1/b/limits/o/w.bin?alt=media"));
    }

    [Fact]
    public async Task A_truncated_upload_leaves_the_previous_generation_whole()
    {
        await CreateBucketAsync("truncated");
        await UploadAsync("truncated", "w.bin", "old"u8.ToArray());
        using (var socket = new TcpClient())
        {
            await socket.ConnectAsync(_registry.Host.BaseAddress.Host, _registry.Host.BaseAddress.Port);
            var head = "POST /upload/storage/v1/b/truncated/o?uploadType=media&name=w.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n" + new string('n', 100_000);
            await socket.GetStream().WriteAsync(Encoding.ASCII.GetBytes(head));
        }

        var root = _registry.Host.Services.GetRequiredService<IOptions<ModelRegistryOptions>>().Value.ArtifactRoot;
        await Eventually.HoldsAsync(() => Task.FromResult(!Directory.EnumerateFiles(Path.Combine(root, ".staging")).Any()), TimeSpan.FromSeconds(5), "the partial upload to be discarded");
        Assert.Equal("old", await Http.GetStringAsync("/storage/v1/b/truncated/o/w.bin?alt=media"));
    }

    [Fact]
    public async Task Signed_urls_serve_get_and_put_and_refuse_any_changed_byte_or_expiry()
    {
        await CreateBucketAsync("signed");
        var content = RandomNumberGenerator.GetBytes(70_000);
        await UploadAsync("signed", "models/goblin/m/1/model.gguf", content);
        var url = await MintAsync("signed", "models/goblin/m/1/model.gguf", "GET", null);
        Assert.StartsWith($"{_registry.Host.BaseAddress.ToString().TrimEnd('/')}/signed/models/goblin/m/1/model.gguf?X-Goog-Algorithm=GOOG4-HMAC-SHA256", url, StringComparison.Ordinal);
        Assert.Contains("X-Goog-Expires=3600", url, StringComparison.Ordinal);
        using (var plain = new HttpClient())
        {
            Assert.Equal(content, await plain.GetByteArrayAsync(url));
        }

        foreach (var tampered in new[]
        {
            url.Replace("/model.gguf", "/model.ggug", StringComparison.Ordinal),
            url.Replace("X-Goog-Expires=3600", "X-Goog-Expires=3601", StringComparison.Ordinal),
            url[..^1] + (url[^1] == '0' ? '1' : '0'),
            url + "&extra=1",
        })
        {
            using var refused = await Http.GetAsync(tampered);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Contains("<Code>SignatureDoesNotMatch</Code>", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var otherHost = new HttpRequestMessage(HttpMethod.Get, url))
        {
            otherHost.Headers.Host = "evil.example";
            Assert.Equal(HttpStatusCode.Forbidden, (await Http.SendAsync(otherHost)).StatusCode);
        }

        // A GET signature does not authorise a PUT.
        Assert.Equal(HttpStatusCode.Forbidden, (await Http.PutAsync(url, new ByteArrayContent([1]))).StatusCode);
        Assert.Equal(content, await Http.GetByteArrayAsync(url));

        var put = await MintAsync("signed", "checkpoints/job-1/step-1.bin", "PUT", 600);
        Assert.Equal(HttpStatusCode.OK, (await Http.PutAsync(put, new ByteArrayContent("checkpoint"u8.ToArray()))).StatusCode);
        Assert.Equal("checkpoint", await Http.GetStringAsync("/storage/v1/b/signed/o/checkpoints%2Fjob-1%2Fstep-1.bin?alt=media"));

        var shortLived = await MintAsync("signed", "models/goblin/m/1/model.gguf", "GET", 1);
        await Task.Delay(TimeSpan.FromSeconds(2.2));
        using (var expired = await Http.GetAsync(shortLived))
        {
            Assert.Equal(HttpStatusCode.BadRequest, expired.StatusCode);
            Assert.Contains("<Code>ExpiredToken</Code>", await expired.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await ExpectErrorAsync(await Http.PostAsync("/api/v1/storage/signed-urls", Json("""{"bucket":"signed","object":"x","expires_in":604801}""")), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.PostAsync("/api/v1/storage/signed-urls", Json("""{"bucket":"signed","object":"x","method":"DELETE"}""")), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.PostAsync("/api/v1/storage/signed-urls", Json("""{"bucket":"signed","object":"../x"}""")), HttpStatusCode.BadRequest, "invalid");
    }

    [Fact]
    public async Task A_corrupted_object_is_answered_with_an_error_never_with_wrong_bytes()
    {
        await CreateBucketAsync("corrupt");
        var content = RandomNumberGenerator.GetBytes(4 * ObjectFrames.FrameSize);
        await UploadAsync("corrupt", "first.bin", content);
        await UploadAsync("corrupt", "later.bin", content);
        FlipStoredByte("corrupt", "first.bin", ObjectFrames.HeaderSize + 100);
        FlipStoredByte("corrupt", "later.bin", ObjectFrames.HeaderSize + (3 * (ObjectFrames.FrameSize + 4)) + 5);

        await ExpectErrorAsync(await Http.GetAsync("/storage/v1/b/corrupt/o/first.bin?alt=media"), HttpStatusCode.InternalServerError, "dataLoss");
        // Damage further in is found after the headers are out: the body is cut short instead of carrying wrong bytes.
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => Http.GetByteArrayAsync("/storage/v1/b/corrupt/o/later.bin?alt=media"));
        using var before = new HttpRequestMessage(HttpMethod.Get, "/storage/v1/b/corrupt/o/later.bin?alt=media");
        before.Headers.Range = new RangeHeaderValue(0, 1000);
        Assert.Equal(content[..1001], await (await Http.SendAsync(before)).Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Resumable_uploads_accept_every_content_range_form_gcs_accepts()
    {
        await CreateBucketAsync("ranges");
        var content = RandomNumberGenerator.GetBytes((2 * 256 * 1024) + 777);
        var md5 = Convert.ToBase64String(MD5.HashData(content));

        // The official clients' default: one PUT of unknown length and unknown total (bytes 0-*/*).
        var single = await StartSessionAsync("ranges", "single.bin");
        Assert.Equal(md5, (await ReadAsync(await PutRangeAsync(single, content, "bytes 0-*/*"), HttpStatusCode.OK)).GetProperty("md5Hash").GetString());

        // The same with the total known, and with a chunked body (no Content-Length).
        var known = await StartSessionAsync("ranges", "known.bin");
        Assert.Equal(md5, (await ReadAsync(await PutRangeAsync(known, content, $"bytes 0-*/{content.Length}"), HttpStatusCode.OK)).GetProperty("md5Hash").GetString());
        var chunked = await StartSessionAsync("ranges", "chunked.bin");
        Assert.Equal(md5, (await ReadAsync(await PutRangeAsync(chunked, content, "bytes 0-*/*", chunkedBody: true), HttpStatusCode.OK)).GetProperty("md5Hash").GetString());

        // Chunks of unknown total, the rest streamed to the request's end.
        var streamed = await StartSessionAsync("ranges", "streamed.bin");
        using (var first = await PutRangeAsync(streamed, content[..(256 * 1024)], "bytes 0-262143/*"))
        {
            Assert.Equal(308, (int)first.StatusCode);
            Assert.Equal("bytes=0-262143", first.Headers.GetValues("Range").Single());
        }

        Assert.Equal(md5, (await ReadAsync(await PutRangeAsync(streamed, content[(256 * 1024)..], "bytes 262144-*/*"), HttpStatusCode.OK)).GetProperty("md5Hash").GetString());

        // Every byte sent with an unknown total, then the upload finished by naming it (bytes */N, no body).
        var finished = await StartSessionAsync("ranges", "finished.bin");
        Assert.Equal(308, (int)(await PutRangeAsync(finished, content[..(512 * 1024)], "bytes 0-524287/*")).StatusCode);
        Assert.Equal(308, (int)(await PutRangeAsync(finished, content[(512 * 1024)..], $"bytes 524288-{content.Length - 1}/*")).StatusCode);
        Assert.Equal(md5, (await ReadAsync(await PutRangeAsync(finished, [], $"bytes */{content.Length}"), HttpStatusCode.OK)).GetProperty("md5Hash").GetString());

        // No Content-Range at all: the body is the whole object.
        var whole = await StartSessionAsync("ranges", "whole.bin");
        Assert.Equal(md5, (await ReadAsync(await PutRangeAsync(whole, content, null), HttpStatusCode.OK)).GetProperty("md5Hash").GetString());

        // An empty object in one open-ended PUT.
        var empty = await StartSessionAsync("ranges", "empty.bin");
        Assert.Equal("0", (await ReadAsync(await PutRangeAsync(empty, [], "bytes 0-*/*"), HttpStatusCode.OK)).GetProperty("size").GetString());

        foreach (var name in new[] { "single.bin", "known.bin", "chunked.bin", "streamed.bin", "finished.bin", "whole.bin" })
        {
            Assert.Equal(content, await Http.GetByteArrayAsync($"/storage/v1/b/ranges/o/{name}?alt=media"));
        }

        var refused = await StartSessionAsync("ranges", "refused.bin");
        foreach (var header in new[] { "bytes 0-*/10", "bytes x-*/*", "bytes -5/*", "bytes 0-*/99999999999999999999", "items 0-*/*", "bytes 10-5/*" })
        {
            await ExpectErrorAsync(await PutRangeAsync(refused, content, header), HttpStatusCode.BadRequest, "invalid");
        }
    }

    [Fact]
    public async Task Match_glob_filters_listings_with_gcs_glob_semantics()
    {
        await CreateBucketAsync("globs");
        foreach (var name in new[] { "a.txt", "b.bin", "dir/a.txt", "dir/sub/c.txt", "dir/sub/deep/d.txt", "ab.txt", "x/y.json" })
        {
            await UploadAsync("globs", name, "x"u8.ToArray());
        }

        async Task<string[]> ListAsync(string glob)
        {
            var page = await ReadAsync(await Http.GetAsync($"/storage/v1/b/globs/o?matchGlob={Uri.EscapeDataString(glob)}"), HttpStatusCode.OK);
            return page.TryGetProperty("items", out var items) ? items.EnumerateArray().Select(i => i.GetProperty("name").GetString()!).ToArray() : [];
        }

        Assert.Equal(["a.txt", "ab.txt"], await ListAsync("*.txt"));
        Assert.Equal(["a.txt", "ab.txt", "dir/a.txt", "dir/sub/c.txt", "dir/sub/deep/d.txt"], await ListAsync("**.txt"));
        Assert.Equal(["dir/a.txt", "dir/sub/c.txt", "dir/sub/deep/d.txt"], await ListAsync("dir/**/*.txt"));
        Assert.Equal(["a.txt"], await ListAsync("?.txt"));
        Assert.Equal(["a.txt", "b.bin"], await ListAsync("[ab].*"));
        Assert.Equal(["b.bin"], await ListAsync("[!a]*"));
        Assert.Equal(["b.bin", "x/y.json"], await ListAsync("**.{bin,json}"));
        Assert.Equal(["dir/sub/c.txt"], await ListAsync("dir/*/c.txt"));
        Assert.Empty(await ListAsync("*/c.txt"));
        foreach (var malformed in new[] { "[abc", "{a,b", "a\\", "[z-a]" })
        {
            await ExpectErrorAsync(await Http.GetAsync($"/storage/v1/b/globs/o?matchGlob={Uri.EscapeDataString(malformed)}"), HttpStatusCode.BadRequest, "invalid");
        }
    }

    [Fact]
    public async Task Compose_concatenates_sources_into_a_composite_with_a_crc32c_and_no_md5()
    {
        await CreateBucketAsync("compose");
        var parts = Enumerable.Range(0, 3).Select(i => RandomNumberGenerator.GetBytes(70_000 + i)).ToArray();
        var generations = new List<string>();
        for (var i = 0; i < parts.Length; i++)
        {
            generations.Add((await UploadAsync("compose", $"parts/{i}", parts[i])).GetProperty("generation").GetString()!);
        }

        var all = parts.SelectMany(p => p).ToArray();
        var request = """{"sourceObjects":[{"name":"parts/0","generation":"GEN0"},{"name":"parts/1","objectPreconditions":{"ifGenerationMatch":GEN1}},{"name":"parts/2"}],"destination":{"contentType":"application/x-shards","metadata":{"kind":"joined"}}}"""
            .Replace("GEN0", generations[0], StringComparison.Ordinal).Replace("GEN1", generations[1], StringComparison.Ordinal);
        var composed = await ReadAsync(await Http.PostAsync("/storage/v1/b/compose/o/joined.bin/compose", Json(request)), HttpStatusCode.OK);
        Assert.Equal(all.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), composed.GetProperty("size").GetString());
        Assert.Equal(Crc32C.ToBase64(Crc32C.Compute(all)), composed.GetProperty("crc32c").GetString());
        Assert.False(composed.TryGetProperty("md5Hash", out _));
        Assert.Equal(3, composed.GetProperty("componentCount").GetInt32());
        Assert.Equal("application/x-shards", composed.GetProperty("contentType").GetString());
        Assert.Equal("joined", composed.GetProperty("metadata").GetProperty("kind").GetString());
        using (var download = await Http.GetAsync("/storage/v1/b/compose/o/joined.bin?alt=media"))
        {
            Assert.Equal(all, await download.Content.ReadAsByteArrayAsync());
            Assert.Equal($"crc32c={composed.GetProperty("crc32c").GetString()}", download.Headers.GetValues("x-goog-hash").Single());
        }

        // A composite of composites counts its components.
        var again = await ReadAsync(await Http.PostAsync("/storage/v1/b/compose/o/twice.bin/compose", Json("""{"sourceObjects":[{"name":"joined.bin"},{"name":"parts/0"}]}""")), HttpStatusCode.OK);
        Assert.Equal(4, again.GetProperty("componentCount").GetInt32());

        await ExpectErrorAsync(await Http.PostAsync("/storage/v1/b/compose/o/x.bin/compose", Json("""{"sourceObjects":[{"name":"parts/0","objectPreconditions":{"ifGenerationMatch":"1"}}]}""")), HttpStatusCode.PreconditionFailed, "conditionNotMet");
        await ExpectErrorAsync(await Http.PostAsync("/storage/v1/b/compose/o/joined.bin/compose?ifGenerationMatch=0", Json("""{"sourceObjects":[{"name":"parts/0"}]}""")), HttpStatusCode.PreconditionFailed, "conditionNotMet");
        await ExpectErrorAsync(await Http.PostAsync("/storage/v1/b/compose/o/x.bin/compose", Json("""{"sourceObjects":[{"name":"parts/missing"}]}""")), HttpStatusCode.NotFound, "notFound");
        await ExpectErrorAsync(await Http.PostAsync("/storage/v1/b/compose/o/x.bin/compose", Json("""{"sourceObjects":[]}""")), HttpStatusCode.BadRequest, "required");
        var tooMany = JsonSerializer.Serialize(new { sourceObjects = Enumerable.Range(0, 33).Select(_ => new { name = "parts/0" }) });
        await ExpectErrorAsync(await Http.PostAsync("/storage/v1/b/compose/o/x.bin/compose", Json(tooMany)), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.GetAsync("/storage/v1/b/compose/o/x.bin"), HttpStatusCode.NotFound, "notFound");
    }

    [Fact]
    public async Task Bucket_patch_sets_and_removes_labels_and_bumps_the_metageneration()
    {
        await ReadAsync(await Http.PostAsync("/storage/v1/b?project=goblin", Json("""{"name":"labelled","labels":{"team":"ml","drop":"me"}}""")), HttpStatusCode.OK);
        var patched = await ReadAsync(await Http.PatchAsync("/storage/v1/b/labelled?ifMetagenerationMatch=1", Json("""{"labels":{"stage":"prod","drop":null}}""")), HttpStatusCode.OK);
        Assert.Equal("2", patched.GetProperty("metageneration").GetString());
        Assert.Equal("prod", patched.GetProperty("labels").GetProperty("stage").GetString());
        Assert.Equal("ml", patched.GetProperty("labels").GetProperty("team").GetString());
        Assert.False(patched.GetProperty("labels").TryGetProperty("drop", out _));
        Assert.Equal("2", (await ReadAsync(await Http.GetAsync("/storage/v1/b/labelled"), HttpStatusCode.OK)).GetProperty("metageneration").GetString());

        await ExpectErrorAsync(await Http.PatchAsync("/storage/v1/b/labelled?ifMetagenerationMatch=1", Json("""{"labels":{"a":"b"}}""")), HttpStatusCode.PreconditionFailed, "conditionNotMet");
        await ExpectErrorAsync(await Http.PatchAsync("/storage/v1/b/labelled", Json("""{"labels":{"Upper":"x"}}""")), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.PatchAsync("/storage/v1/b/labelled", Json("""{"versioning":{"enabled":true}}""")), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.PatchAsync("/storage/v1/b/no-such-bucket", Json("""{"labels":{"a":"b"}}""")), HttpStatusCode.NotFound, "notFound");
        var cleared = await ReadAsync(await Http.PatchAsync("/storage/v1/b/labelled", Json("""{"labels":null}""")), HttpStatusCode.OK);
        Assert.False(cleared.TryGetProperty("labels", out _));
        Assert.Equal("3", cleared.GetProperty("metageneration").GetString());
    }

    [Fact]
    public async Task Signed_url_puts_honour_generation_preconditions()
    {
        await CreateBucketAsync("signed-pre");
        var first = await UploadAsync("signed-pre", "w.bin", "one"u8.ToArray());
        var put = await MintAsync("signed-pre", "w.bin", "PUT", 600);

        using (var onlyIfAbsent = new HttpRequestMessage(HttpMethod.Put, put) { Content = new ByteArrayContent("two"u8.ToArray()) })
        {
            onlyIfAbsent.Headers.Add("x-goog-if-generation-match", "0");
            using var refused = await Http.SendAsync(onlyIfAbsent);
            Assert.Equal(HttpStatusCode.PreconditionFailed, refused.StatusCode);
            Assert.Contains("<Code>PreconditionFailed</Code>", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var matching = new HttpRequestMessage(HttpMethod.Put, put) { Content = new ByteArrayContent("two"u8.ToArray()) })
        {
            matching.Headers.Add("x-goog-if-generation-match", first.GetProperty("generation").GetString());
            Assert.Equal(HttpStatusCode.OK, (await Http.SendAsync(matching)).StatusCode);
        }

        Assert.Equal("two", await Http.GetStringAsync("/storage/v1/b/signed-pre/o/w.bin?alt=media"));

        // Bound into the URL at minting: the signature covers ifGenerationMatch, so it cannot be dropped.
        var body = JsonSerializer.Serialize(new Dictionary<string, object?> { ["bucket"] = "signed-pre", ["object"] = "w.bin", ["method"] = "PUT", ["if_generation_match"] = 0 });
        var bound = (await ReadAsync(await Http.PostAsync("/api/v1/storage/signed-urls", Json(body)), HttpStatusCode.OK)).GetProperty("url").GetString()!;
        Assert.Contains("ifGenerationMatch=0", bound, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.PreconditionFailed, (await Http.PutAsync(bound, new ByteArrayContent("three"u8.ToArray()))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Http.PutAsync(bound.Replace("&ifGenerationMatch=0", "", StringComparison.Ordinal), new ByteArrayContent("three"u8.ToArray()))).StatusCode);
        var fresh = (await ReadAsync(await Http.PostAsync("/api/v1/storage/signed-urls", Json(body.Replace("w.bin", "new.bin", StringComparison.Ordinal))), HttpStatusCode.OK)).GetProperty("url").GetString()!;
        Assert.Equal(HttpStatusCode.OK, (await Http.PutAsync(fresh, new ByteArrayContent("new"u8.ToArray()))).StatusCode);
        Assert.Equal("two", await Http.GetStringAsync("/storage/v1/b/signed-pre/o/w.bin?alt=media"));
    }

    [Fact]
    public async Task Signed_urls_of_another_algorithm_or_with_repeated_parameters_are_refused_with_the_reason()
    {
        await CreateBucketAsync("signed-odd");
        await UploadAsync("signed-odd", "w.bin", "one"u8.ToArray());
        var url = await MintAsync("signed-odd", "w.bin", "GET", null);

        using (var rsa = await Http.GetAsync(url.Replace("GOOG4-HMAC-SHA256", "GOOG4-RSA-SHA256", StringComparison.Ordinal)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, rsa.StatusCode);
            var text = await rsa.Content.ReadAsStringAsync();
            Assert.Contains("GOOG4-RSA-SHA256", text, StringComparison.Ordinal);
            Assert.Contains("not supported by this server", text, StringComparison.Ordinal);
            Assert.DoesNotContain("missing", text, StringComparison.Ordinal);
        }

        foreach (var repeated in new[] { "&X-Goog-Date=20200101T000000Z", "&X-Goog-Signature=00", "&x-goog-expires=5" })
        {
            using var twice = await Http.GetAsync(url + repeated);
            Assert.Equal(HttpStatusCode.BadRequest, twice.StatusCode);
            Assert.Contains("<Code>InvalidArgument</Code>", await twice.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Control_characters_and_invalid_unicode_in_names_and_attributes_are_refused()
    {
        await CreateBucketAsync("strict");
        await UploadAsync("strict", "w.bin", "keep"u8.ToArray());
        foreach (var patch in new[]
        {
            """{"contentType":"text/plain\r\nX-Injected: 1"}""",
            """{"contentType":"text/plain\u0000"}""",
            """{"contentType":"text/pl\u00e4in"}""",
            """{"contentEncoding":"gzip\n"}""",
            """{"cacheControl":"no-cache\u0007"}""",
            """{"metadata":{"k":"a\u0000b"}}""",
            """{"metadata":{"k\r\n":"v"}}""",
            """{"metadata":{"k":"\ud800"}}""",
            """{"metadata":{"\udc00":"v"}}""",
        })
        {
            await ExpectErrorAsync(await Http.PatchAsync("/storage/v1/b/strict/o/w.bin", Json(patch)), HttpStatusCode.BadRequest, "invalid");
        }

        await ExpectErrorAsync(await Http.PostAsync("/upload/storage/v1/b/strict/o?uploadType=multipart", Multipart("""{"name":"m.bin","contentType":"a/b\r\nc: d"}""", [1])), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.PostAsync("/upload/storage/v1/b/strict/o?uploadType=multipart", Multipart("""{"name":"\ud800.bin"}""", [1])), HttpStatusCode.BadRequest, "invalid");
        using (var start = new HttpRequestMessage(HttpMethod.Post, "/upload/storage/v1/b/strict/o?uploadType=resumable&name=r.bin"))
        {
            start.Headers.TryAddWithoutValidation("X-Upload-Content-Type", "text/plain\u0001");
            await ExpectErrorAsync(await Http.SendAsync(start), HttpStatusCode.BadRequest, "invalid");
        }

        // Invalid UTF-8 in a name, in the query or the path, is refused rather than stored as U+FFFD or '%FF'.
        await ExpectErrorAsync(await Http.PostAsync("/upload/storage/v1/b/strict/o?uploadType=media&name=a%FFb", new ByteArrayContent([1])), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.PostAsync("/upload/storage/v1/b/strict/o?uploadType=media&name=a%ED%A0%80b", new ByteArrayContent([1])), HttpStatusCode.BadRequest, "invalid");
        await ExpectErrorAsync(await Http.GetAsync("/storage/v1/b/strict/o/a%FFb"), HttpStatusCode.BadRequest, "invalid");

        var record = await ReadAsync(await Http.GetAsync("/storage/v1/b/strict/o/w.bin"), HttpStatusCode.OK);
        Assert.Equal("1", record.GetProperty("metageneration").GetString());
        Assert.Equal("keep", await Http.GetStringAsync("/storage/v1/b/strict/o/w.bin?alt=media"));
        Assert.Equal(["w.bin"], (await ReadAsync(await Http.GetAsync("/storage/v1/b/strict/o"), HttpStatusCode.OK)).GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()));
    }

    [Fact]
    public async Task Malformed_multipart_bodies_and_oversized_chunked_bodies_get_gcs_errors()
    {
        await CreateBucketAsync("malformed");
        foreach (var body in new[]
        {
            "--b\r\nContent-Type: application/json\r\n\r\n{\"name\":\"x\"}\r\n--b\r\nContent-Type: text/plain\r\n\r\nabc",
            "--b\r\nContent-Type: application/json\r\n\r\n{\"name\":\"x\"}",
            "--b\r\n" + new string('h', 20_000) + "\r\n\r\n{}\r\n--b--",
            "--b\r\nbroken header line\r\n\r\n{}\r\n--b--",
            "no boundary anywhere",
        })
        {
            var content = new StringContent(body);
            content.Headers.ContentType = MediaTypeHeaderValue.Parse("multipart/related; boundary=b");
            await ExpectErrorAsync(await Http.PostAsync("/upload/storage/v1/b/malformed/o?uploadType=multipart", content), HttpStatusCode.BadRequest, "invalid");
        }

        // A metadata body sent chunked (no Content-Length) past the limit: 413 with GCS's error, not an empty answer.
        using (var chunked = new HttpRequestMessage(HttpMethod.Patch, "/storage/v1/b/malformed/o/x") { Content = new StreamContent(new MemoryStream(new byte[2 * GcsRequest.MaxMetadataBodyBytes])) })
        {
            chunked.Headers.TransferEncodingChunked = true;
            await ExpectErrorAsync(await Http.SendAsync(chunked), HttpStatusCode.RequestEntityTooLarge, "uploadTooLarge");
        }

        Assert.False((await ReadAsync(await Http.GetAsync("/storage/v1/b/malformed/o"), HttpStatusCode.OK)).TryGetProperty("items", out _));
    }

    private async Task<Uri> StartSessionAsync(string bucket, string name)
    {
        using var start = new HttpRequestMessage(HttpMethod.Post, $"/upload/storage/v1/b/{bucket}/o?uploadType=resumable&name={Uri.EscapeDataString(name)}");
        using var started = await Http.SendAsync(start);
        Assert.Equal(HttpStatusCode.OK, started.StatusCode);
        return started.Headers.Location!;
    }

    private async Task<HttpResponseMessage> PutRangeAsync(Uri session, byte[] body, string? contentRange, bool chunkedBody = false)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, session) { Content = chunkedBody ? new StreamContent(new MemoryStream(body)) : new ByteArrayContent(body) };
        if (chunkedBody)
        {
            request.Headers.TransferEncodingChunked = true;
        }

        if (contentRange is not null)
        {
            request.Content.Headers.TryAddWithoutValidation("Content-Range", contentRange);
        }

        return await Http.SendAsync(request);
    }

    private void FlipStoredByte(string bucket, string name, long offset)
    {
        var root = StoredObjectsRoot;
        var record = Directory.EnumerateFiles(Path.Combine(root, "buckets", bucket, "objects")).Single(f => File.ReadAllText(f).Contains($"\"name\":\"{name}\"", StringComparison.Ordinal));
        var dataFile = JsonDocument.Parse(File.ReadAllText(record)).RootElement.GetProperty("dataFile").GetString()!;
        using var file = File.Open(Path.Combine(root, "buckets", bucket, "data", dataFile), FileMode.Open, FileAccess.ReadWrite);
        file.Position = offset;
        var value = file.ReadByte();
        file.Position = offset;
        file.WriteByte((byte)(value ^ 0xFF));
    }

    private async Task<string> MintAsync(string bucket, string name, string method, int? expiresIn)
    {
        var body = JsonSerializer.Serialize(new Dictionary<string, object?> { ["bucket"] = bucket, ["object"] = name, ["method"] = method, ["expires_in"] = expiresIn });
        return (await ReadAsync(await Http.PostAsync("/api/v1/storage/signed-urls", Json(body)), HttpStatusCode.OK)).GetProperty("url").GetString()!;
    }

    private async Task<HttpResponseMessage> PutChunkAsync(Uri session, byte[] content, long? offset, int? length, long? total)
    {
        var chunk = offset is { } start ? content.AsSpan((int)start, length!.Value).ToArray() : [];
        using var request = new HttpRequestMessage(HttpMethod.Put, session) { Content = new ByteArrayContent(chunk) };
        request.Content.Headers.TryAddWithoutValidation("Content-Range", offset is { } first
            ? $"bytes {first}-{first + length!.Value - 1}/{(total is { } t ? t.ToString(System.Globalization.CultureInfo.InvariantCulture) : "*")}"
            : "bytes */*");
        return await Http.SendAsync(request);
    }

    private async Task CreateBucketAsync(string name) =>
        await ReadAsync(await Http.PostAsync("/storage/v1/b?project=goblin", Json(JsonSerializer.Serialize(new { name }))), HttpStatusCode.OK);

    private async Task<JsonElement> UploadAsync(string bucket, string name, byte[] content, string contentType = "application/octet-stream")
    {
        var body = new ByteArrayContent(content);
        body.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        return await ReadAsync(await Http.PostAsync($"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={Uri.EscapeDataString(name)}", body), HttpStatusCode.OK);
    }

    private static MultipartContent Multipart(string metadata, byte[] media)
    {
        var content = new MultipartContent("related");
        content.Add(new StringContent(metadata, Encoding.UTF8, "application/json"));
        var part = new ByteArrayContent(media);
        part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Add(part);
        return content;
    }

    internal static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    internal static async Task<JsonElement> ReadAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == expected, $"expected {expected}, got {(int)response.StatusCode}: {body}");
            return body.Length == 0 ? default : JsonDocument.Parse(body).RootElement.Clone();
        }
    }

    internal static async Task ExpectErrorAsync(HttpResponseMessage response, HttpStatusCode status, string reason)
    {
        var body = await ReadAsync(response, status);
        var error = body.GetProperty("error");
        Assert.Equal((int)status, error.GetProperty("code").GetInt32());
        Assert.Equal(reason, error.GetProperty("errors")[0].GetProperty("reason").GetString());
        Assert.Equal("global", error.GetProperty("errors")[0].GetProperty("domain").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
    }
}
