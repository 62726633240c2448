using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace GoblinAspire.TrainingWorker;

public sealed class TrainingWorkerOptions
{
    public const string SectionName = "TrainingWorker";

    /// <summary>How long a claimed job stays ours without a heartbeat before the rescuer may re-queue it.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    [Range(typeof(TimeSpan), "00:00:00.100", "00:30:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Jobs of one queue that may run at once on this worker (the seeds' numbers).</summary>
    public Dictionary<string, int> QueueConcurrency { get; set; } = new(StringComparer.Ordinal)
    {
        ["high_priority"] = 2,
        ["default"] = 4,
        ["low_priority"] = 2,
        ["training"] = 2,
        ["inference"] = 4,
    };
}

[OptionsValidator]
public sealed partial class TrainingWorkerOptionsAttributeValidator : IValidateOptions<TrainingWorkerOptions>;

/// <summary>The rules that span fields, which attributes cannot say.</summary>
public sealed class TrainingWorkerOptionsValidator : IValidateOptions<TrainingWorkerOptions>
{
    private static readonly HashSet<string> KnownQueues = ["high_priority", "default", "low_priority", "training", "inference"];
    private readonly TrainingWorkerOptionsAttributeValidator _attributes = new();

    public ValidateOptionsResult Validate(string? name, TrainingWorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = new ValidateOptionsResultBuilder();
        builder.AddResult(_attributes.Validate(name, options));
        if (options.HeartbeatInterval >= options.LeaseDuration)
        {
            builder.AddError($"HeartbeatInterval ({options.HeartbeatInterval}) must be shorter than LeaseDuration ({options.LeaseDuration}).", "TrainingWorker:HeartbeatInterval");
        }

        foreach (var (queue, concurrency) in options.QueueConcurrency)
        {
            if (!KnownQueues.Contains(queue))
            {
                builder.AddError($"unknown queue '{queue}'; queues are {string.Join(", ", KnownQueues)}.", $"TrainingWorker:QueueConcurrency:{queue}");
            }
            else if (concurrency is < 0 or > 256)
            {
                builder.AddError($"concurrency {concurrency} is outside 0..256.", $"TrainingWorker:QueueConcurrency:{queue}");
            }
        }

        return builder.Build();
    }
}
