using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using GoblinAspire.Gateway.Protocols;
using GoblinAspire.Gateway.Telemetry;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Registry;

namespace GoblinAspire.Gateway.Routing;

/// <summary>One configured provider at run time: its settings, wire protocol, health and resilience pipeline.</summary>
public sealed class Provider(ProviderOptions options, IProviderProtocol protocol, ProviderHealth health, ResiliencePipeline pipeline)
{
    public string Name => Options.Name;

    public ProviderOptions Options { get; } = options;

    public IProviderProtocol Protocol { get; } = protocol;

    public ProviderHealth Health { get; } = health;

    public ResiliencePipeline Pipeline { get; } = pipeline;
}

/// <summary>A model served by a provider: the unit routing chooses between.</summary>
public sealed class Deployment(Provider provider, ProviderModelOptions model)
{
    public Provider Provider { get; } = provider;

    public string Model { get; } = model.Name;

    public string UpstreamModel { get; } = string.IsNullOrEmpty(model.UpstreamModel) ? model.Name : model.UpstreamModel;

    public int ContextLength { get; } = model.ContextLength;

    public FrozenSet<string> Capabilities { get; } = model.EffectiveCapabilities.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Expected price of a request, from its prompt estimate and the tokens it may generate.</summary>
    public decimal ExpectedCost(int promptTokens, int completionTokens) =>
        (promptTokens * Provider.Options.InputPricePer1K / 1000m) + (completionTokens * Provider.Options.OutputPricePer1K / 1000m);
}

/// <summary>The configured providers and, per client-facing model name, the deployments that serve it.</summary>
public sealed class ProviderCatalog
{
    public ProviderCatalog(
        IOptions<GatewayOptions> options,
        ProviderProtocols protocols,
        ResiliencePipelineProvider<string> pipelines,
        ProviderHealthBoard healthBoard)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(protocols);
        ArgumentNullException.ThrowIfNull(pipelines);
        ArgumentNullException.ThrowIfNull(healthBoard);
        var gateway = options.Value;
        Providers = gateway.Providers
            .Select(p => new Provider(p, protocols.For(p.Kind), healthBoard.For(p.Name), pipelines.GetPipeline(PipelineKey(p.Name))))
            .ToList();
        ByModel = Providers
            .SelectMany(p => p.Options.Models.Select(m => new Deployment(p, m)))
            .GroupBy(d => d.Model, StringComparer.Ordinal)
            .ToFrozenDictionary(g => g.Key, g => (IReadOnlyList<Deployment>)[.. g], StringComparer.Ordinal);
    }

    public IReadOnlyList<Provider> Providers { get; }

    public FrozenDictionary<string, IReadOnlyList<Deployment>> ByModel { get; }

    /// <summary>The HTTP client every request to a provider (inference and probes) goes through.</summary>
    public const string UpstreamClientName = "gateway-upstream";

    public static string PipelineKey(string provider) => $"gateway-provider:{provider}";
}

/// <summary>
/// The health of every provider, by name. One per gateway instance: the resilience pipelines' circuit callbacks
/// (built by the pipeline registry) and the catalog both reach it through DI. It also publishes
/// <c>provider_circuit_state</c> (0 closed, 1 half-open, 2 open), read from the health it holds at scrape time.
/// </summary>
public sealed class ProviderHealthBoard
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, ProviderHealth> _health = new(StringComparer.Ordinal);
    private readonly double _smoothing;
    private readonly TimeProvider _time;

    public ProviderHealthBoard(IOptions<GatewayOptions> options, TimeProvider time, IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(meterFactory);
        _smoothing = options.Value.Routing.LatencySmoothing;
        _time = time;
        meterFactory.Create(GatewayMetrics.MeterName).CreateObservableGauge("provider_circuit_state", ObserveCircuits, description: "Circuit state per provider: 0 closed, 1 half-open, 2 open.");
    }

    public ProviderHealth For(string provider) =>
        _health.GetOrAdd(provider, name => new ProviderHealth(name, _smoothing, _time));

    private IEnumerable<Measurement<int>> ObserveCircuits()
    {
        foreach (var health in _health.Values)
        {
            var state = health.Circuit switch
            {
                CircuitState.Open or CircuitState.Isolated => 2,
                CircuitState.HalfOpen => 1,
                _ => 0,
            };
            yield return new Measurement<int>(state, new KeyValuePair<string, object?>("provider", health.Name));
        }
    }
}
