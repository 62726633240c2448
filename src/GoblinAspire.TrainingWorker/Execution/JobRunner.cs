using System.Globalization;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.TrainingWorker.Jobs;
using GoblinAspire.TrainingWorker.Queue;
using GoblinAspire.TrainingWorker.Registry;
using Microsoft.Extensions.Options;
using Npgsql;

namespace GoblinAspire.TrainingWorker.Execution;

/// <summary>
/// Runs one claimed attempt from start to recorded end: cleans up what a lost attempt left, opens the attempt's MLflow
/// run, mints the checkpoint URLs, hands the job to its executor, then records the verdict — fenced, so a worker that
/// lost its lease meanwhile records nothing.
/// </summary>
public sealed partial class JobRunner
{
    public const string CheckpointObject = "checkpoint";
    private readonly JobQueue _queue;
    private readonly RegistryClient _registry;
    private readonly IReadOnlyDictionary<string, IJobExecutor> _executors;
    private readonly IOptions<TrainingWorkerOptions> _options;
    private readonly TimeProvider _time;
    private readonly TrainingMetrics _metrics;
    private readonly ILogger<JobRunner> _logger;
    private readonly Uri _jobRegistryUrl;

    public JobRunner(JobQueue queue, RegistryClient registry, IEnumerable<IJobExecutor> executors, IOptions<TrainingWorkerOptions> options, IConfiguration configuration, TimeProvider time, TrainingMetrics metrics, ILogger<JobRunner> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(configuration);
        _queue = queue;
        _registry = registry;
        _executors = executors.ToDictionary(e => e.Name, StringComparer.Ordinal);
        _options = options;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        // Jobs do not resolve service discovery: they get the address it resolves to (Aspire's services__ variable).
        _jobRegistryUrl = options.Value.JobRegistryUrl
            ?? (configuration[$"services:{PlatformResources.ModelRegistry}:{PlatformResources.HttpEndpoint}:0"] is { Length: > 0 } resolved ? new Uri(resolved) : options.Value.RegistryUrl);
    }

    public IJobExecutor? ExecutorFor(InstanceRecord instance) =>
        _executors.Values.FirstOrDefault(e => e.InstanceKinds.Contains(instance.Kind));

    public async Task RunAsync(JobRecord job, AttemptControl control)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(control);
        var lease = new JobLease(job.Id, job.Attempt, job.LeaseOwner!);
        var options = _options.Value;
        var output = new AttemptOutput(_queue, lease, options.MaxLogBytesPerAttempt);
        using var flushing = new CancellationTokenSource();
        var flusher = FlushLoopAsync(output, flushing.Token);
        MlflowRun? run = null;
        ExecutionOutcome outcome;
        var executorReturned = false;
        try
        {
            // Two attempts never run at once: whatever the previous, lost attempt left goes first.
            if (job.Instance is { } previous)
            {
                var instance = InstanceRecord.FromJson(previous);
                if (ExecutorFor(instance) is { } owner)
                {
                    await owner.CleanupAsync(instance, control.Stopping);
                }

                await _queue.ForgetInstanceAsync(job.Id, previous, control.Stopping);
            }

            // The rescuer ends a lost attempt's run; should it have died first, the next attempt does.
            if (job.RunId is { } previousRun)
            {
                await EndAbandonedRunAsync(job.Id, previousRun, control.Stopping);
            }

            control.StopAfter(job.Spec.Timeout, StopReason.TimedOut, _time);
            var experimentId = await _registry.EnsureExperimentAsync(job.Spec.Experiment ?? job.Name, control.Stopping);
            run = await _registry.CreateRunAsync(experimentId, $"{job.Name}-attempt-{job.Attempt}", new Dictionary<string, string>
            {
                ["goblin.job_id"] = job.Id.ToString(),
                ["goblin.attempt"] = job.Attempt.ToString(CultureInfo.InvariantCulture),
                ["goblin.executor"] = job.Executor,
                ["goblin.queue"] = job.Queue,
            }, control.Stopping);
            await _queue.RecordRunAsync(lease, experimentId, run.RunId, control.Stopping);

            var environment = await EnvironmentAsync(job, run, control.Stopping);
            var request = new ExecutionRequest(job, environment)
            {
                MaxUsdPerHour = Math.Min(job.Spec.MaxUsdPerHour ?? options.MaxUsdPerHour, options.MaxUsdPerHour),
            };
            var reporter = new Reporter(this, lease, run, output, control);
            outcome = await _executors[job.Executor].RunAsync(request, reporter, control);
            executorReturned = true;
        }
        catch (OperationCanceledException) when (control.Stopping.IsCancellationRequested)
        {
            outcome = ExecutionOutcome.Stopped($"stopped ({control.Reason}) before the job started");
        }
        catch (RegistryException ex) when (ex.IsTransient)
        {
            outcome = ExecutionOutcome.LostCapacity($"the model registry is unavailable: {ex.Message}");
        }
        catch (RegistryException ex)
        {
            outcome = ExecutionOutcome.Refused($"the model registry refused the attempt: {ex.Message}");
        }
        catch (HttpRequestException ex)
        {
            outcome = ExecutionOutcome.LostCapacity($"a provider call failed: {ex.Message}");
        }
        catch (ProviderException ex)
        {
            // Destroying the machine failed: the job keeps naming it and the rescuer destroys it later.
            outcome = ExecutionOutcome.LostCapacity(ex.Message);
        }
        catch (NpgsqlException ex)
        {
            // The database is gone: nothing can be recorded. The lease expires and the job is rescued.
            LogDatabaseLost(_logger, job.Id, lease.Attempt, ex.Message);
            control.LoseLease();
            outcome = ExecutionOutcome.Stopped("the database was lost");
        }

        await flushing.CancelAsync();
        await flusher;
        await PersistOutputAsync(output, control);

        if (control.LeaseLost)
        {
            LogLeaseLost(_logger, job.Id, lease.Attempt);
            return;
        }

        var result = await ConcludeAsync(job, run, outcome, control.Reason) with { ReleasesInstance = executorReturned };
        // The verdict must land while the lease holds (the heartbeat keeps renewing it): a lost verdict would make the
        // rescuer run a finished job again. Only a lost lease ends the trying.
        var recorded = await PersistAsync(() => _queue.FinishAsync(lease, result, CancellationToken.None), control);
        if (recorded == true)
        {
            _metrics.Finished(job.Queue, result.State);
            LogFinished(_logger, job.Id, lease.Attempt, result.State, result.Message);
        }
        else
        {
            LogLeaseLost(_logger, job.Id, lease.Attempt);
        }
    }

    /// <summary>Retries a fenced write through a database outage until it lands, or the lease is gone (null).</summary>
    private async Task<bool?> PersistAsync(Func<Task<bool>> write, AttemptControl control)
    {
        while (!control.LeaseLost)
        {
            try
            {
                return await write();
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                LogBookkeepingFailed(_logger, ex.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(250), _time, CancellationToken.None);
            }
        }

        return null;
    }

    /// <summary>
    /// The output lands before the verdict, so whoever sees the job ended reads all it printed: retried through a
    /// database outage as the verdict is, until the lease is gone. A write the database refuses outright is dropped.
    /// </summary>
    private async Task PersistOutputAsync(AttemptOutput output, AttemptControl control)
    {
        while (!control.LeaseLost)
        {
            try
            {
                await output.FlushAsync(CancellationToken.None);
                return;
            }
            catch (Exception ex) when (ex is TimeoutException or NpgsqlException { IsTransient: true })
            {
                LogBookkeepingFailed(_logger, ex.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(250), _time, CancellationToken.None);
            }
            catch (NpgsqlException ex)
            {
                LogBookkeepingFailed(_logger, ex.Message);
                return;
            }
        }
    }

    private async Task<AttemptResult> ConcludeAsync(JobRecord job, MlflowRun? run, ExecutionOutcome outcome, StopReason reason)
    {
        var options = _options.Value;
        if (outcome.Kind == OutcomeKind.Succeeded && run is not null && job.Spec.RegisteredModel is { } model)
        {
            try
            {
                if (!await _registry.ArtifactExistsAsync(run.RunId, job.Spec.OutputArtifact!, CancellationToken.None))
                {
                    outcome = ExecutionOutcome.Failed($"the job succeeded but logged no '{job.Spec.OutputArtifact}' artifact to its MLflow run");
                }
                else
                {
                    await EndRunAsync(run, "FINISHED");
                    var version = await _registry.RegisterVersionAsync(model, run, job.Spec.OutputArtifact!, job.Spec.RegisterStage, CancellationToken.None);
                    return new AttemptResult(JobStates.Succeeded, "succeeded", $"{outcome.Message}; registered {model} version {version}") { ModelVersion = version };
                }
            }
            catch (RegistryException ex)
            {
                outcome = ex.IsTransient
                    ? ExecutionOutcome.LostCapacity($"registering the model failed, the registry is unavailable: {ex.Message}")
                    : ExecutionOutcome.Refused($"the registry refused the model version: {ex.Message}");
            }
        }

        if (outcome.Kind == OutcomeKind.Stopped)
        {
            outcome = reason switch
            {
                StopReason.TimedOut => ExecutionOutcome.Failed($"timed out after {job.Spec.Timeout}: {outcome.Message}"),
                StopReason.WorkerStopping => ExecutionOutcome.LostCapacity($"the worker shut down: {outcome.Message}"),
                StopReason.BudgetExhausted => ExecutionOutcome.Refused($"stopped before passing its budget: {outcome.Message}"),
                _ => outcome,
            };
        }

        var runStatus = outcome.Kind switch
        {
            OutcomeKind.Succeeded => "FINISHED",
            OutcomeKind.Failed => "FAILED",
            _ => "KILLED",
        };
        if (run is not null)
        {
            await EndRunAsync(run, runStatus);
        }

        switch (outcome.Kind)
        {
            case OutcomeKind.Succeeded:
                return new AttemptResult(JobStates.Succeeded, "succeeded", outcome.Message);
            case OutcomeKind.Failed:
                var failures = job.Failures + 1;
                if (failures >= job.MaxAttempts)
                {
                    return new AttemptResult(JobStates.Dead, "dead", $"{outcome.Message}; no attempts left ({failures} of {job.MaxAttempts} failed)") { CountsAsFailure = true };
                }

                var delay = RetryPolicy.Delay(failures, options.RetryBaseDelay, options.RetryMaxDelay, Random.Shared);
                return new AttemptResult(JobStates.Retrying, "retrying", $"{outcome.Message}; retry {failures + 1} of {job.MaxAttempts} in {delay.TotalSeconds:0.#} s") { CountsAsFailure = true, RetryAfter = delay };
            case OutcomeKind.LostCapacity:
                return new AttemptResult(JobStates.Recovering, "recovering", $"{outcome.Message}; re-queued without counting an attempt") { RetryAfter = options.RetryBaseDelay };
            case OutcomeKind.Stopped when reason == StopReason.Cancelled:
                return new AttemptResult(JobStates.Cancelled, "cancelled", outcome.Message);
            default:
                return new AttemptResult(JobStates.Failed, "failed", outcome.Message);
        }
    }

    private async Task<Dictionary<string, string>> EnvironmentAsync(JobRecord job, MlflowRun run, CancellationToken cancellationToken)
    {
        var options = _options.Value;
        var bucket = options.CheckpointBucket;
        var objectName = $"{job.CheckpointUri[$"gs://{bucket}/".Length..]}{CheckpointObject}";
        await _registry.EnsureBucketAsync(bucket, cancellationToken);
        var lifetime = TimeSpan.FromSeconds(Math.Min(job.Spec.Timeout.TotalSeconds + 3600, 7 * 86400));
        var upload = await _registry.SignAsync(bucket, objectName, "PUT", lifetime, cancellationToken);
        var download = await _registry.SignAsync(bucket, objectName, "GET", lifetime, cancellationToken);

        var environment = new Dictionary<string, string>(job.Spec.Env ?? [], StringComparer.Ordinal)
        {
            ["MLFLOW_TRACKING_URI"] = _jobRegistryUrl.AbsoluteUri.TrimEnd('/'),
            ["MLFLOW_RUN_ID"] = run.RunId,
            ["MLFLOW_EXPERIMENT_ID"] = run.ExperimentId,
            ["GOBLIN_JOB_ID"] = job.Id.ToString(),
            ["GOBLIN_ATTEMPT"] = job.Attempt.ToString(CultureInfo.InvariantCulture),
            ["GOBLIN_CHECKPOINT_URI"] = job.CheckpointUri,
            ["GOBLIN_CHECKPOINT_UPLOAD_URL"] = upload.Url.AbsoluteUri,
            ["GOBLIN_CHECKPOINT_DOWNLOAD_URL"] = download.Url.AbsoluteUri,
            ["GOBLIN_CHECKPOINT_INTERVAL_SECONDS"] = ((int)job.Spec.CheckpointInterval.TotalSeconds).ToString(CultureInfo.InvariantCulture),
            ["GOBLIN_STORAGE_ENDPOINT"] = _jobRegistryUrl.AbsoluteUri.TrimEnd('/'),
        };
        // The job's own credential, for its run alone: never the worker's registry token.
        if (await _registry.RunTokenAsync(run.RunId, lifetime, cancellationToken) is { } runToken)
        {
            environment["MLFLOW_TRACKING_TOKEN"] = runToken;
        }

        return environment;
    }

    /// <summary>
    /// Ends the run of an attempt that died with its worker as KILLED, with an end time, unless it ended already (its
    /// own report, or an earlier verdict, stands). Best effort: a registry that is down is logged, and the job's next
    /// attempt tries again.
    /// </summary>
    public async Task EndAbandonedRunAsync(Guid jobId, string runId, CancellationToken cancellationToken)
    {
        try
        {
            await _registry.EndRunAsync(runId, "KILLED", cancellationToken);
        }
        catch (Exception ex) when (ex is RegistryException or HttpRequestException or TimeoutException)
        {
            LogAbandonedRunNotEnded(_logger, runId, jobId, ex.Message);
        }
    }

    private async Task EndRunAsync(MlflowRun run, string status) =>
        await TryAsync(() => _registry.EndRunAsync(run.RunId, status, CancellationToken.None));

    private async Task FlushLoopAsync(AttemptOutput output, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), _time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await TryAsync(() => output.FlushAsync(CancellationToken.None));
        }
    }

    /// <summary>Best effort for what must not end the attempt's bookkeeping: a lost write is logged, the lease rules.</summary>
    private async Task TryAsync(Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (Exception ex) when (ex is NpgsqlException or RegistryException or HttpRequestException or TimeoutException)
        {
            LogBookkeepingFailed(_logger, ex.Message);
        }
    }

    private sealed class Reporter(JobRunner runner, JobLease lease, MlflowRun run, AttemptOutput output, AttemptControl control) : IAttemptReporter
    {
        public async Task ProvisionedAsync(InstanceRecord instance, string message)
        {
            if (await runner.PersistAsync(() => runner._queue.RecordInstanceAsync(lease, instance.ToJson(), message, CancellationToken.None), control) != true)
            {
                control.LoseLease();
            }
        }

        public async Task RunningAsync(string message)
        {
            if (await runner.PersistAsync(() => runner._queue.MarkRunningAsync(lease, message, CancellationToken.None), control) != true)
            {
                control.LoseLease();
            }
        }

        public void Output(string stream, string line) => output.Add(stream, line);

        public async Task<bool> ChargeAsync(decimal usd)
        {
            var monthStart = JobQueue.MonthStart(runner._time.GetUtcNow());
            var result = ChargeResult.LeaseLost;
            await runner.PersistAsync(async () =>
            {
                result = await runner._queue.ChargeAsync(lease, usd, runner._options.Value.MonthlyBudgetUsd, monthStart, CancellationToken.None);
                return true;
            }, control);
            switch (result)
            {
                case ChargeResult.Charged:
                    runner._metrics.Spent(usd);
                    return true;
                case ChargeResult.LeaseLost:
                    control.LoseLease();
                    return false;
                default:
                    output.Add("goblin", result == ChargeResult.JobBudgetExhausted
                        ? "[goblin] stopping: the next interval would pass the job's max_total_usd"
                        : "[goblin] stopping: the next interval would pass the monthly budget");
                    control.Stop(StopReason.BudgetExhausted);
                    return false;
            }
        }

        public async Task<string?> RunStatusAsync()
        {
            try
            {
                return (await runner._registry.GetRunAsync(run.RunId, CancellationToken.None)).Status;
            }
            catch (RegistryException)
            {
                return null;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} attempt {Attempt} ended {State}: {Message}")]
    private static partial void LogFinished(ILogger logger, Guid jobId, int attempt, string state, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} attempt {Attempt} lost its lease; its outcome is not recorded (a newer attempt owns the job).")]
    private static partial void LogLeaseLost(ILogger logger, Guid jobId, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} attempt {Attempt}: the database was lost ({Reason}); the attempt stops and its lease will expire.")]
    private static partial void LogDatabaseLost(ILogger logger, Guid jobId, int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The MLflow run {RunId} of a lost attempt of job {JobId} could not be ended: {Reason}")]
    private static partial void LogAbandonedRunNotEnded(ILogger logger, string runId, Guid jobId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A write about an attempt failed and is skipped: {Reason}")]
    private static partial void LogBookkeepingFailed(ILogger logger, string reason);
}
