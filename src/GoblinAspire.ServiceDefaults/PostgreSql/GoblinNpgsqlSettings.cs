namespace GoblinAspire.ServiceDefaults.PostgreSql;

/// <summary>
/// The settings Aspire.Npgsql reads, under the same keys (<c>Aspire:Npgsql</c>, then
/// <c>Aspire:Npgsql:{name}</c>, then <c>ConnectionStrings:{name}</c>).
/// </summary>
public sealed class GoblinNpgsqlSettings
{
    public const string SectionName = "Aspire:Npgsql";

    public string? ConnectionString { get; set; }

    public bool DisableHealthChecks { get; set; }

    /// <summary>
    /// The service can serve without this dependency (the gateway without Redis or its database): while it is down
    /// readiness reports <c>Degraded</c> with HTTP 200, so a Kubernetes probe keeps the replica in service.
    /// </summary>
    public bool ServesWithout { get; set; }

    public bool DisableTracing { get; set; }

    public bool DisableMetrics { get; set; }

    /// <summary>Short on purpose: a dead PostgreSQL must turn <c>/health</c> red quickly.</summary>
    public TimeSpan HealthCheckTimeout { get; set; } = TimeSpan.FromSeconds(1);
}
