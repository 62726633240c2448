using System.Diagnostics.Metrics;

namespace GoblinAspire.TrainingWorker;

/// <summary>The worker's metrics, as Prometheus sees them: <c>training_jobs_finished_total{queue,state}</c>, <c>training_jobs_running</c>, <c>training_spend_usd_total</c>.</summary>
public sealed class TrainingMetrics
{
    public const string MeterName = "GoblinAspire.TrainingWorker";
    private readonly Counter<long> _finished;
    private readonly Counter<double> _spend;
    private int _running;

    public TrainingMetrics(IMeterFactory meters)
    {
        ArgumentNullException.ThrowIfNull(meters);
        var meter = meters.Create(MeterName);
        _finished = meter.CreateCounter<long>("training_jobs_finished_total", description: "Attempts recorded as ended, by the state the job moved to.");
        _spend = meter.CreateCounter<double>("training_spend_usd_total", description: "Money charged for rented machines.");
        meter.CreateObservableGauge("training_jobs_running", () => Volatile.Read(ref _running), description: "Attempts this worker is running.");
    }

    public void Finished(string queue, string state) =>
        _finished.Add(1, new KeyValuePair<string, object?>("queue", queue), new KeyValuePair<string, object?>("state", state));

    public void Spent(decimal usd) => _spend.Add((double)usd);

    public void AttemptStarted() => Interlocked.Increment(ref _running);

    public void AttemptEnded() => Interlocked.Decrement(ref _running);
}
