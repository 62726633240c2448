using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using GoblinAspire.Testing;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>Objects stored before attribute values were checked still download: a bad value is left out of the headers.</summary>
[Collection(PlatformServers.Collection)]
public sealed class GcsStoredAttributeTests(PlatformServers servers)
{
    [Fact]
    public async Task An_object_stored_with_a_content_type_no_header_may_carry_still_downloads()
    {
        var root = Directory.CreateTempSubdirectory("goblin-artifacts-").FullName;
        var settings = new Dictionary<string, string?> { ["ModelRegistry__ArtifactRoot"] = root };
        await using (var before = await RegistryHost.StartAsync(servers, settings: settings))
        {
            await GcsApiTests.ReadAsync(await before.Host.Client.PostAsync("/storage/v1/b?project=goblin", GcsApiTests.Json("""{"name":"legacy"}""")), HttpStatusCode.OK);
            var body = new ByteArrayContent("old bytes"u8.ToArray());
            body.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
            await GcsApiTests.ReadAsync(await before.Host.Client.PostAsync("/upload/storage/v1/b/legacy/o?uploadType=media&name=w.txt", body), HttpStatusCode.OK);
        }

        // As an earlier version stored it: the values went into the record unchecked.
        var record = Directory.EnumerateFiles(Path.Combine(root, "buckets", "legacy", "objects")).Single();
        var stored = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(File.ReadAllText(record))!;
        stored["contentType"] = JsonSerializer.SerializeToElement("text/plain\r\nX-Injected: 1");
        stored["contentEncoding"] = JsonSerializer.SerializeToElement("gz\u00e4ip");
        File.WriteAllText(record, JsonSerializer.Serialize(stored));

        await using var after = await RegistryHost.StartAsync(servers, settings: settings);
        var http = after.Host.Client;
        using (var download = await http.GetAsync("/storage/v1/b/legacy/o/w.txt?alt=media"))
        {
            Assert.Equal(HttpStatusCode.OK, download.StatusCode);
            Assert.Equal("old bytes", await download.Content.ReadAsStringAsync());
            Assert.Equal("application/octet-stream", download.Content.Headers.ContentType!.MediaType);
            Assert.False(download.Headers.Contains("X-Injected"));
            Assert.Empty(download.Content.Headers.ContentEncoding);
        }

        using (var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/download/storage/v1/b/legacy/o/w.txt?alt=media")))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        }

        var metadata = await GcsApiTests.ReadAsync(await http.GetAsync("/storage/v1/b/legacy/o/w.txt"), HttpStatusCode.OK);
        Assert.Equal("text/plain\r\nX-Injected: 1", metadata.GetProperty("contentType").GetString());

        // And it can be repaired through the API.
        var repaired = await GcsApiTests.ReadAsync(await http.PatchAsync("/storage/v1/b/legacy/o/w.txt", GcsApiTests.Json("""{"contentType":"text/plain","contentEncoding":"identity"}""")), HttpStatusCode.OK);
        Assert.Equal("text/plain", repaired.GetProperty("contentType").GetString());
    }
}
