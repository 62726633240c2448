using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace GoblinAspire.ServiceDefaults.PostgreSql;

/// <summary>
/// Written here because AspNetCore.HealthChecks.NpgSql on this feed (3.0.0) predates <see cref="NpgsqlDataSource"/>.
/// Runs <c>SELECT 1</c> through the service's own data source, bounded by a short timeout.
/// </summary>
internal sealed class NpgsqlHealthCheck(NpgsqlDataSource dataSource, TimeSpan timeout) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await using var command = dataSource.CreateCommand("SELECT 1");
            await command.ExecuteScalarAsync(deadline.Token);
            return HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (ex is NpgsqlException or OperationCanceledException or TimeoutException)
        {
            // The message says what failed without echoing the connection string.
            return new HealthCheckResult(context.Registration.FailureStatus, $"PostgreSQL did not answer: {ex.GetType().Name}.");
        }
    }
}
