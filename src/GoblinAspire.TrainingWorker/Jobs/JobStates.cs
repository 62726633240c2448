namespace GoblinAspire.TrainingWorker.Jobs;

/// <summary>
/// A job's life, after SkyPilot's managed jobs and River's job states:
/// <c>queued</c> → <c>provisioning</c> → <c>running</c> → <c>succeeded</c>; a crash of the job's own code goes to
/// <c>retrying</c> (back off, counts an attempt) or, with no attempts left, <c>dead</c>; a lost lease, preemption or
/// lost capacity goes to <c>recovering</c> (re-queued at once, counts nothing); <c>failed</c> is a failure retrying
/// cannot fix (budget spent, timeout with no attempts left aside, registration refused); <c>cancelled</c> on request.
/// </summary>
public static class JobStates
{
    public const string Queued = "queued";
    public const string Provisioning = "provisioning";
    public const string Running = "running";
    public const string Recovering = "recovering";
    public const string Retrying = "retrying";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
    public const string Dead = "dead";

    public static IReadOnlyList<string> All { get; } = [Queued, Provisioning, Running, Recovering, Retrying, Succeeded, Failed, Cancelled, Dead];

    public static bool IsTerminal(string state) => state is Succeeded or Failed or Cancelled or Dead;
}

public static class JobQueues
{
    /// <summary>Queues in claim order: a worker with free slots in several takes the earlier queue's jobs first.</summary>
    public static IReadOnlyList<string> ByRank { get; } = ["high_priority", "inference", "training", "default", "low_priority"];

    public const string Default = "default";
}

public static class Executors
{
    public const string Local = "local";
    public const string VastAi = "vastai";
    public const string RunPod = "runpod";

    public static IReadOnlyList<string> All { get; } = [Local, VastAi, RunPod];
}
