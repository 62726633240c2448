using System.Globalization;
using System.Text.Json;
using GoblinAspire.ModelRegistry.Objects;

namespace GoblinAspire.ModelRegistry.Api.Gcs;

/// <summary>Bucket and object resources in the GCS JSON API's shape (numbers as strings, RFC 3339 times).</summary>
public static class GcsResources
{
    public const string KeyPrefix = "projects/goblin/locations/global/keyRings/goblin/cryptoKeys/";

    public static async Task WriteAsync(HttpResponse response, Action<Utf8JsonWriter> write, int status = 200)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(write);
        response.StatusCode = status;
        response.ContentType = "application/json; charset=UTF-8";
        await using var writer = new Utf8JsonWriter(response.BodyWriter);
        write(writer);
        await writer.FlushAsync();
    }

    public static void Bucket(Utf8JsonWriter writer, BucketRecord bucket, Uri baseUri, string? activeKey)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(bucket);
        writer.WriteStartObject();
        writer.WriteString("kind", "storage#bucket");
        writer.WriteString("id", bucket.Name);
        writer.WriteString("selfLink", $"{baseUri}storage/v1/b/{bucket.Name}");
        writer.WriteString("projectNumber", "0");
        writer.WriteString("name", bucket.Name);
        writer.WriteString("timeCreated", Time(bucket.Created));
        writer.WriteString("updated", Time(bucket.Updated));
        writer.WriteString("metageneration", bucket.Metageneration.ToString(CultureInfo.InvariantCulture));
        writer.WriteString("location", "US");
        writer.WriteString("storageClass", "STANDARD");
        writer.WriteString("etag", $"CA{bucket.Metageneration}=");
        if (bucket.Encrypted && activeKey is not null)
        {
            writer.WriteStartObject("encryption");
            writer.WriteString("defaultKmsKeyName", KeyPrefix + activeKey);
            writer.WriteEndObject();
        }

        if (bucket.Labels is { Count: > 0 } labels)
        {
            writer.WriteStartObject("labels");
            foreach (var (key, value) in labels)
            {
                writer.WriteString(key, value);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndObject();
    }

    public static void Object(Utf8JsonWriter writer, ObjectRecord record, Uri baseUri)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(record);
        var generation = record.Generation.ToString(CultureInfo.InvariantCulture);
        var encoded = Uri.EscapeDataString(record.Name);
        writer.WriteStartObject();
        writer.WriteString("kind", "storage#object");
        writer.WriteString("id", $"{record.Bucket}/{record.Name}/{generation}");
        writer.WriteString("selfLink", $"{baseUri}storage/v1/b/{record.Bucket}/o/{encoded}");
        writer.WriteString("mediaLink", $"{baseUri}download/storage/v1/b/{record.Bucket}/o/{encoded}?generation={generation}&alt=media");
        writer.WriteString("name", record.Name);
        writer.WriteString("bucket", record.Bucket);
        writer.WriteString("generation", generation);
        writer.WriteString("metageneration", record.Metageneration.ToString(CultureInfo.InvariantCulture));
        writer.WriteString("contentType", record.ContentType);
        writer.WriteString("storageClass", "STANDARD");
        writer.WriteString("size", record.Size.ToString(CultureInfo.InvariantCulture));
        // A composite has no MD5 in GCS: clients then check its CRC-32C alone.
        WriteOptional(writer, "md5Hash", record.Md5.Length == 0 ? null : record.Md5);
        writer.WriteString("crc32c", record.Crc32C);
        if (record.ComponentCount is { } components)
        {
            writer.WriteNumber("componentCount", components);
        }

        writer.WriteString("etag", ETag(record));
        writer.WriteString("timeCreated", Time(record.Created));
        writer.WriteString("updated", Time(record.Updated));
        writer.WriteString("timeStorageClassUpdated", Time(record.Created));
        WriteOptional(writer, "contentEncoding", record.ContentEncoding);
        WriteOptional(writer, "contentDisposition", record.ContentDisposition);
        WriteOptional(writer, "cacheControl", record.CacheControl);
        WriteOptional(writer, "contentLanguage", record.ContentLanguage);
        WriteOptional(writer, "kmsKeyName", record.KeyId is null ? null : KeyPrefix + record.KeyId);
        if (record.Metadata is { Count: > 0 } metadata)
        {
            writer.WriteStartObject("metadata");
            foreach (var (key, value) in metadata)
            {
                writer.WriteString(key, value);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndObject();
    }

    public static string ETag(ObjectRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return $"\"{record.Generation}.{record.Metageneration}\"";
    }

    /// <summary>The <c>x-goog-hash</c> and stored-encoding headers that downloads carry.</summary>
    public static void DownloadHeaders(HttpResponse response, ObjectRecord record)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(record);
        response.Headers["x-goog-hash"] = record.Md5.Length == 0 ? $"crc32c={record.Crc32C}" : $"crc32c={record.Crc32C},md5={record.Md5}";
        response.Headers["x-goog-generation"] = record.Generation.ToString(CultureInfo.InvariantCulture);
        response.Headers["x-goog-metageneration"] = record.Metageneration.ToString(CultureInfo.InvariantCulture);
        response.Headers["x-goog-stored-content-length"] = record.Size.ToString(CultureInfo.InvariantCulture);
        // Stored before attribute values were checked, a value no header may carry is left out, not sent as a 500.
        var encoding = HeaderValue(record.ContentEncoding);
        response.Headers["x-goog-stored-content-encoding"] = encoding ?? "identity";
        response.Headers["x-goog-storage-class"] = "STANDARD";
        response.Headers.ETag = ETag(record);
        response.Headers.LastModified = record.Updated.ToString("R", CultureInfo.InvariantCulture);
        response.Headers.AcceptRanges = "bytes";
        if (encoding is not null)
        {
            response.Headers.ContentEncoding = encoding;
        }
    }

    /// <summary><paramref name="value"/> when an HTTP header may carry it (visible ASCII and spaces), else null.</summary>
    public static string? HeaderValue(string? value) =>
        value is { Length: > 0 } && value.All(c => c is >= ' ' and <= '~') ? value : null;

    private static void WriteOptional(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is not null)
        {
            writer.WriteString(name, value);
        }
    }

    private static string Time(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}
