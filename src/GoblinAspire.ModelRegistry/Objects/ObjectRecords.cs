using System.Text.Json;
using System.Text.Json.Serialization;

namespace GoblinAspire.ModelRegistry.Objects;

public sealed record BucketRecord
{
    public required string Name { get; init; }

    public required DateTimeOffset Created { get; init; }

    public required DateTimeOffset Updated { get; init; }

    public long Metageneration { get; init; } = 1;

    /// <summary>New objects are encrypted with the active key.</summary>
    public bool Encrypted { get; init; }

    public Dictionary<string, string>? Labels { get; init; }
}

/// <summary>Settable object attributes: what uploads, PATCH and rewrites carry.</summary>
public sealed record ObjectAttributes
{
    public string? ContentType { get; init; }

    public string? ContentEncoding { get; init; }

    public string? ContentDisposition { get; init; }

    public string? CacheControl { get; init; }

    public string? ContentLanguage { get; init; }

    /// <summary>Custom metadata; in a patch a null value removes the key.</summary>
    public Dictionary<string, string?>? Metadata { get; init; }
}

public sealed record ObjectRecord
{
    public required string Bucket { get; init; }

    public required string Name { get; init; }

    public required long Generation { get; init; }

    public long Metageneration { get; init; } = 1;

    public required long Size { get; init; }

    public string ContentType { get; init; } = "application/octet-stream";

    public string? ContentEncoding { get; init; }

    public string? ContentDisposition { get; init; }

    public string? CacheControl { get; init; }

    public string? ContentLanguage { get; init; }

    public Dictionary<string, string>? Metadata { get; init; }

    public required string Md5 { get; init; }

    public required string Crc32C { get; init; }

    public required string Sha256 { get; init; }

    public required DateTimeOffset Created { get; init; }

    public required DateTimeOffset Updated { get; init; }

    /// <summary>The encryption key id; null for a plain object.</summary>
    public string? KeyId { get; init; }

    /// <summary>The data file's name inside the bucket's data folder.</summary>
    public required string DataFile { get; init; }

    [JsonIgnore]
    public bool Encrypted => KeyId is not null;
}

/// <summary>GCS's four generation preconditions; null = not given.</summary>
public sealed record Preconditions(long? IfGenerationMatch = null, long? IfGenerationNotMatch = null, long? IfMetagenerationMatch = null, long? IfMetagenerationNotMatch = null)
{
    public static readonly Preconditions None = new();

    /// <summary>Throws 412 conditionNotMet unless every given precondition holds for <paramref name="current"/> (null = no live object).</summary>
    public void Check(ObjectRecord? current)
    {
        var generation = current?.Generation ?? 0;
        if (IfGenerationMatch is { } match && match != generation
            || IfGenerationNotMatch is { } notMatch && notMatch == generation
            || IfMetagenerationMatch is { } metaMatch && (current is null || metaMatch != current.Metageneration)
            || IfMetagenerationNotMatch is { } metaNotMatch && current is not null && metaNotMatch == current.Metageneration)
        {
            throw GcsException.ConditionNotMet();
        }
    }
}

/// <summary>Hashes a client declared for its upload; the upload fails if the bytes disagree.</summary>
public sealed record DeclaredHashes(string? Md5Base64, string? Crc32CBase64)
{
    /// <summary>Throws 400 as GCS words it when a declared hash is not the bytes' own.</summary>
    public void Verify(ObjectDigests digests)
    {
        ArgumentNullException.ThrowIfNull(digests);
        if (Md5Base64 is { } md5 && md5 != digests.Md5Base64)
        {
            throw GcsException.Invalid($"Provided MD5 hash \"{md5}\" doesn't match calculated MD5 hash \"{digests.Md5Base64}\".");
        }

        if (Crc32CBase64 is { } crc && crc != digests.Crc32CBase64)
        {
            throw GcsException.Invalid($"Provided CRC32C \"{crc}\" doesn't match calculated CRC32C \"{digests.Crc32CBase64}\".");
        }
    }
}

public sealed record ObjectListQuery(string? Prefix, string? Delimiter, string? StartOffset, string? EndOffset, string? PageToken, int MaxResults, bool IncludeTrailingDelimiter = false);

public sealed record ObjectListing(IReadOnlyList<ObjectRecord> Items, IReadOnlyList<string> Prefixes, string? NextPageToken);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(BucketRecord))]
[JsonSerializable(typeof(ObjectRecord))]
internal sealed partial class RecordJson : JsonSerializerContext;
