using GoblinAspire.TrainingWorker.Queue;

namespace GoblinAspire.TrainingWorker.Execution;

/// <summary>Runs one attempt of a job somewhere: a local process, a rented Vast.ai instance, a RunPod pod or endpoint.</summary>
public interface IJobExecutor
{
    string Name { get; }

    /// <summary>The <see cref="InstanceRecord.Kind"/>s this executor can clean up.</summary>
    IReadOnlyList<string> InstanceKinds { get; }

    /// <summary>
    /// Runs the attempt to its end. Returns <see cref="ExecutionOutcome.Stopped"/> when <paramref name="control"/> stopped
    /// it; the executor destroys whatever it rented before returning, whatever happened.
    /// </summary>
    Task<ExecutionOutcome> RunAsync(ExecutionRequest request, IAttemptReporter reporter, AttemptControl control);

    /// <summary>Destroys a machine or process a lost attempt left behind (recorded by <see cref="IAttemptReporter.ProvisionedAsync"/>).</summary>
    Task CleanupAsync(InstanceRecord instance, CancellationToken cancellationToken);
}

/// <summary>The attempt to run, with the environment the worker injects already merged into <see cref="Environment"/>.</summary>
public sealed record ExecutionRequest(JobRecord Job, IReadOnlyDictionary<string, string> Environment)
{
    /// <summary>The claim's attempt number, the fencing token.</summary>
    public int Attempt => Job.Attempt;

    public string Label => $"goblin-{Job.Id:N}-{Attempt}";

    /// <summary>The lowest of the job's own cap and the platform's.</summary>
    public decimal MaxUsdPerHour { get; init; }
}

/// <summary>What an executor tells the worker while the attempt runs.</summary>
public interface IAttemptReporter
{
    /// <summary>Records the machine or process before anything else happens, so that it can be cleaned up if this worker dies.</summary>
    Task ProvisionedAsync(InstanceRecord instance, string message);

    Task RunningAsync(string message);

    void Output(string stream, string line);

    /// <summary>Charges one interval of a machine ahead of use; false means stop now, the budget would be passed.</summary>
    Task<bool> ChargeAsync(decimal usd);

    /// <summary>The attempt's MLflow run status (<c>RUNNING</c>, <c>FINISHED</c>, <c>FAILED</c>, <c>KILLED</c>), the job's own report of how it ended.</summary>
    Task<string?> RunStatusAsync();
}

/// <summary>Why an attempt is being stopped from outside.</summary>
public enum StopReason
{
    None,
    Cancelled,
    TimedOut,
    LeaseLost,
    WorkerStopping,
    BudgetExhausted,
}

/// <summary>The stop signal of one attempt, with its reason: a lost lease kills at once, a cancel stops gracefully.</summary>
public sealed class AttemptControl : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private ITimer? _deadline;
    private int _reason;

    public CancellationToken Stopping => _stop.Token;

    public StopReason Reason => (StopReason)Volatile.Read(ref _reason);

    /// <summary>Set once the lease is gone, whatever stopped the attempt first: from then on nothing may be recorded.</summary>
    public bool LeaseLost { get; private set; }

    public void LoseLease()
    {
        LeaseLost = true;
        Stop(StopReason.LeaseLost);
    }

    /// <summary>The first reason wins.</summary>
    public void Stop(StopReason reason)
    {
        if (Interlocked.CompareExchange(ref _reason, (int)reason, (int)StopReason.None) == (int)StopReason.None)
        {
            _stop.Cancel();
        }
    }

    public void StopAfter(TimeSpan delay, StopReason reason, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        _deadline = time.CreateTimer(_ => Stop(reason), null, delay, Timeout.InfiniteTimeSpan);
    }

    public void Dispose()
    {
        _deadline?.Dispose();
        _stop.Dispose();
    }
}

public enum OutcomeKind
{
    Succeeded,

    /// <summary>The job's own code failed: counts as an attempt.</summary>
    Failed,

    /// <summary>The capacity went away (preempted, outbid, host lost, no offer): does not count.</summary>
    LostCapacity,

    /// <summary>Stopped from outside; <see cref="AttemptControl.Reason"/> says why.</summary>
    Stopped,

    /// <summary>A failure no retry fixes (a price over the cap, a refused request).</summary>
    Refused,
}

public sealed record ExecutionOutcome(OutcomeKind Kind, string Message)
{
    public static ExecutionOutcome Succeeded(string message) => new(OutcomeKind.Succeeded, message);

    public static ExecutionOutcome Failed(string message) => new(OutcomeKind.Failed, message);

    public static ExecutionOutcome LostCapacity(string message) => new(OutcomeKind.LostCapacity, message);

    public static ExecutionOutcome Stopped(string message) => new(OutcomeKind.Stopped, message);

    public static ExecutionOutcome Refused(string message) => new(OutcomeKind.Refused, message);
}
