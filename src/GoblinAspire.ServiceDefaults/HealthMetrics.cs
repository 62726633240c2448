using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace GoblinAspire.ServiceDefaults;

/// <summary>
/// Every health check's latest result as the gauge <c>health_check_status{check}</c> (1 healthy, 0.5 degraded,
/// 0 unhealthy), so Prometheus can alert on what <c>/health</c> says: Redis or PostgreSQL away, ChatFallback without
/// a model. The health-check publisher runs the checks in the background; scraping does not run them.
/// </summary>
public sealed class HealthMetrics : IHealthCheckPublisher, IDisposable
{
    public const string MeterName = "GoblinAspire.Health";
    private readonly ConcurrentDictionary<string, double> _status = new(StringComparer.Ordinal);
    private readonly Meter _meter;

    public HealthMetrics(IMeterFactory meters)
    {
        ArgumentNullException.ThrowIfNull(meters);
        _meter = meters.Create(MeterName);
        _meter.CreateObservableGauge("health_check_status", Observe, description: "Latest result of each health check: 1 healthy, 0.5 degraded, 0 unhealthy.");
    }

    public Task PublishAsync(HealthReport report, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(report);
        foreach (var (name, entry) in report.Entries)
        {
            _status[name] = entry.Status switch
            {
                HealthStatus.Healthy => 1,
                HealthStatus.Degraded => 0.5,
                _ => 0,
            };
        }

        return Task.CompletedTask;
    }

    public void Dispose() => _meter.Dispose();

    private IEnumerable<Measurement<double>> Observe() =>
        _status.Select(s => new Measurement<double>(s.Value, new KeyValuePair<string, object?>("check", s.Key)));
}
