using GoblinAspire.ServiceDefaults;
using GoblinAspire.ServiceDefaults.Redis;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using OpenTelemetry.Trace;
using StackExchange.Redis;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Redis wiring that behaves like Aspire.StackExchange.Redis's <c>AddRedisClient</c>: same configuration keys,
/// a singleton <see cref="IConnectionMultiplexer"/> that never aborts on a failed first connect, a health
/// check and tracing. The name differs so a user can add the Aspire package later without a clash.
/// </summary>
public static class GoblinRedisExtensions
{
    public static IHostApplicationBuilder AddGoblinRedis(
        this IHostApplicationBuilder builder,
        string connectionName = PlatformResources.Redis,
        Action<GoblinRedisSettings>? configureSettings = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(connectionName);

        var settings = new GoblinRedisSettings();
        var common = builder.Configuration.GetSection(GoblinRedisSettings.SectionName);
        var named = common.GetSection(connectionName);
        common.Bind(settings);
        named.Bind(settings);
        if (builder.Configuration.GetConnectionString(connectionName) is { Length: > 0 } connectionString)
        {
            settings.ConnectionString = connectionString;
        }

        configureSettings?.Invoke(settings);

        if (string.IsNullOrWhiteSpace(settings.ConnectionString))
        {
            throw new InvalidOperationException(
                $"Redis '{connectionName}' has no connection string: set ConnectionStrings:{connectionName} " +
                $"(environment: ConnectionStrings__{connectionName}) or {GoblinRedisSettings.SectionName}:{connectionName}:ConnectionString.");
        }

        var options = ConfigurationOptions.Parse(settings.ConnectionString);
        // Same sub-section as the Aspire component: ConnectTimeout, ConnectRetry, … override the string.
        common.GetSection("ConfigurationOptions").Bind(options);
        named.GetSection("ConfigurationOptions").Bind(options);
        // The app must start, and recover by itself, while Redis is still coming up or briefly gone.
        options.AbortOnConnectFail = false;
        if (!settings.UseDedicatedSocketThreads)
        {
            options.SocketManager = SocketManager.ThreadPool;
        }

        builder.Services.AddSingleton<IConnectionMultiplexer>(_ => ConnectionMultiplexer.Connect(options));

        if (!settings.DisableAutoActivation)
        {
            builder.Services.AddHostedService(sp => new ServiceActivation<IConnectionMultiplexer>(sp));
        }

        if (!settings.DisableTracing && builder.IsTracingExported())
        {
            builder.Services.AddSingleton(sp => new RedisCommandTracing(
                sp.GetRequiredService<IConnectionMultiplexer>(),
                sp.GetService<TimeProvider>() ?? TimeProvider.System));
            builder.Services.AddHostedService(sp => new ServiceActivation<RedisCommandTracing>(sp));
            builder.Services.AddOpenTelemetry().WithTracing(tracing => tracing.AddSource(RedisCommandTracing.ActivitySourceName));
        }

        if (!settings.DisableHealthChecks)
        {
            builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
                PlatformResources.Redis == connectionName ? "redis" : $"redis-{connectionName}",
                sp => new RedisHealthCheck(sp.GetRequiredService<IConnectionMultiplexer>(), settings.HealthCheckTimeout),
                failureStatus: settings.ServesWithout ? HealthStatus.Degraded : HealthStatus.Unhealthy,
                tags: ["ready"],
                timeout: settings.HealthCheckTimeout + TimeSpan.FromMilliseconds(250)));
        }

        return builder;
    }
}
