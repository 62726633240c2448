using System.Globalization;
using System.Text;
using System.Text.Json;
using GoblinAspire.ModelRegistry.Objects;
using Microsoft.AspNetCore.Http.Features;

namespace GoblinAspire.ModelRegistry.Api.Gcs;

/// <summary>Reading GCS requests: names from the raw URL, preconditions, metadata bodies; and the shared error handling.</summary>
public static class GcsRequest
{
    public const int MaxMetadataBodyBytes = 1024 * 1024;

    /// <summary>GCS's limit on custom metadata: keys and values together.</summary>
    public const int MaxCustomMetadataBytes = 8 * 1024;

    /// <summary>Runs a GCS handler, answering every failure in GCS's error shape.</summary>
    public static RequestDelegate Endpoint(Func<HttpContext, CancellationToken, Task> handler) => async http =>
    {
        try
        {
            await handler(http, http.RequestAborted);
        }
        catch (GcsException ex) when (!http.Response.HasStarted)
        {
            await ex.WriteAsync(http.Response);
        }
        catch (ObjectCorruptedException) when (!http.Response.HasStarted)
        {
            await GcsException.DataLoss(Bucket(http), Decode(RawObjectPath(http))).WriteAsync(http.Response);
        }
        catch (ObjectCorruptedException)
        {
            // Headers are out: stopping the connection is the only way left to say "these bytes are not the object".
            http.Abort();
        }
        catch (JsonException) when (!http.Response.HasStarted)
        {
            await new GcsException(400, "parseError", "The request body is not valid JSON.").WriteAsync(http.Response);
        }
        catch (BadHttpRequestException ex) when (!http.Response.HasStarted)
        {
            await new GcsException(ex.StatusCode, ex.StatusCode == 413 ? "uploadTooLarge" : "invalid", "The request body could not be read: it was truncated or too large.").WriteAsync(http.Response);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nobody is left to answer.
        }
        catch (Exception ex) when (!http.Response.HasStarted)
        {
            // Still GCS's shape, so clients report it rather than fail to parse it; the cause goes to the log.
            GcsLog.Unexpected(http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(GcsRequest)), http.Request.Method, http.Request.Path, ex);
            await new GcsException(500, "backendError", "The request failed inside the registry; it has been logged.").WriteAsync(http.Response);
        }
    };

    /// <summary>
    /// Everything this service answers outside MLflow is the GCS API's: an unknown route or a wrong method there is
    /// answered in GCS's error shape, not with an empty 404 or 405.
    /// </summary>
    public static Task WriteStatusErrorAsync(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var status = http.Response.StatusCode;
        var error = status switch
        {
            StatusCodes.Status404NotFound => new GcsException(404, "notFound", $"No GCS API endpoint at {http.Request.Path}."),
            StatusCodes.Status405MethodNotAllowed => new GcsException(405, "methodNotAllowed", $"Method {http.Request.Method} is not allowed for {http.Request.Path}."),
            StatusCodes.Status413PayloadTooLarge => new GcsException(413, "uploadTooLarge", "The request body is too large."),
            _ => new GcsException(status, status >= 500 ? "backendError" : "invalid", $"The request could not be served ({status})."),
        };
        return error.WriteAsync(http.Response);
    }

    public static string Bucket(HttpContext http) => ObjectNames.Bucket((string?)http.GetRouteValue("bucket"));

    /// <summary>
    /// The object name after <c>/o/</c>, decoded from the URL exactly as sent: routing would already have decoded
    /// everything but <c>%2F</c>, which makes <c>%252F</c> and <c>%2F</c> indistinguishable.
    /// </summary>
    public static string RawObjectPath(HttpContext http)
    {
        var path = RawPath(http);
        var marker = path.IndexOf("/o/", StringComparison.Ordinal);
        return marker < 0 ? "" : path[(marker + 3)..];
    }

    /// <summary>The request's path as sent, still percent-encoded, without the query.</summary>
    public static string RawPath(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var raw = http.Features.Get<IHttpRequestFeature>()?.RawTarget ?? http.Request.Path.Value ?? "";
        var query = raw.IndexOf('?', StringComparison.Ordinal);
        return query >= 0 ? raw[..query] : raw;
    }

    /// <summary>
    /// Percent-decoding that refuses what <see cref="Uri.UnescapeDataString(string)"/> lets through: a stray
    /// <c>%</c>, and escapes that are not UTF-8 (which would otherwise stay in the name as literal <c>%FF</c>).
    /// </summary>
    public static string Decode(string raw, bool plusIsSpace = false)
    {
        ArgumentNullException.ThrowIfNull(raw);
        if (!raw.Contains('%', StringComparison.Ordinal) && !(plusIsSpace && raw.Contains('+', StringComparison.Ordinal)))
        {
            return raw;
        }

        var bytes = new List<byte>(raw.Length);
        Span<byte> utf8 = stackalloc byte[4];
        for (var i = 0; i < raw.Length; i++)
        {
            var c = raw[i];
            if (c == '%')
            {
                if (i + 2 >= raw.Length || !byte.TryParse(raw.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value))
                {
                    throw GcsException.Invalid("The object name is not valid percent-encoding.");
                }

                bytes.Add(value);
                i += 2;
            }
            else if (c == '+' && plusIsSpace)
            {
                bytes.Add((byte)' ');
            }
            else
            {
                var length = char.IsHighSurrogate(c) && i + 1 < raw.Length
                    ? Encoding.UTF8.GetBytes(raw.AsSpan(i++, 2), utf8)
                    : Encoding.UTF8.GetBytes(raw.AsSpan(i, 1), utf8);
                bytes.AddRange(utf8[..length]);
            }
        }

        try
        {
            return StrictUtf8.GetString(bytes.ToArray());
        }
        catch (DecoderFallbackException)
        {
            throw GcsException.Invalid("The object name is not valid UTF-8.");
        }
    }

    /// <summary>A query parameter decoded from the URL as sent, so invalid UTF-8 is refused rather than replaced.</summary>
    public static string? Query(HttpContext http, string parameter)
    {
        ArgumentNullException.ThrowIfNull(http);
        string? found = null;
        foreach (var pair in http.Request.QueryString.Value?.TrimStart('?').Split('&') ?? [])
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var key = equals < 0 ? pair : pair[..equals];
            if (key == parameter)
            {
                if (found is not null)
                {
                    throw GcsException.Invalid($"The query parameter {parameter} is given more than once.");
                }

                found = Decode(equals < 0 ? "" : pair[(equals + 1)..], plusIsSpace: true);
            }
        }

        return found;
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static Preconditions Preconditions(HttpRequest request, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(request);
        long? Read(string name)
        {
            var value = request.Query[prefix.Length == 0 ? name : prefix + name[2..]].ToString();
            return value.Length == 0 ? null : long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number) && number >= 0 ? number : throw GcsException.Invalid($"Invalid value for {name}: '{value}'.");
        }

        return new Preconditions(Read("ifGenerationMatch"), Read("ifGenerationNotMatch"), Read("ifMetagenerationMatch"), Read("ifMetagenerationNotMatch"));
    }

    /// <summary>A generation the request pins (<c>generation=</c>); the store keeps only the live one.</summary>
    public static void CheckGeneration(HttpRequest request, ObjectRecord record, string parameter = "generation")
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(record);
        var value = request.Query[parameter].ToString();
        if (value.Length > 0 && value != record.Generation.ToString(CultureInfo.InvariantCulture))
        {
            throw GcsException.ObjectNotFound(record.Bucket, record.Name);
        }
    }

    public static async Task<JsonDocument?> ReadJsonAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.ContentLength is > MaxMetadataBodyBytes)
        {
            throw new GcsException(413, "uploadTooLarge", $"Metadata bodies are limited to {MaxMetadataBodyBytes} bytes.");
        }

        var bytes = await ReadLimitedAsync(request.Body, MaxMetadataBodyBytes, cancellationToken);
        return bytes.Length == 0 ? null : JsonDocument.Parse(bytes);
    }

    public static async Task<byte[]> ReadLimitedAsync(Stream body, int limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                throw new GcsException(413, "uploadTooLarge", $"Metadata bodies are limited to {limit} bytes.");
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }

    /// <summary>Object attributes from a JSON resource (upload metadata, PATCH, rewrite destination).</summary>
    public static ObjectAttributes Attributes(JsonElement json)
    {
        if (json.ValueKind != JsonValueKind.Object)
        {
            throw GcsException.Invalid("The object resource must be a JSON object.");
        }

        Dictionary<string, string?>? metadata = null;
        if (json.TryGetProperty("metadata", out var meta) && meta.ValueKind != JsonValueKind.Null)
        {
            if (meta.ValueKind != JsonValueKind.Object)
            {
                throw GcsException.Invalid("metadata must be an object of strings.");
            }

            metadata = new Dictionary<string, string?>(StringComparer.Ordinal);
            var bytes = 0;
            foreach (var property in meta.EnumerateObject())
            {
                var key = PlainText(Name(property), "a metadata key")!;
                var value = property.Value.ValueKind switch
                {
                    JsonValueKind.String => PlainText(String(property.Value), $"metadata.{key}"),
                    JsonValueKind.Null => null,
                    JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => property.Value.GetRawText(),
                    _ => throw GcsException.Invalid($"metadata.{key} must be a string."),
                };
                bytes += Encoding.UTF8.GetByteCount(key) + (value is null ? 0 : Encoding.UTF8.GetByteCount(value));
                if (key.Length == 0 || bytes > MaxCustomMetadataBytes)
                {
                    throw GcsException.Invalid($"Custom metadata is limited to {MaxCustomMetadataBytes} bytes of non-empty keys and values.");
                }

                metadata[key] = value;
            }
        }

        return new ObjectAttributes
        {
            ContentType = HeaderText(Text(json, "contentType"), "contentType"),
            ContentEncoding = HeaderText(Text(json, "contentEncoding"), "contentEncoding"),
            ContentDisposition = PlainText(Text(json, "contentDisposition"), "contentDisposition"),
            CacheControl = PlainText(Text(json, "cacheControl"), "cacheControl"),
            ContentLanguage = PlainText(Text(json, "contentLanguage"), "contentLanguage"),
            Metadata = metadata,
        };
    }

    /// <summary>
    /// A value downloads send back as a header (<c>Content-Type</c>, <c>Content-Encoding</c>): visible ASCII and
    /// spaces only. A CR or LF stored here would fail every later download of the object.
    /// </summary>
    public static string? HeaderText(string? value, string what) =>
        value is null || GcsResources.HeaderValue(value) is not null ? value : throw GcsException.Invalid($"{what} may hold only visible ASCII characters and spaces.");

    /// <summary>Text without control characters (NUL, CR, LF, …) or unpaired surrogates.</summary>
    public static string? PlainText(string? value, string what) =>
        value is null || !value.Any(char.IsControl) && WellFormedText.IsWellFormed(value) ? value : throw GcsException.Invalid($"{what} may not hold control characters or invalid Unicode.");

    /// <summary>A JSON string's value; an escaped unpaired surrogate (<c>"\ud800"</c>) is the client's error, 400.</summary>
    public static string String(JsonElement value)
    {
        try
        {
            return value.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw GcsException.Invalid("A string in the request is not valid Unicode (an unpaired surrogate).");
        }
    }

    /// <summary>A JSON property's name, refused as <see cref="String"/> refuses values.</summary>
    public static string Name(JsonProperty property)
    {
        try
        {
            return property.Name;
        }
        catch (InvalidOperationException)
        {
            throw GcsException.Invalid("A property name in the request is not valid Unicode (an unpaired surrogate).");
        }
    }

    public static string? Text(JsonElement json, string property)
    {
        if (!json.TryGetProperty(property, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var text = value.ValueKind == JsonValueKind.String ? String(value) : throw GcsException.Invalid($"{property} must be a string.");
        return text.Length > 1024 ? throw GcsException.Invalid($"{property} is longer than 1024 characters.") : text;
    }

    /// <summary>A non-negative 64-bit number, given as GCS writes them (a string) or as a JSON number.</summary>
    public static long? Long(JsonElement json, string property)
    {
        if (!json.TryGetProperty(property, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.Number when value.TryGetInt64(out var number) && number >= 0 => number,
            JsonValueKind.String when long.TryParse(String(value), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) => parsed,
            _ => throw GcsException.Invalid($"{property} must be a non-negative 64-bit number."),
        };
    }

    /// <summary>The hashes a client declared: <c>x-goog-hash</c>, or the resource's <c>md5Hash</c>/<c>crc32c</c>.</summary>
    public static DeclaredHashes? Declared(HttpRequest request, JsonElement? resource)
    {
        ArgumentNullException.ThrowIfNull(request);
        string? md5 = resource is { } r ? Text(r, "md5Hash") : null;
        string? crc = resource is { } s ? Text(s, "crc32c") : null;
        foreach (var header in request.Headers["x-goog-hash"].SelectMany(h => (h ?? "").Split(',')))
        {
            var pair = header.Trim().Split('=', 2);
            if (pair.Length == 2 && pair[0] == "md5")
            {
                md5 = pair[1];
            }
            else if (pair.Length == 2 && pair[0] == "crc32c")
            {
                crc = pair[1];
            }
        }

        return md5 is null && crc is null ? null : new DeclaredHashes(md5, crc);
    }

    /// <summary>Lets a streamed upload be as large as an object may be; Kestrel's 30 MB default is for forms.</summary>
    public static void AllowLargeBody(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = null;
        }
    }

    /// <summary>The scheme, host and path base clients reached this service at.</summary>
    public static Uri BaseUri(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        return new Uri($"{http.Request.Scheme}://{http.Request.Host}{http.Request.PathBase}/");
    }
}

internal static partial class GcsLog
{
    [LoggerMessage(Level = LogLevel.Error, Message = "GCS API {Method} {Path} failed unexpectedly")]
    public static partial void Unexpected(ILogger logger, string method, PathString path, Exception exception);
}
