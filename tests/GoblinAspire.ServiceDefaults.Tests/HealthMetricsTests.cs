using System.Diagnostics.Metrics;
using GoblinAspire.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace GoblinAspire.ServiceDefaults.Tests;

public sealed class HealthMetricsTests
{
    [Fact]
    public async Task Each_check_s_latest_status_is_a_gauge_value()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var metrics = new HealthMetrics(services.GetRequiredService<IMeterFactory>());
        var report = new HealthReport(new Dictionary<string, HealthReportEntry>
        {
            ["redis"] = new(HealthStatus.Unhealthy, "down", TimeSpan.Zero, null, null),
            ["model"] = new(HealthStatus.Degraded, "no model", TimeSpan.Zero, null, null),
            ["self"] = new(HealthStatus.Healthy, null, TimeSpan.Zero, null, null),
        }, TimeSpan.Zero);
        await metrics.PublishAsync(report, CancellationToken.None);

        var seen = new Dictionary<string, double>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == HealthMetrics.MeterName && instrument.Name == "health_check_status")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, value, tags, _) => seen[(string)tags[0].Value!] = value);
        listener.Start();
        listener.RecordObservableInstruments();
        Assert.Equal(new Dictionary<string, double> { ["redis"] = 0, ["model"] = 0.5, ["self"] = 1 }, seen);
    }
}
