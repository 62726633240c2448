using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Keys;

public sealed class AccessOptions
{
    public const string SectionName = "Gateway:Access";

    /// <summary>
    /// Secure by default: every inference request needs a virtual key. An operator may opt out explicitly with
    /// <c>false</c> (a local or single-team setup; the gateway warns at start): a request without a key is then served,
    /// and one that presents an <c>sk-goblin-</c> key is still checked.
    /// </summary>
    public bool RequireKeys { get; set; } = true;

    /// <summary>The admin API's bearer secret; without it the admin API answers 404. Give it as a secret.</summary>
    public string? AdminKey { get; set; }

    /// <summary>How long a key lookup is cached per replica: the longest a revoke takes to reach every replica.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan KeyCacheDuration { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a key already seen keeps working from its last known state while PostgreSQL cannot be reached. A key
    /// revoked during the outage stays usable up to this long; a key never seen gets 503 until PostgreSQL is back.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan KeyStaleness { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Rate-limit window for RPM and TPM.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan RateWindow { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Longest wait for a connected but silent Redis on the request path; past it the failure mode applies. A Redis
    /// that is down is noticed at once (its connection drops), so this only bounds a hung one. Shorter values make a
    /// load spike look like an outage, and fail-open then admits requests the shared limit would refuse.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.005", "00:00:05")]
    public TimeSpan RedisTimeout { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary><c>open</c>: fall back to a per-replica in-memory limiter while Redis is away; <c>closed</c>: refuse with 503.</summary>
    [RegularExpression("^(open|closed)$")]
    public string RedisFailureMode { get; set; } = "open";

    /// <summary>Completion tokens reserved for a request that sets no max_tokens.</summary>
    [Range(1, 1_000_000)]
    public int DefaultReservedCompletionTokens { get; set; } = 1024;
}

[OptionsValidator]
public sealed partial class AccessOptionsValidator : IValidateOptions<AccessOptions>;
