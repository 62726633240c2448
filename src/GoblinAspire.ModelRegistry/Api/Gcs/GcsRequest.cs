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
    };

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

    public static string Decode(string raw)
    {
        try
        {
            return Uri.UnescapeDataString(raw);
        }
        catch (UriFormatException)
        {
            throw GcsException.Invalid("The object name is not valid percent-encoding.");
        }
    }

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
                var value = property.Value.ValueKind switch
                {
                    JsonValueKind.String => property.Value.GetString(),
                    JsonValueKind.Null => null,
                    JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => property.Value.GetRawText(),
                    _ => throw GcsException.Invalid($"metadata.{property.Name} must be a string."),
                };
                bytes += Encoding.UTF8.GetByteCount(property.Name) + (value is null ? 0 : Encoding.UTF8.GetByteCount(value));
                if (property.Name.Length == 0 || bytes > MaxCustomMetadataBytes)
                {
                    throw GcsException.Invalid($"Custom metadata is limited to {MaxCustomMetadataBytes} bytes of non-empty keys and values.");
                }

                metadata[property.Name] = value;
            }
        }

        return new ObjectAttributes
        {
            ContentType = Text(json, "contentType"),
            ContentEncoding = Text(json, "contentEncoding"),
            ContentDisposition = Text(json, "contentDisposition"),
            CacheControl = Text(json, "cacheControl"),
            ContentLanguage = Text(json, "contentLanguage"),
            Metadata = metadata,
        };
    }

    public static string? Text(JsonElement json, string property)
    {
        if (!json.TryGetProperty(property, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var text = value.ValueKind == JsonValueKind.String ? value.GetString()! : throw GcsException.Invalid($"{property} must be a string.");
        return text.Length > 1024 ? throw GcsException.Invalid($"{property} is longer than 1024 characters.") : text;
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
