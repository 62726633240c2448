using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using GoblinAspire.ModelRegistry.Objects;
using GoblinAspire.Testing;
using Xunit.Abstractions;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>
/// Seeded robustness runs against a real registry: valid GCS requests (JSON API, media, multipart and resumable
/// uploads; signed URLs) mutated in type, truncation, encoding, size, nesting, headers, Content-Range values and query
/// parameters. Every answer must be below 500 and every error in the API's shape; afterwards the service is healthy
/// and every object it lists downloads whole with the MD5 (or, for composites, the CRC-32C) its metadata states.
/// A run sends <see cref="Requests"/> requests; <see cref="Budget"/> only stops one that hangs. The seed is random
/// unless <c>ROBUSTNESS_SEED</c> gives one (as for every robustness test); a failure names it, so the run can be
/// repeated exactly (requests are sent one at a time, so the seed alone fixes the sequence). GCS's protocol needs its
/// own generators here (live upload sessions, Content-Range forms, signed-URL parameters), which the shared JSON
/// mutator in GoblinAspire.Testing does not know.
/// </summary>
[Collection(PlatformServers.Collection)]
public sealed class GcsRobustnessTests(PlatformServers servers, ITestOutputHelper output)
{
    private const int Requests = 10_000;
    private static readonly TimeSpan Budget = TimeSpan.FromMinutes(5);
    private static readonly string[] Buckets = ["fuzz-a", "fuzz-b"];
    private static readonly string[] Names = ["w.bin", "dir/a.txt", "dir/sub/c.bin", "m/\u00e9t\u00e9.bin", "x y+z.bin", "deep/" + new string('n', 200)];

    [Fact]
    public async Task Mutated_json_api_and_upload_requests_never_fail_the_server_or_leave_half_written_objects()
    {
        var seed = Seed();
        await using var registry = await RegistryHost.StartAsync(servers);
        var http = registry.Host.Client;
        await SeedObjectsAsync(http);
        var sessions = new List<string>();
        for (var i = 0; i < 12; i++)
        {
            using var started = await http.PostAsync($"/upload/storage/v1/b/{Buckets[i % 2]}/o?uploadType=resumable&name={Uri.EscapeDataString(Names[i % Names.Length])}", null);
            sessions.Add(started.Headers.Location!.PathAndQuery);
        }

        var generator = new GcsRequests(new Random(seed), sessions);
        var run = await RunAsync(http, seed, generator.Next, xmlAllowed: _ => false, observe: response =>
        {
            // Sessions the run starts are chunked into later in the run.
            if (response.Headers.Location is { } location && location.Query.Contains("upload_id=", StringComparison.Ordinal))
            {
                sessions.Add(location.PathAndQuery);
            }
        });
        await AssertIntactAsync(http, seed);
        output.WriteLine($"GCS JSON API and uploads: {run} (seed {seed})");
    }

    [Fact]
    public async Task Mutated_signed_url_requests_never_fail_the_server_or_leave_half_written_objects()
    {
        var seed = Seed();
        await using var registry = await RegistryHost.StartAsync(servers);
        var http = registry.Host.Client;
        await SeedObjectsAsync(http);
        var urls = new List<(string Method, string Url)>();
        foreach (var bucket in Buckets)
        {
            foreach (var name in Names)
            {
                foreach (var (method, extra) in new[] { ("GET", ""), ("PUT", ""), ("PUT", ",\"if_generation_match\":0") })
                {
                    var body = $$"""{"bucket":"{{bucket}}","object":{{JsonSerializer.Serialize(name)}},"method":"{{method}}"{{extra}}}""";
                    var minted = await GcsApiTests.ReadAsync(await http.PostAsync("/api/v1/storage/signed-urls", GcsApiTests.Json(body)), HttpStatusCode.OK);
                    urls.Add((method, new Uri(minted.GetProperty("url").GetString()!).PathAndQuery));
                }
            }
        }

        var generator = new SignedUrlRequests(new Random(seed), urls);
        var run = await RunAsync(http, seed, generator.Next, xmlAllowed: request => request.SignedPath);
        await AssertIntactAsync(http, seed);
        output.WriteLine($"Signed URLs: {run} (seed {seed})");
    }

    private static int Seed() => GoblinAspire.Testing.Robustness.RobustnessRun.Seed();

    private static async Task SeedObjectsAsync(HttpClient http)
    {
        foreach (var bucket in Buckets)
        {
            await GcsApiTests.ReadAsync(await http.PostAsync("/storage/v1/b?project=goblin", GcsApiTests.Json($$"""{"name":"{{bucket}}"}""")), HttpStatusCode.OK);
            foreach (var name in Names)
            {
                await GcsApiTests.ReadAsync(await http.PostAsync($"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={Uri.EscapeDataString(name)}", new ByteArrayContent(RandomNumberGenerator.GetBytes(5000))), HttpStatusCode.OK);
            }
        }
    }

    private async Task<string> RunAsync(HttpClient http, int seed, Func<FuzzRequest> next, Func<FuzzRequest, bool> xmlAllowed, Action<HttpResponseMessage>? observe = null)
    {
        var statuses = new SortedDictionary<int, int>();
        var clock = Stopwatch.StartNew();
        var sent = 0;
        while (sent < Requests && clock.Elapsed < Budget)
        {
            var request = next();
            using var message = request.ToMessage();
            HttpResponseMessage response;
            byte[] body;
            try
            {
                response = await http.SendAsync(message);
                body = await response.Content.ReadAsByteArrayAsync();
            }
            catch (HttpRequestException ex)
            {
                throw new InvalidOperationException($"seed {seed}, request {sent + 1}: {request} broke the connection", ex);
            }

            using var answered = response;
            observe?.Invoke(response);
            sent++;
            var status = (int)response.StatusCode;
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            var problem = status >= 500 ? "a server error"
                : status >= 400 && request.Method != "HEAD" && !(IsGcsError(body, status) || xmlAllowed(request) && IsXmlError(body)) ? "an error not in the API's shape"
                : null;
            Assert.True(problem is null, $"seed {seed}, request {sent}: {request} got {status}, {problem}: {Encoding.UTF8.GetString(body.AsSpan(0, Math.Min(body.Length, 600)))}");
        }

        var summary = $"{sent} requests in {clock.Elapsed.TotalSeconds:F1} s, statuses {string.Join(", ", statuses.Select(s => $"{s.Key}×{s.Value}"))}";
        output.WriteLine(summary);
        Assert.True(sent >= Requests, $"seed {seed}: only {summary} within {Budget.TotalSeconds} s; the run stopped at its hang guard before {Requests}");
        return summary;
    }

    /// <summary>Healthy, and every listed object downloads whole with the digest its metadata states.</summary>
    private static async Task AssertIntactAsync(HttpClient http, int seed)
    {
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
        var buckets = await GcsApiTests.ReadAsync(await http.GetAsync("/storage/v1/b?project=goblin"), HttpStatusCode.OK);
        var checkedObjects = 0;
        foreach (var bucket in buckets.GetProperty("items").EnumerateArray().Select(b => b.GetProperty("name").GetString()!))
        {
            string? token = null;
            do
            {
                var page = await GcsApiTests.ReadAsync(await http.GetAsync($"/storage/v1/b/{bucket}/o{(token is null ? "" : "?pageToken=" + Uri.EscapeDataString(token))}"), HttpStatusCode.OK);
                foreach (var item in page.TryGetProperty("items", out var items) ? items.EnumerateArray() : default)
                {
                    var name = item.GetProperty("name").GetString()!;
                    using var download = await http.GetAsync($"/storage/v1/b/{bucket}/o/{Uri.EscapeDataString(name)}?alt=media");
                    Assert.True(download.StatusCode == HttpStatusCode.OK, $"seed {seed}: {bucket}/{name} answered {(int)download.StatusCode}");
                    var bytes = await download.Content.ReadAsByteArrayAsync();
                    Assert.True(item.GetProperty("size").GetString() == bytes.Length.ToString(CultureInfo.InvariantCulture), $"seed {seed}: {bucket}/{name} size differs");
                    if (item.TryGetProperty("md5Hash", out var md5))
                    {
                        Assert.True(md5.GetString() == Convert.ToBase64String(MD5.HashData(bytes)), $"seed {seed}: {bucket}/{name} md5 differs");
                    }

                    Assert.True(item.GetProperty("crc32c").GetString() == Crc32C.ToBase64(Crc32C.Compute(bytes)), $"seed {seed}: {bucket}/{name} crc32c differs");
                    checkedObjects++;
                }

                token = page.TryGetProperty("nextPageToken", out var next) ? next.GetString() : null;
            }
            while (token is not null);
        }

        Assert.True(checkedObjects >= Names.Length, $"seed {seed}: only {checkedObjects} objects left to check");
    }

    private static bool IsGcsError(byte[] body, int status)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var error = document.RootElement.GetProperty("error");
            var first = error.GetProperty("errors")[0];
            return error.GetProperty("code").GetInt32() == status
                && error.GetProperty("message").GetString() is { Length: > 0 }
                && first.GetProperty("reason").GetString() is { Length: > 0 }
                && first.GetProperty("message").GetString() is { Length: > 0 };
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
        {
            return false;
        }
    }

    /// <summary>The XML API's error shape, which storage.googleapis.com uses for signed URLs.</summary>
    private static bool IsXmlError(byte[] body)
    {
        try
        {
            var error = System.Xml.Linq.XDocument.Parse(Encoding.UTF8.GetString(body)).Root!;
            return error.Name == "Error" && error.Element("Code")?.Value is { Length: > 0 } && error.Element("Message")?.Value is { Length: > 0 };
        }
        catch (System.Xml.XmlException)
        {
            return false;
        }
    }

    /// <summary>One request as generated: kept apart from HttpRequestMessage so it can be printed and rebuilt.</summary>
    private sealed class FuzzRequest
    {
        public required string Method { get; set; }

        public required string Path { get; set; }

        public List<(string Name, string Value)> Query { get; } = [];

        public List<(string Name, string Value)> Headers { get; } = [];

        public byte[]? Body { get; set; }

        public string? ContentType { get; set; }

        public bool Chunked { get; set; }

        /// <summary>Whether the request goes to a signed URL's path (answered in the XML API's shape).</summary>
        public bool SignedPath { get; set; }

        public HttpRequestMessage ToMessage()
        {
            var target = Query.Count == 0 ? Path : Path + "?" + string.Join('&', Query.Select(q => $"{q.Name}={q.Value}"));
            // A leading "//" would make the client read the first segment as a host name.
            var message = new HttpRequestMessage(new HttpMethod(Method), new Uri("/" + target.TrimStart('/'), UriKind.Relative));
            if (Body is not null)
            {
                message.Content = Chunked ? new StreamContent(new MemoryStream(Body)) : new ByteArrayContent(Body);
                if (ContentType is not null)
                {
                    message.Content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
                }
            }

            if (Chunked && message.Content is not null)
            {
                message.Headers.TransferEncodingChunked = true;
            }

            foreach (var (name, value) in Headers)
            {
                if (name.Equals("Host", StringComparison.OrdinalIgnoreCase))
                {
                    message.Headers.Host = value;
                }
                else if (!message.Headers.TryAddWithoutValidation(name, value))
                {
                    message.Content ??= new ByteArrayContent([]);
                    message.Content.Headers.TryAddWithoutValidation(name, value);
                }
            }

            return message;
        }

        public override string ToString() =>
            $"{Method} {Path}{(Query.Count == 0 ? "" : "?" + string.Join('&', Query.Select(q => $"{q.Name}={Shorten(q.Value)}")))} headers [{string.Join("; ", Headers.Select(h => $"{h.Name}: {Shorten(h.Value)}"))}] body {(Body is null ? "none" : $"{Body.Length} bytes{(Chunked ? " chunked" : "")}: {Shorten(Encoding.UTF8.GetString(Body.AsSpan(0, Math.Min(Body.Length, 120))))}")}";

        private static string Shorten(string value) => value.Length > 120 ? value[..120] + "…" : value;
    }

    /// <summary>Mutations both families share: values that are the wrong type, size, encoding or shape.</summary>
    private abstract class Mutations(Random random)
    {
        protected Random Random { get; } = random;

        protected T Pick<T>(IReadOnlyList<T> items) => items[Random.Next(items.Count)];

        protected bool Chance(double p) => Random.NextDouble() < p;

        /// <summary>
        /// Strings for names and values: ordinary, escaped oddly, invalid UTF-8, control characters, long. An encoded
        /// NUL goes into queries only: Kestrel itself refuses it in a path, before any application code sees it.
        /// </summary>
        protected string EncodedText(bool path = false)
        {
            return Random.Next(16) switch
            {
                0 => "",
                1 => "%FF%FE",
                2 => "a%ED%A0%80b",
                3 => "%C3",
                4 => "%",
                5 => "a%2F..%2F..%2Fb",
                6 => "%0D%0Ainjected",
                7 => path ? "%01" : "%00",
                8 => new string('z', Random.Next(1000, 3000)),
                9 => Uri.EscapeDataString("\u00e9\u4e2d\ud83d\ude00"),
                10 => "..",
                11 => "-1",
                12 => "99999999999999999999999",
                13 => "%252F",
                14 => "*[{?",
                _ => Uri.EscapeDataString(Pick(Names)),
            };
        }

        protected JsonNode? RandomJson(int depth = 0)
        {
            return Random.Next(depth > 3 ? 9 : 12) switch
            {
                0 => null,
                1 => JsonValue.Create(Random.Next(int.MinValue, int.MaxValue)),
                2 => JsonValue.Create(Random.NextDouble() * 1e300),
                3 => JsonValue.Create(Chance(0.5)),
                4 => JsonValue.Create("text/plain\r\nX-Injected: 1"),
                5 => JsonValue.Create("nul\u0000byte"),
                6 => JsonValue.Create(new string('v', Random.Next(1, 20_000))),
                7 => JsonValue.Create("\u00e9\ud83d\ude00"),
                8 => JsonValue.Create(Random.Next(0, 5).ToString(CultureInfo.InvariantCulture)),
                9 => new JsonArray(RandomJson(depth + 1), RandomJson(depth + 1)),
                10 => new JsonObject { ["k"] = RandomJson(depth + 1), ["metadata"] = RandomJson(depth + 1) },
                _ => new JsonObject { [Pick(["name", "contentType", "metadata", "labels", "md5Hash", "crc32c", "sourceObjects"])] = RandomJson(depth + 1) },
            };
        }

        /// <summary>A JSON document mutated at one node, or made into something that is not the expected JSON.</summary>
        protected byte[] MutateJson(byte[] body)
        {
            switch (Random.Next(10))
            {
                case 0:
                    // Nested far past any parser's depth limit.
                    var depth = Random.Next(60, 3000);
                    return Encoding.UTF8.GetBytes(new string('[', depth) + new string(']', depth));
                case 1:
                    return [.. body, .. "\u0000"u8];
                case 2:
                    // An escaped unpaired surrogate, valid JSON text but not valid Unicode.
                    return Encoding.UTF8.GetBytes("""{"name":"a\ud800","contentType":"\udc00","metadata":{"\ud800":"x"}}""");
                default:
                    break;
            }

            try
            {
                return MutateNode(JsonNode.Parse(body));
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
                // Already not JSON, or not valid Unicode: left as it is.
                return body;
            }
        }

        private byte[] MutateNode(JsonNode? root)
        {
            if (root is JsonObject target && target.Count > 0 && Chance(0.8))
            {
                var key = target.Select(p => p.Key).ElementAt(Random.Next(target.Count));
                if (Chance(0.2))
                {
                    target.Remove(key);
                }
                else if (target[key] is JsonObject inner && inner.Count > 0 && Chance(0.5))
                {
                    inner[inner.Select(p => p.Key).ElementAt(Random.Next(inner.Count))] = RandomJson();
                }
                else if (target[key] is JsonArray list && list.Count > 0 && Chance(0.5))
                {
                    list[Random.Next(list.Count)] = RandomJson();
                }
                else
                {
                    target[key] = RandomJson();
                }

                return Encoding.UTF8.GetBytes(root.ToJsonString());
            }

            return Encoding.UTF8.GetBytes((RandomJson() ?? JsonValue.Create("null"))!.ToJsonString());
        }

        /// <summary>Cuts, corrupts, resizes or re-frames a body.</summary>
        protected void MutateBody(FuzzRequest request)
        {
            var body = request.Body ?? [];
            switch (Random.Next(7))
            {
                case 0:
                    request.Body = body[..Random.Next(body.Length + 1)];
                    break;
                case 1 when body.Length > 0:
                    var corrupted = body.ToArray();
                    var invalid = Pick<byte[]>([[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0x00], [0xF4, 0x90, 0x80, 0x80]]);
                    var at = Random.Next(corrupted.Length);
                    request.Body = [.. corrupted[..at], .. invalid, .. corrupted[at..]];
                    break;
                case 2:
                    // Rarely past the 1 MiB metadata limit; mostly small, so each request stays cheap.
                    request.Body = RandomNumberGenerator.GetBytes(Chance(0.03) ? (1024 * 1024) + Random.Next(1, 4096) : Random.Next(0, 70_000));
                    break;
                case 3:
                    request.Chunked = !request.Chunked;
                    request.Body ??= [];
                    break;
                case 4:
                    request.Body = null;
                    break;
                default:
                    request.Body = MutateJson(body);
                    break;
            }
        }

        protected void MutateQuery(FuzzRequest request, IReadOnlyList<string> parameters)
        {
            switch (Random.Next(5))
            {
                case 0 when request.Query.Count > 0:
                    request.Query.RemoveAt(Random.Next(request.Query.Count));
                    break;
                case 1 when request.Query.Count > 0:
                    request.Query.Add(request.Query[Random.Next(request.Query.Count)]);
                    break;
                case 2 when request.Query.Count > 0:
                    var index = Random.Next(request.Query.Count);
                    request.Query[index] = (request.Query[index].Name, EncodedText());
                    break;
                default:
                    request.Query.Add((Pick(parameters), Chance(0.5) ? EncodedText() : Random.Next(-2, 3).ToString(CultureInfo.InvariantCulture)));
                    break;
            }
        }

        protected void MutateMethod(FuzzRequest request) => request.Method = Pick(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

        protected string ContentRange()
        {
            string Number() => Pick([
                Random.Next(0, 300_000).ToString(CultureInfo.InvariantCulture), "0", "*", "-1", "99999999999999999999", "262143", "262144", "abc", "",
            ]);
            return Random.Next(8) switch
            {
                0 => $"bytes {Number()}-{Number()}/{Number()}",
                1 => $"bytes */{Number()}",
                2 => $"bytes {Number()}-*/{Number()}",
                3 => "bytes */*",
                4 => $"items {Number()}-{Number()}/*",
                5 => $"bytes {Number()}",
                6 => $"bytes=0-{Number()}",
                _ => $"bytes 0-{Number()}/*",
            };
        }
    }

    /// <summary>The JSON API and the upload paths, one valid request at a time, then mutated.</summary>
    private sealed class GcsRequests(Random random, IReadOnlyList<string> sessions) : Mutations(random)
    {
        private static readonly string[] Parameters = ["name", "uploadType", "prefix", "delimiter", "maxResults", "pageToken", "startOffset", "endOffset", "matchGlob", "generation", "ifGenerationMatch", "ifGenerationNotMatch", "ifMetagenerationMatch", "ifMetagenerationNotMatch", "alt", "upload_id", "projection", "sourceGeneration", "includeTrailingDelimiter"];

        public FuzzRequest Next()
        {
            var request = Valid();
            var mutations = Chance(0.1) ? 0 : Random.Next(1, 4);
            for (var i = 0; i < mutations; i++)
            {
                switch (Random.Next(9))
                {
                    case 0 or 1:
                        MutateBody(request);
                        break;
                    case 2 or 3:
                        MutateQuery(request, Parameters);
                        break;
                    case 4:
                        request.Headers.Add((Pick(["Content-Range", "Range", "Content-Type", "x-goog-hash", "X-Upload-Content-Length", "X-Upload-Content-Type", "Content-Encoding"]), Header(request)));
                        break;
                    case 5:
                        request.Path = MutatePath(request.Path);
                        break;
                    case 6:
                        MutateMethod(request);
                        break;
                    case 7:
                        request.ContentType = Pick<string?>([null, "application/json", "multipart/related", "multipart/related; boundary=", "multipart/related; boundary=\"x\"", "text/plain; charset=utf-8", "application/octet-stream", "multipart/related; boundary=" + new string('b', 300)]);
                        break;
                    default:
                        request.Headers.Add(("Content-Range", ContentRange()));
                        break;
                }
            }

            return request;
        }

        private string Header(FuzzRequest request) => request.Headers.Count > 5 ? "x" : Random.Next(6) switch
        {
            0 => ContentRange(),
            1 => $"bytes={Random.Next(-5, 9000)}-{Random.Next(-5, 9000)}",
            2 => "md5=" + EncodedText() + ",crc32c=AAAAAA==",
            3 => Random.Next(-1, 10_000_000).ToString(CultureInfo.InvariantCulture),
            4 => "text/plain; x=\u0001".Replace("\u0001", "1", StringComparison.Ordinal),
            _ => EncodedText(),
        };

        private string MutatePath(string path)
        {
            var name = EncodedText(path: true);
            return Random.Next(5) switch
            {
                0 => path + "/" + name,
                1 => path.Replace(Buckets[0], name.Length == 0 ? "x" : name, StringComparison.Ordinal),
                2 => path + "/compose",
                3 => path + "/rewriteTo/b/" + Pick(Buckets) + "/o/" + name,
                _ => path.Contains("/o/", StringComparison.Ordinal) ? path[..(path.IndexOf("/o/", StringComparison.Ordinal) + 3)] + name : path + "/o/" + name,
            };
        }

        private FuzzRequest Valid()
        {
            var bucket = Pick(Buckets);
            var name = Uri.EscapeDataString(Pick(Names));
            var json = "application/json";
            switch (Random.Next(14))
            {
                case 0:
                    return new FuzzRequest { Method = "GET", Path = $"/storage/v1/b/{bucket}/o", Query = { ("prefix", "dir/"), ("maxResults", "3"), ("matchGlob", Uri.EscapeDataString(Pick(["**.bin", "dir/*", "{a,b}*", "[dw]*"]))) } };
                case 1:
                    return new FuzzRequest { Method = "GET", Path = $"/storage/v1/b/{bucket}/o/{name}", Query = { ("alt", "media") }, Headers = { ("Range", $"bytes={Random.Next(0, 6000)}-") } };
                case 2:
                    return new FuzzRequest { Method = "GET", Path = $"/download/storage/v1/b/{bucket}/o/{name}", Query = { ("alt", "media") } };
                case 3:
                    return new FuzzRequest { Method = "PATCH", Path = $"/storage/v1/b/{bucket}/o/{name}", ContentType = json, Body = Encoding.UTF8.GetBytes("""{"contentType":"text/plain","metadata":{"stage":"dev"},"cacheControl":"no-cache"}""") };
                case 4:
                    return new FuzzRequest { Method = "POST", Path = $"/upload/storage/v1/b/{bucket}/o", Query = { ("uploadType", "media"), ("name", name) }, ContentType = "application/octet-stream", Body = RandomNumberGenerator.GetBytes(Random.Next(0, 70_000)) };
                case 5:
                    var media = RandomNumberGenerator.GetBytes(Random.Next(0, 30_000));
                    var multipart = Encoding.UTF8.GetBytes($"--fuzz\r\nContent-Type: application/json\r\n\r\n{{\"name\":{JsonSerializer.Serialize(Pick(Names))},\"contentType\":\"application/x-fuzz\",\"md5Hash\":\"{Convert.ToBase64String(MD5.HashData(media))}\"}}\r\n--fuzz\r\nContent-Type: application/octet-stream\r\n\r\n");
                    return new FuzzRequest { Method = "POST", Path = $"/upload/storage/v1/b/{bucket}/o", Query = { ("uploadType", "multipart") }, ContentType = "multipart/related; boundary=fuzz", Body = [.. multipart, .. media, .. "\r\n--fuzz--\r\n"u8] };
                case 6:
                    return new FuzzRequest { Method = "POST", Path = $"/upload/storage/v1/b/{bucket}/o", Query = { ("uploadType", "resumable"), ("name", name) }, ContentType = json, Body = Encoding.UTF8.GetBytes("""{"metadata":{"k":"v"}}"""), Headers = { ("X-Upload-Content-Type", "application/x-fuzz") } };
                case 7 or 8:
                    // Mostly the newest sessions, which are still open.
                    var session = sessions[Math.Max(0, sessions.Count - 1 - Random.Next(Math.Min(sessions.Count, 8)))];
                    var first = Pick([0, 0, 65_536, 262_144, Random.Next(0, 300_000)]);
                    var length = Pick([0, 1, 65_536, 262_144, Random.Next(0, 70_000)]);
                    var range = Random.Next(4) switch
                    {
                        0 => $"bytes {first}-*/*",
                        1 => $"bytes */{(Chance(0.5) ? "*" : (first + length).ToString(CultureInfo.InvariantCulture))}",
                        2 when length > 0 => $"bytes {first}-{first + length - 1}/{first + length}",
                        _ => length > 0 ? $"bytes {first}-{first + length - 1}/*" : "bytes */*",
                    };
                    var request = new FuzzRequest { Method = "PUT", Path = session.Split('?')[0], Body = range.StartsWith("bytes */", StringComparison.Ordinal) ? [] : RandomNumberGenerator.GetBytes(length), Headers = { ("Content-Range", range) } };
                    request.Query.AddRange(session.Split('?')[1].Split('&').Select(p => (p.Split('=')[0], p.Split('=')[1])));
                    return request;
                case 9:
                    return new FuzzRequest { Method = "POST", Path = $"/storage/v1/b/{bucket}/o/joined-{Random.Next(3)}/compose", ContentType = json, Body = Encoding.UTF8.GetBytes("{\"sourceObjects\":[{\"name\":" + JsonSerializer.Serialize(Pick(Names)) + "},{\"name\":" + JsonSerializer.Serialize(Pick(Names)) + "}],\"destination\":{\"contentType\":\"application/x-joined\"}}") };
                case 10:
                    return new FuzzRequest { Method = "POST", Path = $"/storage/v1/b/{bucket}/o/{name}/rewriteTo/b/{Pick(Buckets)}/o/copy-{Random.Next(3)}", ContentType = json, Body = "{}"u8.ToArray() };
                case 11:
                    return new FuzzRequest { Method = "PATCH", Path = $"/storage/v1/b/{bucket}", ContentType = json, Body = Encoding.UTF8.GetBytes("{\"labels\":{\"stage\":\"s" + Random.Next(10).ToString(CultureInfo.InvariantCulture) + "\",\"gone\":null}}") };
                case 12:
                    return new FuzzRequest { Method = "DELETE", Path = $"/storage/v1/b/{bucket}/o/copy-{Random.Next(3)}" };
                default:
                    return new FuzzRequest { Method = "POST", Path = "/storage/v1/b", Query = { ("project", "goblin") }, ContentType = json, Body = Encoding.UTF8.GetBytes("{\"name\":\"fuzz-new-" + Random.Next(5).ToString(CultureInfo.InvariantCulture) + "\",\"labels\":{\"team\":\"ml\"}}") };
            }
        }
    }

    /// <summary>Signed URLs the registry minted, used as minted, then tampered with.</summary>
    private sealed class SignedUrlRequests(Random random, IReadOnlyList<(string Method, string Url)> urls) : Mutations(random)
    {
        private static readonly string[] Parameters = ["X-Goog-Algorithm", "X-Goog-Credential", "X-Goog-Date", "X-Goog-Expires", "X-Goog-SignedHeaders", "X-Goog-Signature", "x-goog-signature", "ifGenerationMatch", "generation", "alt"];

        public FuzzRequest Next()
        {
            var (method, url) = Pick(urls);
            var request = new FuzzRequest { Method = method, Path = url.Split('?')[0], SignedPath = true };
            request.Query.AddRange(url.Split('?')[1].Split('&').Select(p => (p.Split('=')[0], p.Split('=')[1])));
            if (method == "PUT")
            {
                request.Body = RandomNumberGenerator.GetBytes(Random.Next(0, 70_000));
                request.ContentType = "application/octet-stream";
            }

            var mutations = Chance(0.1) ? 0 : Random.Next(1, 4);
            for (var i = 0; i < mutations; i++)
            {
                switch (Random.Next(9))
                {
                    case 0:
                        // One character of a parameter's value changed.
                        var index = Random.Next(request.Query.Count);
                        var (name, value) = request.Query[index];
                        var at = value.Length == 0 ? 0 : Random.Next(value.Length);
                        request.Query[index] = (name, value[..at] + Pick(["0", "a", "%", "%FF", "", "Z"]) + (value.Length == 0 ? "" : value[(at + 1)..]));
                        break;
                    case 1:
                        MutateQuery(request, Parameters);
                        break;
                    case 2:
                        var algorithm = request.Query.FindIndex(q => q.Name == "X-Goog-Algorithm");
                        if (algorithm >= 0)
                        {
                            request.Query[algorithm] = ("X-Goog-Algorithm", Pick(["GOOG4-RSA-SHA256", "AWS4-HMAC-SHA256", "", "goog4-hmac-sha256", EncodedText()]));
                        }

                        break;
                    case 3:
                        request.Headers.Add((Pick(["x-goog-if-generation-match", "x-goog-if-metageneration-match", "x-goog-hash", "Content-Type", "Range"]), Pick(["0", "-1", "1", "abc", "99999999999999999999", "bytes=0-10", "md5=AAAA", ""])));
                        break;
                    case 4:
                        MutateMethod(request);
                        break;
                    case 5:
                        MutateBody(request);
                        break;
                    case 6:
                        request.Path = Random.Next(4) switch
                        {
                            0 => request.Path + Pick(["x", "/", "%2F", "/..", "%FF"]),
                            1 => "/" + EncodedText(path: true) + request.Path[request.Path.IndexOf('/', 1)..],
                            2 => request.Path.Replace("/", "//", StringComparison.Ordinal),
                            _ => request.Path.ToUpperInvariant(),
                        };
                        break;
                    case 7:
                        request.Headers.Add(("Host", Pick(["evil.example", "127.0.0.1", "localhost:1"])));
                        break;
                    default:
                        request.Headers.Add(("Content-Range", ContentRange()));
                        break;
                }
            }

            return request;
        }
    }
}
