using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace GoblinAspire.AppHost.DataStores;

/// <summary>
/// The machine's <c>redis-server</c> as an executable resource: password authentication, an append-only file in its
/// data folder, and a connection string in the format of Aspire's Redis container (<c>host:port,password=…</c>).
/// </summary>
public sealed class RedisProcessResource(string name, string command, string dataDirectory, ParameterResource password)
    : ExecutableResource(name, command, dataDirectory), IResourceWithConnectionString
{
    public const string PrimaryEndpointName = "tcp";

    private EndpointReference? _primaryEndpoint;

    public ParameterResource PasswordParameter { get; } = password;

    public EndpointReference PrimaryEndpoint => _primaryEndpoint ??= new(this, PrimaryEndpointName);

    /// <summary>Holds the password, so it never appears on a command line any local user can read.</summary>
    public string ConfigurationFile => Path.Combine(WorkingDirectory, "redis.conf");

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"{PrimaryEndpoint.Property(EndpointProperty.HostAndPort)},password={PasswordParameter}");
}

public static class RedisProcessExtensions
{
    public static IResourceBuilder<RedisProcessResource> AddRedisServer(this IDistributedApplicationBuilder builder, string name, IResourceBuilder<ParameterResource> password, string dataDirectory)
    {
        var directory = Path.Combine(dataDirectory, name);
        var redis = new RedisProcessResource(name, ServerBinaries.RedisServer, directory, password.Resource);
        var healthCheck = $"{name}_check";
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(healthCheck, _ => new RedisPing(redis), failureStatus: null, tags: null));
        return builder.AddResource(redis)
            .WithEndpoint(name: RedisProcessResource.PrimaryEndpointName, scheme: "tcp")
            .WithArgs(context =>
            {
                context.Args.Add(redis.ConfigurationFile);
                context.Args.Add("--port");
                context.Args.Add(redis.PrimaryEndpoint.Property(EndpointProperty.TargetPort));
            })
            .OnBeforeResourceStarted(async (resource, _, cancellationToken) =>
            {
                // Only its owner may enter: the folder holds the append-only file, the configuration the password.
                Directory.CreateDirectory(resource.WorkingDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                var secret = await resource.PasswordParameter.GetValueAsync(cancellationToken);
                await PrivateFile.WriteAsync(resource.ConfigurationFile, string.Join('\n',
                [
                    "bind 127.0.0.1",
                    $"requirepass \"{secret}\"",
                    $"dir \"{resource.WorkingDirectory}\"",
                    "daemonize no",
                    "appendonly yes",
                    "save \"\"",
                ]) + "\n", cancellationToken);
            })
            .WithHealthCheck(healthCheck);
    }

    /// <summary>Healthy once the server answers PING with the password, as the container's check is.</summary>
    private sealed class RedisPing(RedisProcessResource redis) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                var options = ConfigurationOptions.Parse(await redis.ConnectionStringExpression.GetValueAsync(cancellationToken) ?? string.Empty);
                options.AbortOnConnectFail = true;
                options.ConnectTimeout = 2000;
                await using var connection = await ConnectionMultiplexer.ConnectAsync(options);
                var latency = await connection.GetDatabase().PingAsync();
                return HealthCheckResult.Healthy(string.Create(CultureInfo.InvariantCulture, $"PING {latency.TotalMilliseconds:0.0} ms"));
            }
            catch (Exception ex) when (ex is RedisException or InvalidOperationException or TimeoutException)
            {
                return HealthCheckResult.Unhealthy(ex.Message);
            }
        }
    }
}
