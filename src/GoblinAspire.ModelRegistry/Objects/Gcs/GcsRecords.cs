using System.Globalization;
using System.Text.Json;

namespace GoblinAspire.ModelRegistry.Objects.Gcs;

/// <summary>GCS's bucket and object resources, read into the store's records and written from its attributes.</summary>
internal static class GcsRecords
{
    public static BucketRecord Bucket(JsonElement json) => new()
    {
        Name = json.GetProperty("name").GetString()!,
        Created = Time(json, "timeCreated"),
        Updated = Time(json, "updated"),
        Metageneration = Number(json, "metageneration", 1),
        Labels = json.TryGetProperty("labels", out var labels) ? labels.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "", StringComparer.Ordinal) : null,
    };

    public static ObjectRecord Object(JsonElement json)
    {
        Dictionary<string, string>? metadata = null;
        string? sha256 = null;
        if (json.TryGetProperty("metadata", out var custom) && custom.ValueKind == JsonValueKind.Object)
        {
            metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in custom.EnumerateObject())
            {
                if (entry.Name == GcsObjectStore.Sha256MetadataKey)
                {
                    sha256 = entry.Value.GetString();
                }
                else
                {
                    metadata[entry.Name] = entry.Value.GetString() ?? "";
                }
            }
        }

        return new ObjectRecord
        {
            Bucket = json.GetProperty("bucket").GetString()!,
            Name = json.GetProperty("name").GetString()!,
            Generation = Number(json, "generation", 0),
            Metageneration = Number(json, "metageneration", 1),
            Size = Number(json, "size", 0),
            ContentType = Text(json, "contentType") ?? "application/octet-stream",
            ContentEncoding = Text(json, "contentEncoding"),
            ContentDisposition = Text(json, "contentDisposition"),
            CacheControl = Text(json, "cacheControl"),
            ContentLanguage = Text(json, "contentLanguage"),
            Metadata = metadata is { Count: > 0 } ? metadata : null,
            // Composite objects carry no MD5; an object written by another tool carries no SHA-256 of ours.
            Md5 = Text(json, "md5Hash") ?? "",
            Crc32C = Text(json, "crc32c") ?? "",
            Sha256 = sha256 ?? "",
            ComponentCount = json.TryGetProperty("componentCount", out var components) && components.ValueKind == JsonValueKind.Number && components.TryGetInt32(out var count) ? count : null,
            Created = Time(json, "timeCreated"),
            Updated = Time(json, "updated"),
            DataFile = "",
        };
    }

    /// <summary>
    /// The settable attributes of an upload, patch or rewrite; a null metadata value removes that key as GCS does.
    /// <paramref name="sha256"/>, when given, is kept in the hidden metadata key; <paramref name="replace"/> writes it
    /// even when the attributes carry no metadata of their own.
    /// </summary>
    public static void WriteAttributes(Utf8JsonWriter writer, ObjectAttributes attributes, string? sha256, bool replace = false)
    {
        Optional(writer, "contentType", attributes.ContentType);
        Optional(writer, "contentEncoding", attributes.ContentEncoding);
        Optional(writer, "contentDisposition", attributes.ContentDisposition);
        Optional(writer, "cacheControl", attributes.CacheControl);
        Optional(writer, "contentLanguage", attributes.ContentLanguage);
        if (attributes.Metadata is null && sha256 is not { Length: > 0 } && !replace)
        {
            return;
        }

        writer.WriteStartObject("metadata");
        foreach (var (key, value) in attributes.Metadata ?? [])
        {
            if (value is null)
            {
                writer.WriteNull(key);
            }
            else
            {
                writer.WriteString(key, value);
            }
        }

        if (sha256 is { Length: > 0 })
        {
            writer.WriteString(GcsObjectStore.Sha256MetadataKey, sha256);
        }

        writer.WriteEndObject();
    }

    private static void Optional(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is not null)
        {
            writer.WriteString(name, value);
        }
    }

    private static string? Text(JsonElement json, string name) =>
        json.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    // GCS writes 64-bit numbers as strings.
    private static long Number(JsonElement json, string name, long fallback) =>
        Text(json, name) is { } text && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number) ? number : fallback;

    private static DateTimeOffset Time(JsonElement json, string name) =>
        Text(json, name) is { } text ? DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal) : DateTimeOffset.UnixEpoch;
}
