using GoblinAspire.TrainingWorker.Execution;
using Microsoft.Extensions.Options;
using Npgsql;

namespace GoblinAspire.TrainingWorker.Queue;

/// <summary>
/// Every worker also rescues: it re-queues jobs whose lease expired (SKIP LOCKED, so rescuers never collide) and
/// destroys machines that no running attempt owns any more — those of rescued, cancelled or finished jobs whose
/// worker died before it could clean up — and ends the MLflow runs of the attempts it took jobs from, which nothing
/// else would end: they would show RUNNING forever.
/// </summary>
public sealed partial class JobRescuer(JobQueue queue, JobRunner runner, IOptions<TrainingWorkerOptions> options, TimeProvider time, ILogger<JobRescuer> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.RescueInterval, time);
        try
        {
            do
            {
                try
                {
                    await RescueOnceAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
                {
                    LogUnavailable(logger, ex.Message);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    public async Task RescueOnceAsync(CancellationToken cancellationToken)
    {
        var rescued = await queue.RescueExpiredAsync(100, cancellationToken);
        foreach (var job in rescued)
        {
            LogRescued(logger, job.Id, job.Attempt, job.State);
        }

        foreach (var (id, json) in await queue.OrphanedInstancesAsync(cancellationToken))
        {
            var instance = InstanceRecord.FromJson(json);
            if (runner.ExecutorFor(instance) is not { } executor)
            {
                continue;
            }

            try
            {
                await executor.CleanupAsync(instance, cancellationToken);
                await queue.ForgetInstanceAsync(id, json, cancellationToken);
                LogDestroyed(logger, instance.Kind, instance.Id, id);
            }
            catch (Exception ex) when (ex is HttpRequestException or ProviderException)
            {
                // Kept on record: the next round tries again.
                LogCleanupFailed(logger, instance.Kind, instance.Id, ex.Message);
            }
        }

        // After the machines are gone, so a lost attempt still running cannot report its own end over the verdict.
        foreach (var job in rescued)
        {
            if (job.RunId is { } runId)
            {
                await runner.EndAbandonedRunAsync(job.Id, runId, cancellationToken);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: the lease of attempt {Attempt} expired; now {State}.")]
    private static partial void LogRescued(ILogger logger, Guid jobId, int attempt, string state);

    [LoggerMessage(Level = LogLevel.Information, Message = "Destroyed {Kind} {InstanceId} left behind by job {JobId}.")]
    private static partial void LogDestroyed(ILogger logger, string kind, string instanceId, Guid jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Destroying {Kind} {InstanceId} failed, will retry: {Reason}")]
    private static partial void LogCleanupFailed(ILogger logger, string kind, string instanceId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The rescuer cannot reach the training database: {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string reason);
}
