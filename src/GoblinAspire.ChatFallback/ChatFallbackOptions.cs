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
}

[OptionsValidator]
public sealed partial class ChatFallbackOptionsValidator : IValidateOptions<ChatFallbackOptions>;
