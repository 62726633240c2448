using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway;

public sealed class GatewayOptions
{
    public const string SectionName = "Gateway";

    /// <summary>Largest request body accepted; larger ones get 413 before any upstream call.</summary>
    [Range(1024, 256L * 1024 * 1024)]
    public long MaxRequestBodyBytes { get; set; } = 4L * 1024 * 1024;

    /// <summary>Largest non-streaming upstream response the gateway holds while it checks and translates it.</summary>
    [Range(1024, 1024L * 1024 * 1024)]
    public long MaxUpstreamResponseBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// The providers. appsettings.json lists the ChatFallback at index 0; others may be added under a name instead of an
    /// index (<c>Gateway__Providers__vllm__Kind</c>), as the AppHost does: the binder takes every child as an entry.
    /// </summary>
    public List<ProviderOptions> Providers { get; set; } = [];

    [ValidateObjectMembers]
    public RoutingOptions Routing { get; set; } = new();

    /// <summary>
    /// Prompt and completion text is never logged or traced unless this is set: it is the users' data.
    /// </summary>
    public bool CaptureMessageContent { get; set; }
}

public sealed class ProviderOptions
{
    public string Name { get; set; } = "";

    /// <summary><c>openai</c>, <c>ollama</c>, <c>runpod</c> or <c>anthropic</c>.</summary>
    public string Kind { get; set; } = ProviderKinds.OpenAi;

    /// <summary>
    /// Server root (<c>http://vllm</c>, <c>http://chatfallback</c>, <c>https://api.openai.com/v1</c>); a trailing
    /// <c>/v1</c> is accepted. Service-discovery names resolve through <c>services__{name}__http__0</c>.
    /// Defaults for runpod and anthropic are their public API hosts.
    /// </summary>
    public string? BaseUrl { get; set; }

    /// <summary>RunPod serverless endpoint id (kind <c>runpod</c>).</summary>
    public string? EndpointId { get; set; }

    /// <summary>A secret: give it through user secrets, environment or a Kubernetes secret, never appsettings.</summary>
    public string? ApiKey { get; set; }

    public List<ProviderModelOptions> Models { get; set; } = [];

    public decimal InputPricePer1K { get; set; }

    public decimal OutputPricePer1K { get; set; }

    public double Weight { get; set; } = 1;

    /// <summary>Lower goes first under the failover strategy.</summary>
    public int Priority { get; set; }

    /// <summary>The gateway's own limits for this provider, across replicas, to protect the upstream; null = none.</summary>
    public int? Rpm { get; set; }

    public int? Tpm { get; set; }

    /// <summary>Whole attempt, from sending the request to the last byte of the answer.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>From sending the request to the first answer byte (the first SSE event for streams).</summary>
    public TimeSpan FirstTokenTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public CircuitBreakerOptions CircuitBreaker { get; set; } = new();

    /// <summary>Probe the provider in the background; probes feed health and the latency estimate.</summary>
    public bool HealthProbe { get; set; } = true;

    /// <summary>
    /// The provider serves OpenAI's Responses API itself (vLLM, OpenAI): <c>/v1/responses</c> requests are passed
    /// through. Otherwise they are translated to chat completions and back.
    /// </summary>
    public bool NativeResponses { get; set; }
}

public sealed class ProviderModelOptions
{
    /// <summary>The model name clients ask for.</summary>
    public string Name { get; set; } = "";

    /// <summary>The name the provider knows it by; defaults to <see cref="Name"/>.</summary>
    public string? UpstreamModel { get; set; }

    /// <summary>
    /// Any of <c>chat</c>, <c>completions</c>, <c>embeddings</c>, <c>streaming</c>, <c>tools</c>. Unset means
    /// <see cref="ModelCapabilities.Default"/>. (A pre-filled list could not be narrowed: configuration binding
    /// appends to lists.)
    /// </summary>
    public List<string>? Capabilities { get; set; }

    public IReadOnlyList<string> EffectiveCapabilities => Capabilities is { Count: > 0 } configured ? configured : ModelCapabilities.Default;

    public int ContextLength { get; set; } = 8192;
}

public sealed class CircuitBreakerOptions
{
    public double FailureRatio { get; set; } = 0.5;

    public int MinimumThroughput { get; set; } = 5;

    public TimeSpan SamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(15);
}

public sealed class RoutingOptions
{
    /// <summary>One of <see cref="RoutingStrategies"/>.</summary>
    public string DefaultStrategy { get; set; } = RoutingStrategies.Failover;

    /// <summary>Strategy per client-facing model name.</summary>
    public Dictionary<string, string> Models { get; set; } = new(StringComparer.Ordinal);

    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan ProbeInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Weight of the newest observation in the latency moving average.</summary>
    [Range(0.01, 1.0)]
    public double LatencySmoothing { get; set; } = 0.3;

    /// <summary>Longest Retry-After honoured; a provider asking for more is skipped for this long.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan MaxCooldown { get; set; } = TimeSpan.FromMinutes(5);
}

public static class ProviderKinds
{
    public const string OpenAi = "openai";
    public const string Ollama = "ollama";
    public const string RunPod = "runpod";
    public const string Anthropic = "anthropic";

    public static IReadOnlyList<string> All { get; } = [OpenAi, Ollama, RunPod, Anthropic];
}

public static class ModelCapabilities
{
    public const string Chat = "chat";
    public const string Completions = "completions";
    public const string Embeddings = "embeddings";
    public const string Streaming = "streaming";
    public const string Tools = "tools";

    public static IReadOnlyList<string> All { get; } = [Chat, Completions, Embeddings, Streaming, Tools];

    /// <summary>What a chat model served by vLLM or llama.cpp offers.</summary>
    public static IReadOnlyList<string> Default { get; } = [Chat, Completions, Streaming, Tools];
}

public static class RoutingStrategies
{
    public const string LowestLatency = "lowest-latency";
    public const string LowestCost = "lowest-cost";
    public const string RoundRobin = "round-robin";
    public const string WeightedRandom = "weighted-random";
    public const string Failover = "failover";

    public static IReadOnlyList<string> All { get; } = [LowestLatency, LowestCost, RoundRobin, WeightedRandom, Failover];
}

[OptionsValidator]
public sealed partial class GatewayOptionsAttributeValidator : IValidateOptions<GatewayOptions>;

/// <summary>Rules across providers and fields, which attributes cannot say; every problem is reported at once.</summary>
public sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    private readonly GatewayOptionsAttributeValidator _attributes = new();

    public ValidateOptionsResult Validate(string? name, GatewayOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var result = new ValidateOptionsResultBuilder();
        result.AddResult(_attributes.Validate(name, options));

        if (!RoutingStrategies.All.Contains(options.Routing.DefaultStrategy))
        {
            result.AddError($"unknown strategy '{options.Routing.DefaultStrategy}'; use one of {string.Join(", ", RoutingStrategies.All)}.", "Gateway:Routing:DefaultStrategy");
        }

        foreach (var (model, strategy) in options.Routing.Models)
        {
            if (!RoutingStrategies.All.Contains(strategy))
            {
                result.AddError($"unknown strategy '{strategy}'.", $"Gateway:Routing:Models:{model}");
            }
        }

        if (options.Providers.Count == 0)
        {
            result.AddError("no provider is configured; list at least one (appsettings.json lists the ChatFallback).", "Gateway:Providers");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Providers.Count; i++)
        {
            var provider = options.Providers[i];
            var at = $"Gateway:Providers:{i}";
            if (string.IsNullOrWhiteSpace(provider.Name))
            {
                result.AddError("a provider needs a Name.", $"{at}:Name");
            }
            else if (!names.Add(provider.Name))
            {
                result.AddError($"provider name '{provider.Name}' is used twice.", $"{at}:Name");
            }

            if (!ProviderKinds.All.Contains(provider.Kind))
            {
                result.AddError($"unknown kind '{provider.Kind}'; use one of {string.Join(", ", ProviderKinds.All)}.", $"{at}:Kind");
            }

            if (provider.BaseUrl is not null && !Uri.TryCreate(provider.BaseUrl, UriKind.Absolute, out _))
            {
                result.AddError($"BaseUrl '{provider.BaseUrl}' is not an absolute URL.", $"{at}:BaseUrl");
            }
            else if (provider.BaseUrl is null && provider.Kind is ProviderKinds.OpenAi or ProviderKinds.Ollama)
            {
                result.AddError("BaseUrl is required for this kind.", $"{at}:BaseUrl");
            }

            if (provider.Kind == ProviderKinds.RunPod && string.IsNullOrWhiteSpace(provider.EndpointId))
            {
                result.AddError("EndpointId is required for a runpod provider.", $"{at}:EndpointId");
            }

            if (provider.Models.Count == 0)
            {
                result.AddError("a provider must serve at least one model.", $"{at}:Models");
            }

            for (var m = 0; m < provider.Models.Count; m++)
            {
                var model = provider.Models[m];
                if (string.IsNullOrWhiteSpace(model.Name))
                {
                    result.AddError("a model needs a Name.", $"{at}:Models:{m}:Name");
                }

                foreach (var capability in model.EffectiveCapabilities.Where(c => !ModelCapabilities.All.Contains(c)))
                {
                    result.AddError($"unknown capability '{capability}'.", $"{at}:Models:{m}:Capabilities");
                }

                if (provider.Kind == ProviderKinds.Anthropic && model.EffectiveCapabilities.Any(c => c is ModelCapabilities.Completions or ModelCapabilities.Embeddings))
                {
                    result.AddError("the Messages API serves chat only: remove completions and embeddings.", $"{at}:Models:{m}:Capabilities");
                }

                if (model.ContextLength <= 0)
                {
                    result.AddError("ContextLength must be positive.", $"{at}:Models:{m}:ContextLength");
                }
            }

            if (provider.NativeResponses && provider.Kind is not (ProviderKinds.OpenAi or ProviderKinds.RunPod))
            {
                result.AddError("NativeResponses is for OpenAI-compatible providers (kinds openai and runpod); this kind gets Responses requests translated to its own API.", $"{at}:NativeResponses");
            }

            if (provider.Rpm is < 1 || provider.Tpm is < 1)
            {
                result.AddError("Rpm and Tpm must be positive when set.", at);
            }

            if (provider.Weight is < 0 or > 1_000_000 || provider.InputPricePer1K < 0 || provider.OutputPricePer1K < 0)
            {
                result.AddError("Weight and prices must not be negative.", at);
            }

            if (provider.Timeout <= TimeSpan.Zero || provider.FirstTokenTimeout <= TimeSpan.Zero)
            {
                result.AddError("Timeout and FirstTokenTimeout must be positive.", at);
            }

            var breaker = provider.CircuitBreaker;
            if (breaker.FailureRatio is <= 0 or > 1 || breaker.MinimumThroughput < 2 || breaker.SamplingDuration < TimeSpan.FromMilliseconds(500) || breaker.BreakDuration < TimeSpan.FromMilliseconds(500))
            {
                result.AddError("CircuitBreaker needs FailureRatio in (0, 1], MinimumThroughput ≥ 2, SamplingDuration and BreakDuration ≥ 0.5 s (Polly's limits).", $"{at}:CircuitBreaker");
            }
        }

        return result.Build();
    }
}
