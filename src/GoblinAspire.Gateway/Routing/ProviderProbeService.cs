using System.Diagnostics;
using GoblinAspire.Gateway.Telemetry;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Routing;

/// <summary>
/// Probes every provider in the background with its cheapest request (model list, tags, endpoint health). A failing
/// probe moves the provider to the back of the routing order; a passing one feeds the latency estimate, so the
/// lowest-latency strategy knows providers no request has used yet.
/// </summary>
public sealed class ProviderProbeService(
    ProviderCatalog catalog,
    IHttpClientFactory httpClients,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<ProviderProbeService> logger) : BackgroundService
{
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(5);

    public async Task ProbeAllAsync(CancellationToken cancellationToken)
    {
        var client = httpClients.CreateClient(ProviderCatalog.UpstreamClientName);
        await Task.WhenAll(catalog.Providers.Where(p => p.Options.HealthProbe).Select(p => ProbeAsync(client, p, cancellationToken)));
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.Routing.ProbeInterval, time);
        do
        {
            await ProbeAllAsync(stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private async Task ProbeAsync(HttpClient client, Provider provider, CancellationToken cancellationToken)
    {
        using var request = provider.Protocol.CreateProbe(provider.Options);
        if (request is null)
        {
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ProbeTimeout);
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var healthy = (int)response.StatusCode < 500 && response.StatusCode != System.Net.HttpStatusCode.TooManyRequests;
            provider.Health.ObserveProbe(healthy, Stopwatch.GetElapsedTime(started), healthy ? null : $"probe: HTTP {(int)response.StatusCode}");
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            var error = ex is OperationCanceledException ? "probe: timed out" : "probe: could not connect";
            provider.Health.ObserveProbe(false, Stopwatch.GetElapsedTime(started), error);
            GatewayLog.ProbeFailed(logger, provider.Name, error);
        }
    }
}
