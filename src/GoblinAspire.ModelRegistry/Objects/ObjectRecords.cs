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

    /// <summary>How many objects a composite was made of; null for one that was uploaded (GCS gives those an MD5).</summary>
    public int? ComponentCount { get; init; }

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

    /// <summary>The metageneration preconditions against a bucket (generations are an object's alone).</summary>
    public void CheckBucket(BucketRecord bucket)
    {
        ArgumentNullException.ThrowIfNull(bucket);
        if (IfMetagenerationMatch is { } match && match != bucket.Metageneration
            || IfMetagenerationNotMatch is { } notMatch && notMatch == bucket.Metageneration)
        {
            throw GcsException.ConditionNotMet();
        }
    }
}

/// <summary>GCS's rules for bucket labels: lowercase keys and values of letters, digits, '_' and '-'.</summary>
public static class BucketLabels
{
    public const int MaxCount = 64;
    public const int MaxLength = 63;

    public static void Check(string key, string? value)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length is 0 or > MaxLength || !char.IsAsciiLetterLower(key[0]) || !key.All(Allowed))
        {
            throw GcsException.Invalid($"Invalid label key '{Printable(key)}': 1 to {MaxLength} lowercase letters, digits, '_' or '-', starting with a letter.");
        }

        if (value is not null && (value.Length > MaxLength || !value.All(Allowed)))
        {
            throw GcsException.Invalid($"Invalid value for label '{key}': up to {MaxLength} lowercase letters, digits, '_' or '-'.");
        }
    }

    private static bool Allowed(char c) => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-';

    private static string Printable(string value) => new(value.Take(64).Select(c => char.IsControl(c) ? '?' : c).ToArray());
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

public sealed record ObjectListQuery(string? Prefix, string? Delimiter, string? StartOffset, string? EndOffset, string? PageToken, int MaxResults, bool IncludeTrailingDelimiter = false, ObjectGlob? MatchGlob = null);

/// <summary>One source of a compose: its name, and optionally the generation it must be (or be matched against).</summary>
public sealed record ComposeSource(string Name, long? Generation, long? IfGenerationMatch)
{
    /// <summary>GCS's limits: sources in one request, and components a composite may be made of in all.</summary>
    public const int MaxSources = 32;
    public const int MaxComponents = 1024;

    /// <summary>A pinned generation that is not the live one is not found (this store keeps no others); a failed match is 412.</summary>
    public void Check(ObjectRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (Generation is { } generation && generation != record.Generation)
        {
            throw GcsException.ObjectNotFound(record.Bucket, record.Name);
        }

        if (IfGenerationMatch is { } match && match != record.Generation)
        {
            throw GcsException.ConditionNotMet();
        }
    }
}

public sealed record ObjectListing(IReadOnlyList<ObjectRecord> Items, IReadOnlyList<string> Prefixes, string? NextPageToken);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(BucketRecord))]
[JsonSerializable(typeof(ObjectRecord))]
internal sealed partial class RecordJson : JsonSerializerContext;
