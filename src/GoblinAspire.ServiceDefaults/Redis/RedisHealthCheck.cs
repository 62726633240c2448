using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace GoblinAspire.ServiceDefaults.Redis;

/// <summary>
/// Written here because AspNetCore.HealthChecks.Redis is not on this feed. A disconnected multiplexer answers at
/// once instead of queueing a PING behind its backlog, so the check never takes longer than its timeout.
/// </summary>
internal sealed class RedisHealthCheck(IConnectionMultiplexer multiplexer, TimeSpan timeout) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!multiplexer.IsConnected)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, "Redis is not connected.");
        }

        try
        {
            var latency = await multiplexer.GetDatabase().PingAsync().WaitAsync(timeout, cancellationToken);
            return HealthCheckResult.Healthy($"Redis answered PING in {latency.TotalMilliseconds:0.0} ms.");
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"Redis did not answer PING: {ex.GetType().Name}.");
        }
    }
}
