using System.Globalization;
using System.Text.Json;

namespace GoblinAspire.ModelRegistry.Mlflow;

/// <summary>
/// A request's fields as MLflow's server reads them: from the query string for GET (repeated keys for lists), from a
/// JSON object body for POST, PATCH and DELETE. Proto3 JSON allows int64 and bool as strings; both forms are read.
/// </summary>
public sealed class MlflowArgs : IDisposable
{
    public const long MaxBodyBytes = 16 * 1024 * 1024;

    private readonly JsonDocument? _body;
    private readonly IQueryCollection? _query;

    private MlflowArgs(JsonDocument? body, IQueryCollection? query)
    {
        _body = body;
        _query = query;
    }

    /// <summary>No fields: for endpoints whose body is a payload rather than JSON fields.</summary>
    public static MlflowArgs Empty => new(null, new QueryCollection());

    public static async Task<MlflowArgs> ReadAsync(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (HttpMethods.IsGet(request.Method))
        {
            foreach (var (name, values) in request.Query)
            {
                if (!WellFormedText.IsStorable(name) || values.Any(v => v is not null && !WellFormedText.IsStorable(v)))
                {
                    throw NotText(name);
                }
            }

            return new MlflowArgs(null, request.Query);
        }

        if (request.ContentLength is > MaxBodyBytes)
        {
            throw new MlflowException(ErrorCodes.BadRequest, $"The request body is larger than {MaxBodyBytes} bytes.");
        }

        var mediaType = request.ContentType?.Split(';')[0].Trim();
        if (request.ContentLength is not 0 && mediaType is not null && !mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
        {
            throw new MlflowException(ErrorCodes.BadRequest, $"Unsupported content type '{mediaType}': the request body must be application/json.");
        }

        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, request.HttpContext.RequestAborted);
        if (buffer.Length > MaxBodyBytes)
        {
            throw new MlflowException(ErrorCodes.BadRequest, $"The request body is larger than {MaxBodyBytes} bytes.");
        }

        if (buffer.Length == 0)
        {
            return new MlflowArgs(JsonDocument.Parse("{}"), null);
        }

        try
        {
            var document = JsonDocument.Parse(buffer.ToArray(), new JsonDocumentOptions { MaxDepth = 64 });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                document.Dispose();
                throw new MlflowException(ErrorCodes.BadRequest, "The request body must be a JSON object.");
            }

            if (FirstBadString(document.RootElement, "") is { } field)
            {
                document.Dispose();
                throw NotText(field);
            }

            return new MlflowArgs(document, null);
        }
        catch (JsonException)
        {
            throw new MlflowException(ErrorCodes.BadRequest, "The request body is not valid JSON.");
        }
    }

    /// <summary>
    /// The member path of the first string that cannot be stored: bytes that are not UTF-8, an escaped lone
    /// surrogate, or a NUL (PostgreSQL's text cannot hold one). Checked once here so no handler ever meets one.
    /// </summary>
    private static string? FirstBadString(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var member in element.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = member.Name;
                    }
                    catch (InvalidOperationException)
                    {
                        return path.Length == 0 ? "(a member name)" : path;
                    }

                    var inner = path.Length == 0 ? name : $"{path}.{name}";
                    if (!WellFormedText.IsStorable(name))
                    {
                        return inner;
                    }

                    if (FirstBadString(member.Value, inner) is { } bad)
                    {
                        return bad;
                    }
                }

                return null;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (FirstBadString(item, $"{path}[{index++}]") is { } bad)
                    {
                        return bad;
                    }
                }

                return null;
            case JsonValueKind.String:
                try
                {
                    return WellFormedText.IsStorable(element.GetString()!) ? null : path;
                }
                catch (InvalidOperationException)
                {
                    return path;
                }

            default:
                return null;
        }
    }

    private static MlflowException NotText(string field) =>
        MlflowException.Invalid($"Invalid value for parameter '{Shorten(string.Concat(field.Select(c => char.IsControl(c) || char.IsSurrogate(c) ? '?' : c)))}' supplied: it must be valid UTF-8 text without NUL characters.");

    public string? String(string name)
    {
        if (_query is not null)
        {
            return _query.TryGetValue(name, out var values) && values.Count > 0 ? values[^1] : null;
        }

        if (!_body!.RootElement.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
            _ => throw MlflowException.Invalid($"Invalid value {Shorten(value.GetRawText())} for parameter '{name}' supplied: it must be a string."),
        };
    }

    public string Required(string name) => String(name) is { Length: > 0 } value ? value : throw MlflowException.Missing(name);

    public long? Long(string name)
    {
        var text = String(name);
        if (text is null)
        {
            return null;
        }

        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw MlflowException.Invalid($"Invalid value '{Shorten(text)}' for parameter '{name}' supplied: it must be an integer.");
    }

    public double? Double(string name)
    {
        if (_body is not null && _body.RootElement.TryGetProperty(name, out var element) && element.ValueKind == JsonValueKind.Number)
        {
            return element.GetDouble();
        }

        var text = String(name);
        if (text is null)
        {
            return null;
        }

        return text switch
        {
            "NaN" => double.NaN,
            "Infinity" => double.PositiveInfinity,
            "-Infinity" => double.NegativeInfinity,
            _ when double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) => value,
            _ => throw MlflowException.Invalid($"Invalid value '{Shorten(text)}' for parameter '{name}' supplied: it must be a number."),
        };
    }

    public bool? Bool(string name) => String(name)?.ToUpperInvariant() switch
    {
        null => null,
        "TRUE" => true,
        "FALSE" => false,
        var other => throw MlflowException.Invalid($"Invalid value '{Shorten(other)}' for parameter '{name}' supplied: it must be true or false."),
    };

    public IReadOnlyList<string> Strings(string name)
    {
        if (_query is not null)
        {
            return _query.TryGetValue(name, out var values) ? values.Where(v => v is not null).Select(v => v!).ToList() : [];
        }

        if (!_body!.RootElement.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw MlflowException.Invalid($"Invalid value for parameter '{name}' supplied: it must be a list.");
        }

        return value.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.String ? v.GetString()! : throw MlflowException.Invalid($"Invalid value for parameter '{name}' supplied: it must be a list of strings.")).ToList();
    }

    /// <summary>A list of objects (tags, metrics, params); GET requests cannot carry them.</summary>
    public IReadOnlyList<JsonElement> Objects(string name)
    {
        if (_body is null || !_body.RootElement.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (value.ValueKind != JsonValueKind.Array || value.EnumerateArray().Any(v => v.ValueKind != JsonValueKind.Object))
        {
            throw MlflowException.Invalid($"Invalid value for parameter '{name}' supplied: it must be a list of objects.");
        }

        return [.. value.EnumerateArray()];
    }

    public void Dispose() => _body?.Dispose();

    internal static string Shorten(string text) => text.Length <= 100 ? text : text[..100] + "…";

    /// <summary>The <c>key</c>/<c>value</c> pairs of tag-like objects, checked against MLflow's limits.</summary>
    public static List<(string Key, string Value)> KeyValues(IReadOnlyList<JsonElement> items, string what, int maxValueLength)
    {
        ArgumentNullException.ThrowIfNull(items);
        var pairs = new List<(string, string)>(items.Count);
        foreach (var item in items)
        {
            var key = item.TryGetProperty("key", out var k) && k.ValueKind == JsonValueKind.String ? k.GetString()! : throw MlflowException.Missing("key");
            var value = item.TryGetProperty("value", out var v) ? (v.ValueKind == JsonValueKind.String ? v.GetString()! : v.ValueKind is JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False ? v.GetRawText() : "") : "";
            pairs.Add((Validation.Key(key, what), Validation.Value(value, what, key, maxValueLength)));
        }

        return pairs;
    }
}
