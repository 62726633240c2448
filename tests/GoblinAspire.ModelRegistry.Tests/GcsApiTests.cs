using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
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
