using System.Collections.Frozen;
using GoblinAspire.Gateway.Protocols;
using Microsoft.Extensions.Options;
using Polly;
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

    public static string PipelineKey(string provider) => $"gateway-provider:{provider}";
}

/// <summary>
/// The health of every provider, by name. One per gateway instance: the resilience pipelines' circuit callbacks
/// (built by the pipeline registry) and the catalog both reach it through DI.
/// </summary>
public sealed class ProviderHealthBoard(IOptions<GatewayOptions> options, TimeProvider time)
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, ProviderHealth> _health = new(StringComparer.Ordinal);

    public ProviderHealth For(string provider) =>
        _health.GetOrAdd(provider, name => new ProviderHealth(name, options.Value.Routing.LatencySmoothing, time));
}
