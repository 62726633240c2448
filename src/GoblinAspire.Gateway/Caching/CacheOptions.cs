using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Caching;

public sealed class CacheOptions
{
    public const string SectionName = "Gateway:Cache";

    /// <summary>Request header: <c>force</c> caches a request that is not deterministic by itself; <c>bypass</c> neither reads nor writes.</summary>
    public const string RequestHeader = "x-goblin-cache";

    public bool Enabled { get; set; } = true;

    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan Ttl { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Bytes the in-memory (L1) cache may hold per replica.</summary>
    [Range(0, 16L * 1024 * 1024 * 1024)]
    public long MemoryLimitBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Answers larger than this are not cached.</summary>
    [Range(1024, 64L * 1024 * 1024)]
    public long MaxEntryBytes { get; set; } = 1024 * 1024;

    /// <summary>Entries are per team unless this is false (then teams share answers to identical requests).</summary>
    public bool ScopePerTeam { get; set; } = true;
}

[OptionsValidator]
public sealed partial class CacheOptionsValidator : IValidateOptions<CacheOptions>;
