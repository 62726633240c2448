using Microsoft.Extensions.Options;

namespace GoblinAspire.TrainingWorker.Execution;

/// <summary>A machine (or serverless request) a provider offers, at its real price.</summary>
public sealed record Offer(string Id, decimal PricePerHour, bool Interruptible, string Description);

public enum MachinePhase
{
    Starting,
    Running,

    /// <summary>The container ended on its own; the job's MLflow run says how.</summary>
    Exited,

    /// <summary>The provider knows the outcome itself (serverless requests).</summary>
    Finished,

    /// <summary>Taken away: preempted, outbid, host lost.</summary>
    Gone,
}

public sealed record MachineStatus(MachinePhase Phase, string Detail)
{
    public ExecutionOutcome? Outcome { get; init; }

    /// <summary>The price the provider reports for the running machine, when it does; spend accrues from it.</summary>
    public decimal? PricePerHour { get; init; }
}

/// <summary>A provider refused or failed a call; transient failures are lost capacity, the others a refused attempt.</summary>
public sealed class ProviderException(string message, bool transient) : Exception(message)
{
    public bool Transient { get; } = transient;

    /// <summary>A machine may exist that could not be destroyed: the job must keep naming it for the rescuer.</summary>
    public bool MachineMayRemain { get; init; }
}

/// <summary>
/// The life of a rented machine, the same for every provider: choose an offer under the price cap, charge the first
/// interval before launching (so a spent budget launches nothing), create, poll, charge each interval ahead from the
/// machine's real price, and destroy it at every end — success, failure, cancel, timeout, preemption or lost lease.
/// </summary>
public abstract class RentedMachineExecutor(IOptions<TrainingWorkerOptions> options, TimeProvider time) : IJobExecutor
{
    public abstract string Name { get; }

    public abstract IReadOnlyList<string> InstanceKinds { get; }

    protected TrainingWorkerOptions Settings => options.Value;

    protected TimeProvider Time => time;

    protected abstract TimeSpan PollInterval { get; }

    /// <returns>The cheapest acceptable offer, or null when none is under the cap.</returns>
    protected abstract Task<Offer?> ChooseAsync(ExecutionRequest request, CancellationToken cancellationToken);

    /// <summary>Creates the machine; when creation fails but a machine was made anyway, destroys it before throwing.</summary>
    protected abstract Task<InstanceRecord> CreateAsync(ExecutionRequest request, Offer offer, CancellationToken cancellationToken);

    protected abstract Task<MachineStatus> PollAsync(InstanceRecord instance, CancellationToken cancellationToken);

    /// <summary>
    /// What to record before the create call: a machine known only by its label, so that if this worker dies
    /// mid-create, whoever takes over finds and destroys it.
    /// </summary>
    protected abstract InstanceRecord Pending(ExecutionRequest request);

    /// <summary>Destroys the machine (one recorded by <see cref="Pending"/> is found by its label); one already gone is fine.</summary>
    protected abstract Task DestroyAsync(InstanceRecord instance, CancellationToken cancellationToken);

    public Task CleanupAsync(InstanceRecord instance, CancellationToken cancellationToken) => DestroyAsync(instance, cancellationToken);

    public async Task<ExecutionOutcome> RunAsync(ExecutionRequest request, IAttemptReporter reporter, AttemptControl control)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(reporter);
        ArgumentNullException.ThrowIfNull(control);
        Offer? offer;
        try
        {
            offer = await ChooseAsync(request, control.Stopping);
        }
        catch (ProviderException ex)
        {
            return ex.Transient ? ExecutionOutcome.LostCapacity(ex.Message) : ExecutionOutcome.Refused(ex.Message);
        }

        if (offer is null)
        {
            return ExecutionOutcome.LostCapacity($"no {Name} offer at or under {request.MaxUsdPerHour} $/h matches the job's resources");
        }

        if (offer.PricePerHour > request.MaxUsdPerHour)
        {
            return ExecutionOutcome.Refused($"{Name} offered {offer.PricePerHour} $/h, over the cap of {request.MaxUsdPerHour} $/h; nothing was launched");
        }

        var interval = Settings.SpendInterval;
        if (!await reporter.ChargeAsync(Charge(offer.PricePerHour, interval)))
        {
            return ExecutionOutcome.Stopped("the budget does not cover the first interval; nothing was launched");
        }

        await reporter.ProvisionedAsync(Pending(request), $"creating a {Name} machine labelled {request.Label}");
        InstanceRecord instance;
        try
        {
            // Not cancelled by a stop: an interrupted create can leave a machine nobody knows about. Bounded instead.
            using var createTimeout = new CancellationTokenSource(TimeSpan.FromMinutes(2), time);
            instance = await CreateAsync(request, offer, createTimeout.Token);
        }
        catch (ProviderException ex) when (!ex.MachineMayRemain)
        {
            return ex.Transient ? ExecutionOutcome.LostCapacity(ex.Message) : ExecutionOutcome.Refused(ex.Message);
        }

        try
        {
            await reporter.ProvisionedAsync(instance, $"{Name} {instance.Id}: {offer.Description} at {offer.PricePerHour} $/h");
            var running = false;
            var paidUntil = time.GetUtcNow() + interval;
            while (true)
            {
                try
                {
                    await Task.Delay(PollInterval, time, control.Stopping);
                }
                catch (OperationCanceledException)
                {
                    return ExecutionOutcome.Stopped($"stopped ({control.Reason}); {Name} {instance.Id} destroyed");
                }

                MachineStatus status;
                try
                {
                    status = await PollAsync(instance, control.Stopping);
                }
                catch (ProviderException ex) when (ex.Transient)
                {
                    reporter.Output("goblin", $"[goblin] polling {Name} failed, will retry: {ex.Message}");
                    continue;
                }
                catch (OperationCanceledException) when (control.Stopping.IsCancellationRequested)
                {
                    continue;
                }

                switch (status.Phase)
                {
                    case MachinePhase.Starting:
                        break;
                    case MachinePhase.Running:
                        if (!running)
                        {
                            running = true;
                            await reporter.RunningAsync($"{Name} {instance.Id} is running ({status.Detail})");
                        }

                        var price = status.PricePerHour ?? offer.PricePerHour;
                        while (time.GetUtcNow() >= paidUntil)
                        {
                            if (!await reporter.ChargeAsync(Charge(price, interval)))
                            {
                                return ExecutionOutcome.Stopped($"stopped before passing the budget; {Name} {instance.Id} destroyed");
                            }

                            paidUntil += interval;
                        }

                        break;
                    case MachinePhase.Finished:
                        return status.Outcome ?? ExecutionOutcome.Failed(status.Detail);
                    case MachinePhase.Exited:
                        return await reporter.RunStatusAsync() switch
                        {
                            "FINISHED" => ExecutionOutcome.Succeeded($"the container exited and its MLflow run FINISHED ({status.Detail})"),
                            "FAILED" => ExecutionOutcome.Failed($"the container exited and its MLflow run FAILED ({status.Detail})"),
                            _ when offer.Interruptible => ExecutionOutcome.LostCapacity($"the interruptible machine stopped before the job ended its MLflow run ({status.Detail})"),
                            _ => ExecutionOutcome.Failed($"the container exited without ending its MLflow run ({status.Detail})"),
                        };
                    default:
                        return ExecutionOutcome.LostCapacity($"{Name} {instance.Id} went away: {status.Detail}");
                }
            }
        }
        finally
        {
            await DestroyAsync(instance, CancellationToken.None);
        }
    }

    /// <summary>One interval at an hourly price, rounded up to the micro-dollar the ledger keeps.</summary>
    public static decimal Charge(decimal pricePerHour, TimeSpan interval) =>
        Math.Ceiling(pricePerHour * (decimal)interval.TotalHours * 1_000_000m) / 1_000_000m;
}
