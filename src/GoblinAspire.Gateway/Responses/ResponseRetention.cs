using Microsoft.Extensions.Options;
using Npgsql;

namespace GoblinAspire.Gateway.Responses;

/// <summary>Deletes stored responses past their retention, every <see cref="ResponsesOptions.SweepInterval"/>.</summary>
public sealed partial class ResponseRetention(ResponseStore store, IOptions<ResponsesOptions> options, TimeProvider time, ILogger<ResponseRetention> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SweepInterval, time);
        do
        {
            try
            {
                await store.DeleteExpiredAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                // PostgreSQL away: readers already ignore expired rows, so the sweep simply waits for the next turn.
                SweepFailed(logger, ex.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Sweeping expired stored responses failed: {Error}")]
    private static partial void SweepFailed(ILogger logger, string error);
}
