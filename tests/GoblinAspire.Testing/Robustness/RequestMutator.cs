using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace GoblinAspire.Testing.Robustness;

/// <summary>A valid request that mutations start from.</summary>
public sealed record RequestTemplate(HttpMethod Method, string Path, string? Json = null, IReadOnlyDictionary<string, string>? Headers = null);

/// <summary>One request to send, with a description of how it was made, for failure messages.</summary>
public sealed record MutatedRequest(string Description, HttpMethod Method, string Path, byte[]? Body, string? ContentType, IReadOnlyList<KeyValuePair<string, string>> Headers)
{
    /// <summary>
    /// The request target itself is malformed HTTP (an encoded NUL): Kestrel refuses it with a bare 400 before any
    /// application code runs, and that response cannot be given a body (dotnet/aspnetcore's Kestrel has no hook).
    /// </summary>
    public bool MalformedTarget => Path.Contains("%00", StringComparison.Ordinal);

    public HttpRequestMessage ToMessage()
    {
        var message = new HttpRequestMessage(Method, Path);
        if (Body is not null)
        {
            message.Content = new ByteArrayContent(Body);
            message.Content.Headers.Remove("Content-Type");
            if (ContentType is not null)
            {
                message.Content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
            }
        }

        foreach (var (name, value) in Headers)
        {
            if (!message.Headers.TryAddWithoutValidation(name, value))
            {
                message.Content?.Headers.TryAddWithoutValidation(name, value);
            }
        }

        return message;
    }
}

/// <summary>
/// Makes hostile variants of valid requests from a seed: wrong types, missing and unknown members, duplicated keys,
/// deep nesting, huge and odd numbers, control characters and lone surrogates, truncation, invalid UTF-8, other
/// encodings, oversized bodies, odd content types, and garbage in headers, paths and query strings. The same seed
/// gives the same sequence, so a failure can be replayed.
/// </summary>
public sealed class RequestMutator(int seed, IReadOnlyList<RequestTemplate> templates, int oversizeBytes)
{
    private static readonly string[] OddStrings =
    [
        "", " ", "\u0000", "\ud800", "\udfff", "a\u0000b", "\u202e\u200b", "😀", "null", "-1", "1e309", "true", "{}", "[]",
        "' OR '1'='1", "\"; DROP TABLE virtual_keys; --", "../../etc/passwd", "%00", "\r\nX-Injected: 1", "<script>", "\\", "\u007f\u0085",
    ];

    private static readonly string[] OddContentTypes =
    [
        "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16",
        "application/json; charset=latin1", "application/json; charset=", "garbage", "application/", "*/*", "application/json;;;",
    ];

    private static readonly string[] OddAuthorizations =
    [
        "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer sk-goblin-", "Bearer sk-goblin-" + new string('a', 64), "Bearer \t x",
        "bearer lowercase", "Bearer " + new string('k', 8000), "Token abc", "Bearer a b c", "Bearer sk-goblin-%00",
    ];

    private readonly Random _random = new(seed);

    public int Seed => seed;

    public MutatedRequest Next()
    {
        var template = templates[_random.Next(templates.Count)];
        var notes = new List<string> { $"{template.Method} {template.Path}" };
        var method = template.Method;
        var path = template.Path;
        var headers = (template.Headers ?? new Dictionary<string, string>()).ToDictionary(StringComparer.OrdinalIgnoreCase);
        var contentType = template.Json is null ? null : "application/json";
        byte[]? body = null;

        if (template.Json is not null)
        {
            var node = JsonNode.Parse(template.Json);
            var treeMutations = _random.Next(0, 4);
            for (var i = 0; i < treeMutations; i++)
            {
                node = MutateTree(node, notes);
            }

            var text = node?.ToJsonString() ?? "null";
            text = MutateText(text, notes);
            body = MutateBytes(Encoding.UTF8.GetBytes(text), notes);
        }

        switch (_random.Next(12))
        {
            case 0:
                contentType = Pick(OddContentTypes);
                notes.Add($"content type {contentType}");
                break;
            case 1:
                contentType = null;
                notes.Add("no content type");
                break;
            case 2 when headers.ContainsKey("Authorization"):
                headers["Authorization"] = Pick(OddAuthorizations);
                notes.Add("odd authorization");
                break;
            case 3:
                headers.Remove("Authorization");
                notes.Add("no authorization");
                break;
            case 4:
                headers[Pick(["Accept", "Accept-Encoding", "Content-Encoding", "X-Forwarded-For", "Cache-Control", "x-goblin-cache", "traceparent", "Range"])] = Pick(["gzip", "text/event-stream", "*/*;q=0", "999.999.999.999", "no-store", "bytes=5-1", "00-zz-zz-01", new string('x', 4000), ""]);
                notes.Add("odd header");
                break;
            case 5:
                path = MutatePath(path, notes);
                break;
            case 6:
                method = Pick([HttpMethod.Get, HttpMethod.Put, HttpMethod.Delete, HttpMethod.Patch, HttpMethod.Post, HttpMethod.Head, HttpMethod.Options]);
                notes.Add($"method {method}");
                break;
        }

        return new MutatedRequest(string.Join("; ", notes), method, path, body, contentType, headers.ToList());
    }

    private JsonNode? MutateTree(JsonNode? root, List<string> notes)
    {
        var nodes = new List<JsonNode?>();
        Collect(root, nodes);
        var target = nodes[_random.Next(nodes.Count)];
        switch (_random.Next(7))
        {
            case 0 when target?.Parent is not null:
                notes.Add($"{target.GetPath()} replaced");
                Replace(target, RandomValue(depth: 0));
                return root;
            case 1 when target?.Parent is JsonObject parent:
                notes.Add($"{target.GetPath()} removed");
                parent.Remove(parent.First(p => ReferenceEquals(p.Value, target)).Key);
                return root;
            case 2 when target is JsonObject container:
                var name = Pick(["unknown_field", "__proto__", "model", "messages", "stream", "max_tokens", "n", "logprobs", "", "\u0000", "tools", "response_format"]);
                notes.Add($"{target.GetPath()}.{name} set");
                container[name] = RandomValue(depth: 0);
                return root;
            case 3 when target is JsonArray array:
                var copies = _random.Next(2, 300);
                notes.Add($"{target.GetPath()} repeated {copies}×");
                var first = array.Count > 0 ? array[0] : JsonValue.Create(1);
                for (var i = 0; i < copies; i++)
                {
                    array.Add(first?.DeepClone());
                }

                return root;
            case 4 when target is JsonValue value && value.GetValueKind() == JsonValueKind.String:
                var odd = Pick(OddStrings);
                var grown = _random.Next(4) == 0 ? new string('x', _random.Next(1, 20_000)) + odd : odd;
                notes.Add($"{target.GetPath()} odd string");
                Replace(target, JsonValue.Create(grown));
                return target == root ? JsonValue.Create(grown) : root;
            case 5 when target?.Parent is not null:
                notes.Add($"{target.GetPath()} nested");
                Replace(target, Nest(RandomValue(depth: 0), _random.Next(2, 80)));
                return root;
            default:
                notes.Add("root replaced");
                return RandomValue(depth: 0);
        }
    }

    private string MutateText(string text, List<string> notes)
    {
        switch (_random.Next(10))
        {
            case 0:
                notes.Add("duplicate member");
                return text.StartsWith('{') ? "{\"model\":\"duplicate\"," + text[1..] : text;
            case 1:
                var depth = _random.Next(60, 5000);
                notes.Add($"wrapped {depth} deep");
                return _random.Next(2) == 0 ? new string('[', depth) + text + new string(']', depth) : string.Concat(Enumerable.Repeat("{\"a\":", depth)) + text + new string('}', depth);
            case 2:
                var number = Pick(["1e309", "-1e309", "123456789012345678901234567890", "-0", "0.0000000000000000000000001", "NaN", "Infinity", "0x10", "01", "1.", ".5", "+1"]);
                notes.Add($"number {number}");
                var at = text.IndexOf(':', StringComparison.Ordinal);
                var end = at < 0 ? -1 : text.IndexOfAny([',', '}'], at);
                return at < 0 || end < 0 ? text : text[..(at + 1)] + number + text[end..];
            case 3:
                notes.Add("escaped lone surrogate");
                return InsertInString(text, _random.Next(2) == 0 ? "\\ud800" : "\\udc00\\u0000");
            case 4:
                notes.Add("bad escape");
                return InsertInString(text, Pick(["\\x41", "\\u12", "\\", "\\uZZZZ", "\\\n"]));
            case 5:
                notes.Add("trailing garbage");
                return text + Pick(["}", " trailing", "\0", "{}", ",", "]"]);
            case 6:
                notes.Add("comments");
                return "/* c */" + text;
            default:
                return text;
        }
    }

    private byte[] MutateBytes(byte[] bytes, List<string> notes)
    {
        switch (_random.Next(14))
        {
            case 0 when bytes.Length > 1:
                var length = _random.Next(bytes.Length);
                notes.Add($"truncated to {length}");
                return bytes[..length];
            case 1:
                byte[] bad = Pick<byte[]>([[0xFF], [0xC3, 0x28], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80]]);
                notes.Add($"invalid utf-8 {Convert.ToHexString(bad)}");
                var quote = Array.IndexOf(bytes, (byte)'"', bytes.Length / 2);
                var position = quote < 0 ? _random.Next(bytes.Length + 1) : quote + 1;
                return [.. bytes[..position], .. bad, .. bytes[position..]];
            case 2 when bytes.Length > 0:
                var flip = _random.Next(bytes.Length);
                notes.Add($"byte {flip} flipped");
                var flipped = (byte[])bytes.Clone();
                flipped[flip] ^= (byte)(1 << _random.Next(8));
                return flipped;
            case 3:
                notes.Add("byte order mark");
                return [0xEF, 0xBB, 0xBF, .. bytes];
            case 4:
                notes.Add("utf-16");
                return Encoding.Unicode.GetBytes(Encoding.UTF8.GetString(bytes));
            case 5:
                notes.Add($"oversized past {oversizeBytes}");
                var padding = Encoding.ASCII.GetBytes(new string(' ', oversizeBytes + 1));
                return [.. padding, .. bytes];
            case 6:
                notes.Add("empty body");
                return [];
            case 7:
                notes.Add("nul bytes");
                return [.. bytes, 0, 0, 0];
            default:
                return bytes;
        }
    }

    private string MutatePath(string path, List<string> notes)
    {
        var mutated = _random.Next(8) switch
        {
            0 => path + "?" + Pick(["a=%FF", "&&==", "stream=true", "model=%00", "x=" + new string('q', 3000), "%zz", "api-version=1"]),
            1 => path + "/",
            2 => path.Replace("/v1/", "/v1//", StringComparison.Ordinal),
            3 => path + "/%2e%2e/admin",
            4 => path + "%00",
            5 => path + "/" + new string('m', _random.Next(1, 3000)),
            6 => path.ToUpperInvariant(),
            _ => path + "/%FF%FE",
        };
        notes.Add($"path {(mutated.Length > 80 ? mutated[..80] + "…" : mutated)}");
        return mutated;
    }

    private JsonNode? RandomValue(int depth)
    {
        return _random.Next(depth > 2 ? 7 : 10) switch
        {
            0 => null,
            1 => JsonValue.Create(_random.Next(2) == 0),
            2 => JsonValue.Create(Pick<long>([0, -1, 1, int.MaxValue + 1L, long.MinValue, 255, 65536])),
            3 => JsonValue.Create(Pick([0.5, -0.0, 1e308, -1e308, 1e-320, 2.0000001])),
            4 => JsonValue.Create(Pick(OddStrings)),
            5 => JsonValue.Create("ok"),
            6 => JsonValue.Create(new string('z', _random.Next(0, 5000))),
            7 => new JsonArray(),
            8 => new JsonArray(RandomValue(depth + 1), RandomValue(depth + 1)),
            _ => new JsonObject { ["role"] = RandomValue(depth + 1), ["content"] = RandomValue(depth + 1) },
        };
    }

    private static JsonNode Nest(JsonNode? inner, int depth)
    {
        var node = inner;
        for (var i = 0; i < depth; i++)
        {
            node = i % 2 == 0 ? new JsonArray(node) : new JsonObject { ["x"] = node };
        }

        return node ?? new JsonArray();
    }

    private static void Replace(JsonNode target, JsonNode? replacement)
    {
        switch (target.Parent)
        {
            case JsonObject parent:
                parent[parent.First(p => ReferenceEquals(p.Value, target)).Key] = replacement;
                break;
            case JsonArray array:
                array[array.IndexOf(target)] = replacement;
                break;
        }
    }

    private static void Collect(JsonNode? node, List<JsonNode?> into)
    {
        into.Add(node);
        switch (node)
        {
            case JsonObject obj:
                foreach (var (_, child) in obj.ToList())
                {
                    Collect(child, into);
                }

                break;
            case JsonArray array:
                foreach (var child in array.ToList())
                {
                    Collect(child, into);
                }

                break;
        }
    }

    private string InsertInString(string text, string insertion)
    {
        var quotes = Enumerable.Range(0, text.Length).Where(i => text[i] == '"').ToList();
        if (quotes.Count == 0)
        {
            return text + insertion;
        }

        var at = quotes[_random.Next(quotes.Count)] + 1;
        return text[..at] + insertion + text[at..];
    }

    private T Pick<T>(IReadOnlyList<T> options) => options[_random.Next(options.Count)];
}
