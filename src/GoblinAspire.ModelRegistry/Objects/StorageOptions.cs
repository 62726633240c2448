using System.ComponentModel.DataAnnotations;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>The object store behind the GCS API and MLflow's artifacts: <c>ModelRegistry:Storage</c>.</summary>
public sealed class StorageOptions
{
    public const string SectionName = "ModelRegistry:Storage";

    /// <summary>
    /// Where buckets and objects live: <c>local</c> (a folder under the artifact root; the default) or <c>gcs</c>
    /// (Google Cloud Storage, configured under <c>ModelRegistry:Storage:Gcs</c>).
    /// </summary>
    [Required]
    [RegularExpression("^(local|gcs)$")]
    public string Backend { get; set; } = "local";

    /// <summary>The bucket MLflow artifacts and registered model files live in; created at start.</summary>
    [Required]
    public string ArtifactBucket { get; set; } = GoblinAspire.ServiceDefaults.PlatformResources.ArtifactBucket;

    /// <summary>Buckets whose new objects are encrypted with <see cref="ActiveEncryptionKey"/> (the artifact bucket may be one).</summary>
    public string[] EncryptedBuckets { get; set; } = [];

    /// <summary>Key id → base64 of 32 random bytes. Old ids stay here after a rotation so their objects stay readable.</summary>
    public Dictionary<string, string> EncryptionKeys { get; set; } = [];

    /// <summary>The key new objects in encrypted buckets are written with.</summary>
    public string? ActiveEncryptionKey { get; set; }

    /// <summary>
    /// A secret (the AppHost's <c>registry-encryption-key</c>): the active key given by value alone. Its id is its
    /// <see cref="Fingerprint"/>, so rotating means moving the old value to <see cref="RetiredEncryptionKeys"/> and
    /// giving the new one here; no id has to be chosen or kept in step. Empty counts as not given.
    /// </summary>
    public string? EncryptionKey { get; set; }

    /// <summary>A secret: earlier keys by value, comma-separated. What they wrote stays readable; nothing new uses them.</summary>
    public string? RetiredEncryptionKeys { get; set; }

    /// <summary>The access id in signed URLs' <c>X-Goog-Credential</c>.</summary>
    [Required]
    [RegularExpression("^[A-Za-z0-9._@-]{1,128}$")]
    public string SigningKeyId { get; set; } = "goblin-registry";

    /// <summary>The HMAC secret signed URLs are signed with (a secret parameter; at least 32 characters).</summary>
    [Required]
    [MinLength(32)]
    public string SigningSecret { get; set; } = "";

    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan DefaultSignedUrlLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Whether uploads are staged with direct I/O (Linux <c>O_DIRECT</c>) where the file system allows, bypassing
    /// the page cache: about a third less CPU per uploaded GiB and no eviction of other files, but a download right
    /// after an upload then reads from the disk. Off (the default) writes through the page cache, which keeps new
    /// model files warm for the servers that fetch them next. File systems that refuse direct I/O fall back on their own.
    /// </summary>
    public bool DirectWrites { get; set; }

    /// <summary>
    /// Resumable upload sessions not finished within this long of their start are ended and their bytes removed, as
    /// GCS ends them after a week.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan UploadSessionLifetime { get; set; } = TimeSpan.FromDays(7);

    /// <summary>How often ended sessions' files are looked for; an ended session answers 404 at once regardless.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan UploadSessionSweepInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>The id a key given by value gets: a short SHA-256 fingerprint, which names the key without revealing it.</summary>
    public static string Fingerprint(ReadOnlySpan<byte> key) => "sha256-" + Convert.ToHexStringLower(SHA256.HashData(key))[..16];

    /// <summary>
    /// Adds the keys given by value (<see cref="EncryptionKey"/>, <see cref="RetiredEncryptionKeys"/>) to
    /// <see cref="EncryptionKeys"/> under their fingerprints, and makes <see cref="EncryptionKey"/> the active one.
    /// Values that are not AES-256 keys are left out; <see cref="StorageKeysValidator"/> reports them.
    /// </summary>
    public void AddKeysGivenByValue()
    {
        foreach (var retired in Split(RetiredEncryptionKeys))
        {
            if (Decode(retired) is { } key)
            {
                EncryptionKeys[Fingerprint(key)] = retired;
            }
        }

        if (!string.IsNullOrWhiteSpace(EncryptionKey) && Decode(EncryptionKey.Trim()) is { } active)
        {
            var id = Fingerprint(active);
            EncryptionKeys[id] = EncryptionKey.Trim();
            ActiveEncryptionKey = id;
        }
    }

    internal static IEnumerable<string> Split(string? keys) =>
        (keys ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    internal static byte[]? Decode(string value)
    {
        var key = new byte[48];
        return Convert.TryFromBase64String(value, key, out var length) && length == 32 ? key[..32] : null;
    }

    public byte[]? Key(string? keyId) =>
        keyId is not null && EncryptionKeys.TryGetValue(keyId, out var value) ? Convert.FromBase64String(value) : null;
}

[OptionsValidator]
public sealed partial class StorageOptionsValidator : IValidateOptions<StorageOptions>;

/// <summary>Checks keys decode to AES-256 keys and that encrypted buckets have a key to write with.</summary>
public sealed class StorageKeysValidator : IValidateOptions<StorageOptions>
{
    public ValidateOptionsResult Validate(string? name, StorageOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        Span<byte> key = stackalloc byte[48];
        if (!string.IsNullOrWhiteSpace(options.EncryptionKey) && StorageOptions.Decode(options.EncryptionKey.Trim()) is null)
        {
            failures.Add("ModelRegistry:Storage:EncryptionKey must be the base64 of exactly 32 bytes.");
        }

        var retired = StorageOptions.Split(options.RetiredEncryptionKeys).ToList();
        for (var i = 0; i < retired.Count; i++)
        {
            if (StorageOptions.Decode(retired[i]) is null)
            {
                failures.Add($"ModelRegistry:Storage:RetiredEncryptionKeys: entry {i + 1} must be the base64 of exactly 32 bytes.");
            }
        }

        foreach (var (id, value) in options.EncryptionKeys)
        {
            if (!Convert.TryFromBase64String(value, key, out var length) || length != 32)
            {
                // The value itself is a secret: only the id is named.
                failures.Add($"ModelRegistry:Storage:EncryptionKeys:{id} must be the base64 of exactly 32 bytes.");
            }
        }

        if (options.ActiveEncryptionKey is { } active && !options.EncryptionKeys.ContainsKey(active))
        {
            failures.Add($"ModelRegistry:Storage:ActiveEncryptionKey names '{active}', which is not among EncryptionKeys.");
        }

        if (options.EncryptedBuckets.Length > 0 && options.ActiveEncryptionKey is null)
        {
            failures.Add("ModelRegistry:Storage:EncryptedBuckets needs an ActiveEncryptionKey.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
