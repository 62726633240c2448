using System.Text.Json.Serialization;

namespace GoblinAspire.TrainingWorker.Jobs;

/// <summary>What a client submits: everything needed to run, pay for and register one training job.</summary>
public sealed class JobSpec
{
    public string? Name { get; set; }

    public string? Queue { get; set; }

    public int Priority { get; set; }

    public string? Executor { get; set; }

    /// <summary>The container image for remote executors; local jobs run <see cref="Command"/> on the worker's machine.</summary>
    public string? Image { get; set; }

    /// <summary>An argv array, never a shell string: no shell ever parses it.</summary>
    public List<string>? Command { get; set; }

    public Dictionary<string, string>? Env { get; set; }

    public JobResources? Resources { get; set; }

    [JsonPropertyName("max_usd_per_hour")]
    public decimal? MaxUsdPerHour { get; set; }

    [JsonPropertyName("max_total_usd")]
    public decimal? MaxTotalUsd { get; set; }

    [JsonPropertyName("checkpoint_interval_seconds")]
    public int? CheckpointIntervalSeconds { get; set; }

    [JsonPropertyName("max_attempts")]
    public int? MaxAttempts { get; set; }

    [JsonPropertyName("timeout_seconds")]
    public int? TimeoutSeconds { get; set; }

    [JsonPropertyName("idempotency_key")]
    public string? IdempotencyKey { get; set; }

    /// <summary>The MLflow experiment every attempt's run goes to (default: the job's name).</summary>
    public string? Experiment { get; set; }

    [JsonPropertyName("registered_model")]
    public string? RegisteredModel { get; set; }

    /// <summary>The run artifact registered as the model version on success (a file or folder under the run's artifacts).</summary>
    [JsonPropertyName("output_artifact")]
    public string? OutputArtifact { get; set; }

    /// <summary>Moves the new version to this stage (<c>Staging</c> or <c>Production</c>) once registered.</summary>
    [JsonPropertyName("register_stage")]
    public string? RegisterStage { get; set; }

    [JsonIgnore]
    public TimeSpan CheckpointInterval => TimeSpan.FromSeconds(CheckpointIntervalSeconds ?? 900);

    [JsonIgnore]
    public TimeSpan Timeout => TimeSpan.FromSeconds(TimeoutSeconds ?? 24 * 3600);
}

public sealed class JobResources
{
    [JsonPropertyName("gpu_types")]
    public List<string>? GpuTypes { get; set; }

    [JsonPropertyName("gpu_count")]
    public int? GpuCount { get; set; }

    [JsonPropertyName("disk_gb")]
    public int? DiskGb { get; set; }

    /// <summary>Spot/bid capacity: cheaper, and may be taken away (a preemption, which does not count as an attempt).</summary>
    public bool? Interruptible { get; set; }

    /// <summary>For <c>runpod</c>: run on this serverless endpoint instead of a pod.</summary>
    [JsonPropertyName("serverless_endpoint")]
    public string? ServerlessEndpoint { get; set; }

    [JsonPropertyName("min_reliability")]
    public double? MinReliability { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(JobSpec))]
public sealed partial class JobSpecJson : JsonSerializerContext;
