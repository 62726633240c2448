using System.Collections.Concurrent;
using GoblinAspire.TrainingWorker.Execution;
using GoblinAspire.TrainingWorker.Jobs;
using Microsoft.Extensions.Options;
using Npgsql;

namespace GoblinAspire.TrainingWorker.Queue;

/// <summary>
/// The worker's loop: claims jobs into free slots of each queue, keeps their leases alive, and stops an attempt when
/// its cancellation arrives (LISTEN/NOTIFY, with the heartbeat's flag as the fallback) or its lease can no longer be
/// proven — before the database would let another worker take the job, so two attempts never overlap.
/// </summary>
public sealed partial class JobDispatcher(
    JobQueue queue,
    JobRunner runner,
    IOptions<TrainingWorkerOptions> options,
    TimeProvider time,
    TrainingMetrics metrics,
    ILogger<JobDispatcher> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<Guid, Attempt> _running = new();
    private readonly ConcurrentDictionary<string, int> _busy = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);

    /// <summary>This process's name in leases: machine, pid and a random suffix, so a restarted worker is a new owner.</summary>
    public string Owner { get; } = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var listening = ListenAsync(stoppingToken);
        var heartbeats = HeartbeatAsync(stoppingToken);
        await DispatchAsync(stoppingToken);

        foreach (var attempt in _running.Values)
        {
            attempt.Control.Stop(StopReason.WorkerStopping);
        }

        await Task.WhenAll(_running.Values.Select(a => a.Task));
        await Task.WhenAll(listening, heartbeats);
    }

    private async Task DispatchAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        while (!stoppingToken.IsCancellationRequested)
        {
            var claimedAny = false;
            try
            {
                foreach (var name in JobQueues.ByRank)
                {
                    var free = settings.QueueConcurrency.GetValueOrDefault(name) - _busy.GetValueOrDefault(name);
                    if (free <= 0)
                    {
                        continue;
                    }

                    // Taken before the claim: the lease runs from the database's claim, never earlier than this.
                    var claimSentAt = time.GetTimestamp();
                    foreach (var job in await queue.ClaimAsync(name, free, Owner, settings.LeaseDuration, stoppingToken))
                    {
                        claimedAny = true;
                        Start(job, claimSentAt);
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                LogDatabaseUnavailable(logger, "claiming", ex.Message);
            }

            if (claimedAny)
            {
                continue;
            }

            try
            {
                await _wake.WaitAsync(settings.PollInterval, stoppingToken);
                // Many notifications for one wake-up: one claim round serves them all.
                while (_wake.Wait(0))
                {
                    // Drained.
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Start(JobRecord job, long claimSentAt)
    {
        var control = new AttemptControl();
        _busy.AddOrUpdate(job.Queue, 1, (_, n) => n + 1);
        metrics.AttemptStarted();
        var attempt = new Attempt(new JobLease(job.Id, job.Attempt, Owner), control, claimSentAt);
        _running[job.Id] = attempt;
        attempt.Task = Task.Run(async () =>
        {
            try
            {
                await runner.RunAsync(job, control);
            }
            catch (Exception ex)
            {
                LogAttemptCrashed(logger, ex, job.Id, job.Attempt);
            }
            finally
            {
                _running.TryRemove(job.Id, out _);
                _busy.AddOrUpdate(job.Queue, 0, (_, n) => n - 1);
                metrics.AttemptEnded();
                control.Dispose();
                _wake.Release();
            }
        });
    }

    private async Task HeartbeatAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        using var timer = new PeriodicTimer(settings.HeartbeatInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var attempts = _running.Values.ToList();
                if (attempts.Count == 0)
                {
                    continue;
                }

                var sentAt = time.GetTimestamp();
                try
                {
                    var held = await queue.RenewAsync([.. attempts.Select(a => a.Lease)], Owner, settings.LeaseDuration, stoppingToken);
                    foreach (var attempt in attempts)
                    {
                        if (!held.TryGetValue(attempt.Lease.JobId, out var cancelRequested))
                        {
                            // Finished meanwhile, or taken over: only a still-running attempt has lost anything.
                            if (_running.ContainsKey(attempt.Lease.JobId))
                            {
                                attempt.Control.LoseLease();
                            }

                            continue;
                        }

                        attempt.RenewedAt = sentAt;
                        if (cancelRequested)
                        {
                            attempt.Control.Stop(StopReason.Cancelled);
                        }
                    }
                }
                catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
                {
                    LogDatabaseUnavailable(logger, "renewing leases", ex.Message);
                    // The database counts the lease from when it received the renewal, no earlier than we sent it; so
                    // stopping a heartbeat before (sent + lease) is always before another worker may claim the job.
                    foreach (var attempt in attempts)
                    {
                        if (time.GetElapsedTime(attempt.RenewedAt) >= settings.LeaseDuration - settings.HeartbeatInterval)
                        {
                            LogSelfFenced(logger, attempt.Lease.JobId, attempt.Lease.Attempt);
                            attempt.Control.LoseLease();
                        }
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    private async Task ListenAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await queue.DataSource.OpenConnectionAsync(stoppingToken);
                connection.Notification += (_, e) =>
                {
                    if (e.Channel == JobQueue.CancelChannel)
                    {
                        if (Guid.TryParse(e.Payload, out var id) && _running.TryGetValue(id, out var attempt))
                        {
                            attempt.Control.Stop(StopReason.Cancelled);
                        }
                    }
                    else
                    {
                        _wake.Release();
                    }
                };
                await using (var listen = new NpgsqlCommand($"LISTEN {JobQueue.JobsChannel}; LISTEN {JobQueue.CancelChannel};", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }

                // Jobs submitted while nobody listened are found by this claim round.
                _wake.Release();
                while (!stoppingToken.IsCancellationRequested)
                {
                    await connection.WaitAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or IOException)
            {
                LogDatabaseUnavailable(logger, "listening", ex.Message);
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private sealed class Attempt(JobLease lease, AttemptControl control, long renewedAt)
    {
        public JobLease Lease { get; } = lease;

        public AttemptControl Control { get; } = control;

        public long RenewedAt { get; set; } = renewedAt;

        public Task Task { get; set; } = Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The training database is unavailable while {Activity}: {Reason}")]
    private static partial void LogDatabaseUnavailable(ILogger logger, string activity, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Attempt {Attempt} of job {JobId} crashed the runner.")]
    private static partial void LogAttemptCrashed(ILogger logger, Exception exception, Guid jobId, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} attempt {Attempt}: its lease could not be renewed in time; stopping it before another worker may take over.")]
    private static partial void LogSelfFenced(ILogger logger, Guid jobId, int attempt);
}
