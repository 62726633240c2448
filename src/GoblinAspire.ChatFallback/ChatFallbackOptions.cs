using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ChatFallback;

public sealed class ChatFallbackOptions
{
    public const string SectionName = "ChatFallback";

    /// <summary>Generations that run at once. One per two cores is what a small CPU box sustains.</summary>
    [Range(1, 64)]
    public int MaxConcurrency { get; set; } = 1;

    /// <summary>Requests that may wait for a slot; beyond it the service answers 429.</summary>
    [Range(0, 10_000)]
    public int MaxQueueLength { get; set; } = 8;

    /// <summary>A local GGUF file: the model when no registered model is configured.</summary>
    public string? ModelPath { get; set; }

    /// <summary>The registered model whose production version is served, fetched from the ModelRegistry.</summary>
    [RegularExpression(@"^[^\s/][^\s]{0,255}$")]
    public string? RegisteredModel { get; set; }

    /// <summary>
    /// Other names the served model answers to, beside its own (the GGUF's <c>general.name</c>) and
    /// <see cref="RegisteredModel"/>. Any other model name is OpenAI's 404 <c>model_not_found</c>.
    /// </summary>
    public List<string> ModelAliases { get; set; } = [];

    /// <summary>The ModelRegistry's base address; service discovery resolves the default.</summary>
    [Required]
    public Uri RegistryUrl { get; set; } = new("http://modelregistry");

    /// <summary>A secret: the registry's bearer token, sent with every registry call. Unset: a registry without a token.</summary>
    public string? RegistryToken { get; set; }

    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan RegistryPollInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Where downloaded models are kept, by model and version.</summary>
    [Required]
    public string CacheDirectory { get; set; } = "data/models";

    /// <summary>chatml, zephyr, llama2, llama3 or smollm; empty = recognised from the model's own template.</summary>
    [RegularExpression("^(|chatml|zephyr|tinyllama|llama2|llama-2|llama3|llama-3|smollm)$")]
    public string? ChatTemplate { get; set; }

    [Range(16, 131_072)]
    public int ContextLength { get; set; } = 2048;

    /// <summary>Threads per generation; 0 = one per core.</summary>
    [Range(0, 256)]
    public int Threads { get; set; }

    [Range(1, 131_072)]
    public int DefaultMaxTokens { get; set; } = 256;

    [Range(1, 10_000_000)]
    public int MaxRequestBodyBytes { get; set; } = 1_000_000;

    /// <summary>An OpenAI-compatible endpoint answered from when no local model loads (the seeds' cloud fallback).</summary>
    public UpstreamOptions Upstream { get; set; } = new();

    public int EffectiveThreads => Threads == 0 ? Environment.ProcessorCount : Threads;
}

public sealed class UpstreamOptions
{
    /// <summary>Base URL up to <c>/v1</c>, e.g. <c>https://api.openai.com/v1</c>; empty = no upstream.</summary>
    public Uri? BaseUrl { get; set; }

    /// <summary>Sent as a bearer token; a secret.</summary>
    public string? ApiKey { get; set; }

    /// <summary>The upstream model requests are sent to.</summary>
    public string? Model { get; set; }
}

[OptionsValidator]
public sealed partial class ChatFallbackOptionsValidator : IValidateOptions<ChatFallbackOptions>;
