using GoblinAspire.TrainingWorker.Jobs;

namespace GoblinAspire.TrainingWorker.Queue;

/// <summary>A job as stored: its spec and where it stands.</summary>
public sealed record JobRecord(
    Guid Id,
    string Name,
    string Queue,
    int Priority,
    string Executor,
    JobSpec Spec,
    string? IdempotencyKey,
    string State,
    int Attempt,
    int Failures,
    int MaxAttempts,
    DateTimeOffset RunAfter,
    string? LeaseOwner,
    DateTimeOffset? LeaseExpiresAt,
    bool CancelRequested,
    decimal SpendUsd,
    string? Instance,
    string? ExperimentId,
    string? RunId,
    string? ModelVersion,
    string CheckpointUri,
    string? LastError,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    DateTimeOffset UpdatedAt);

/// <summary>
/// One attempt's hold on a job. <see cref="Attempt"/> is the fencing token: every write for this attempt names it, so a
/// worker that lost its lease (paused, partitioned, presumed dead) can never overwrite what a newer attempt wrote.
/// </summary>
public sealed record JobLease(Guid JobId, int Attempt, string Owner);

public sealed record JobEvent(long Id, DateTimeOffset At, int Attempt, string Kind, string Message);

public sealed record JobLogLine(long Seq, int Attempt, string Stream, string Line);

/// <summary>How an attempt ended, as the queue records it.</summary>
public sealed record AttemptResult(string State, string EventKind, string Message)
{
    /// <summary>Raises the count of attempts that count against <see cref="JobSpec.MaxAttempts"/>.</summary>
    public bool CountsAsFailure { get; init; }

    public TimeSpan RetryAfter { get; init; }

    public string? ModelVersion { get; init; }

    /// <summary>The executor returned, having destroyed what it ran on: the job no longer names a machine.</summary>
    public bool ReleasesInstance { get; init; }
}

public enum ChargeResult
{
    Charged,
    JobBudgetExhausted,
    MonthlyBudgetExhausted,
    LeaseLost,
}
