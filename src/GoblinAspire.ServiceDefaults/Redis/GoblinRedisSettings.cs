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

    public bool DisableTracing { get; set; }

    public bool DisableAutoActivation { get; set; }

    /// <summary>
    /// How long the health check may wait on Redis. Short on purpose: a dead Redis must turn
    /// <c>/health</c> red quickly, never hold the probe.
    /// </summary>
    public TimeSpan HealthCheckTimeout { get; set; } = TimeSpan.FromSeconds(1);
}
