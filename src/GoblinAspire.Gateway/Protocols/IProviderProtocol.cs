using GoblinAspire.Gateway.OpenAi;

namespace GoblinAspire.Gateway.Protocols;

/// <summary>
/// How the gateway speaks to one kind of provider: the request it sends for an OpenAI-format request, and how it
/// turns the provider's answer back into OpenAI's format for the client.
/// </summary>
public interface IProviderProtocol
{
    /// <summary>The OpenTelemetry <c>gen_ai.system</c> value.</summary>
    string System { get; }

    /// <summary>The upstream request for <paramref name="request"/>, for a provider model that supports its operation.</summary>
    HttpRequestMessage CreateRequest(ProviderOptions provider, string upstreamModel, InferenceRequest request);

    /// <summary>A cheap request that tells whether the provider is up, or null if it has none.</summary>
    HttpRequestMessage? CreateProbe(ProviderOptions provider);

    /// <summary>Reads a successful answer and writes the client's. Commits before the first write.</summary>
    Task RelayAsync(HttpResponseMessage upstream, IClientAnswer relay, CancellationToken cancellationToken);

    /// <summary>Turns a 4xx answer (other than 429), which is the client's to see, into OpenAI's error format.</summary>
    Task RelayClientErrorAsync(HttpResponseMessage upstream, IClientAnswer relay, CancellationToken cancellationToken);
}

/// <summary>The protocols by provider kind.</summary>
public sealed class ProviderProtocols(OpenAiProtocol openAi, OllamaProtocol ollama, AnthropicProtocol anthropic, RunPodProtocol runPod)
{
    public IProviderProtocol For(string kind) => kind switch
    {
        ProviderKinds.OpenAi => openAi,
        ProviderKinds.Ollama => ollama,
        ProviderKinds.Anthropic => anthropic,
        ProviderKinds.RunPod => runPod,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown provider kind"),
    };
}
