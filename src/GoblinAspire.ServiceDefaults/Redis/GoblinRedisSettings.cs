namespace GoblinAspire.ServiceDefaults.Redis;

/// <summary>
/// The settings Aspire.StackExchange.Redis reads, under the same keys
/// (<c>Aspire:StackExchange:Redis</c>, then <c>Aspire:StackExchange:Redis:{name}</c>, then
/// <c>ConnectionStrings:{name}</c>), so a deployment configured for the Aspire component works unchanged.
/// </summary>
public sealed class GoblinRedisSettings
{
    public const string SectionName = "Aspire:StackExchange:Redis";

    public string? ConnectionString { get; set; }

    public bool DisableHealthChecks { get; set; }

    /// <summary>
    /// The service can serve without this dependency (the gateway without Redis or its database): while it is down
    /// readiness reports <c>Degraded</c> with HTTP 200, so a Kubernetes probe keeps the replica in service.
    /// </summary>
    public bool ServesWithout { get; set; }

    public bool DisableTracing { get; set; }

    public bool DisableAutoActivation { get; set; }

    /// <summary>
    /// Completes Redis replies on StackExchange.Redis's own dedicated socket threads instead of the .NET thread pool.
    /// Off by default: the thread pool answers an awaited command in about a quarter of the time on a busy host
    /// (45 µs against 165–200 µs per round trip, see docs/benchmarks.md), which is the whole cost the gateway's
    /// rate limiter adds to a request. Turn it on only for a process that blocks thread-pool threads.
    /// </summary>
    public bool UseDedicatedSocketThreads { get; set; }

    /// <summary>
    /// How long the health check may wait on Redis. Short on purpose: a dead Redis must turn
    /// <c>/health</c> red quickly, never hold the probe.
    /// </summary>
    public TimeSpan HealthCheckTimeout { get; set; } = TimeSpan.FromSeconds(1);
}
