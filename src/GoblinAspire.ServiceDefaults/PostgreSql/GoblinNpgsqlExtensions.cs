using System.Data.Common;
using GoblinAspire.ServiceDefaults.PostgreSql;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// PostgreSQL wiring that behaves like Aspire.Npgsql's <c>AddNpgsqlDataSource</c>: same configuration keys, a
/// singleton <see cref="NpgsqlDataSource"/> with tracing and metrics, and a health check. Named differently so
/// the Aspire package can be added later without a clash.
/// </summary>
public static class GoblinNpgsqlExtensions
{
    public static IHostApplicationBuilder AddGoblinNpgsql(
        this IHostApplicationBuilder builder,
        string connectionName,
        Action<GoblinNpgsqlSettings>? configureSettings = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(connectionName);

        var settings = new GoblinNpgsqlSettings();
        builder.Configuration.GetSection(GoblinNpgsqlSettings.SectionName).Bind(settings);
        builder.Configuration.GetSection($"{GoblinNpgsqlSettings.SectionName}:{connectionName}").Bind(settings);
        if (builder.Configuration.GetConnectionString(connectionName) is { Length: > 0 } connectionString)
        {
            settings.ConnectionString = connectionString;
        }

        configureSettings?.Invoke(settings);

        if (string.IsNullOrWhiteSpace(settings.ConnectionString))
        {
            throw new InvalidOperationException(
                $"PostgreSQL database '{connectionName}' has no connection string: set ConnectionStrings:{connectionName} " +
                $"(environment: ConnectionStrings__{connectionName}) or {GoblinNpgsqlSettings.SectionName}:{connectionName}:ConnectionString.");
        }

        var configuredConnectionString = settings.ConnectionString;
        builder.Services.AddKeyedSingleton(connectionName, (sp, _) =>
            new NpgsqlDataSourceBuilder(configuredConnectionString)
                .UseLoggerFactory(sp.GetService<Logging.ILoggerFactory>())
                .Build());
        builder.Services.TryAddDataSource(connectionName);

        if (!settings.DisableTracing && builder.IsTracingExported())
        {
            builder.Services.AddOpenTelemetry().WithTracing(tracing => tracing.AddNpgsql());
        }

        if (!settings.DisableMetrics)
        {
            builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter("Npgsql"));
        }

        if (!settings.DisableHealthChecks)
        {
            builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
                connectionName,
                sp => new NpgsqlHealthCheck(sp.GetRequiredKeyedService<NpgsqlDataSource>(connectionName), settings.HealthCheckTimeout),
                failureStatus: settings.ServesWithout ? HealthStatus.Degraded : HealthStatus.Unhealthy,
                tags: ["ready"],
                timeout: settings.HealthCheckTimeout + TimeSpan.FromMilliseconds(250)));
        }

        return builder;
    }

    /// <summary>The first database a service adds is also its unkeyed data source, as with the Aspire component.</summary>
    private static void TryAddDataSource(this IServiceCollection services, string connectionName)
    {
        if (services.Any(d => d.ServiceType == typeof(NpgsqlDataSource) && !d.IsKeyedService))
        {
            return;
        }

        services.AddSingleton(sp => sp.GetRequiredKeyedService<NpgsqlDataSource>(connectionName));
        services.AddSingleton<DbDataSource>(sp => sp.GetRequiredKeyedService<NpgsqlDataSource>(connectionName));
    }
}
