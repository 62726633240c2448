using System.Globalization;
using GoblinAspire.ServiceDefaults;

namespace GoblinAspire.LocalHost;

/// <summary>Where telemetry goes: an OTLP endpoint (the Aspire dashboard's, or any collector's) and its headers.</summary>
public sealed record TelemetryExport(Uri Endpoint, string Protocol = "grpc", string? Headers = null);

/// <summary>
/// The environment the AppHost gives one service, in Aspire's own formats: <c>ConnectionStrings__{name}</c>,
/// <c>services__{service}__http__0</c>, the secrets and fixed settings of <see cref="PlatformTopology"/> (an optional
/// secret only where <c>secret</c> returns a value), and
/// <c>OTEL_*</c> (with the short export intervals Aspire uses in development).
/// </summary>
public static class AppHostEnvironment
{
    public static Dictionary<string, string> For(
        ServiceWiring wiring,
        string instanceId,
        Func<string, string> databaseConnectionString,
        string? redisConnectionString,
        Func<string, Uri> serviceEndpoint,
        Func<PlatformSecret, string?> secret,
        TelemetryExport? telemetry = null)
    {
        ArgumentNullException.ThrowIfNull(wiring);
        ArgumentNullException.ThrowIfNull(databaseConnectionString);
        ArgumentNullException.ThrowIfNull(serviceEndpoint);
        ArgumentNullException.ThrowIfNull(secret);
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["OTEL_SERVICE_NAME"] = wiring.Name,
            ["OTEL_RESOURCE_ATTRIBUTES"] = $"service.instance.id={instanceId}",
        };
        foreach (var database in wiring.Databases)
        {
            environment[PlatformTopology.ConnectionStringVariable(database)] = databaseConnectionString(database);
        }

        if (wiring.UsesRedis)
        {
            environment[PlatformTopology.ConnectionStringVariable(PlatformResources.Redis)] = redisConnectionString
                ?? throw new ArgumentException($"{wiring.Name} uses Redis, and no Redis connection string was given.", nameof(redisConnectionString));
        }

        foreach (var reference in wiring.ServiceReferences)
        {
            environment[PlatformTopology.ServiceEndpointVariable(reference)] = serviceEndpoint(reference).AbsoluteUri.TrimEnd('/');
        }

        foreach (var parameter in wiring.SecretParameters)
        {
            // An optional secret not given leaves its feature off, settings included, as the AppHost composes it.
            if (secret(parameter) is not { } value)
            {
                continue;
            }

            environment[parameter.Variable] = value;
            foreach (var (name, setting) in parameter.Settings)
            {
                environment[name] = setting;
            }
        }

        foreach (var (name, value) in wiring.FixedSettings)
        {
            environment[name] = value;
        }

        if (telemetry is not null)
        {
            environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = telemetry.Endpoint.AbsoluteUri.TrimEnd('/');
            environment["OTEL_EXPORTER_OTLP_PROTOCOL"] = telemetry.Protocol;
            if (telemetry.Headers is { Length: > 0 } headers)
            {
                environment["OTEL_EXPORTER_OTLP_HEADERS"] = headers;
            }

            var second = 1000.ToString(CultureInfo.InvariantCulture);
            environment["OTEL_BSP_SCHEDULE_DELAY"] = second;
            environment["OTEL_BLRP_SCHEDULE_DELAY"] = second;
            environment["OTEL_METRIC_EXPORT_INTERVAL"] = second;
        }

        return environment;
    }
}
