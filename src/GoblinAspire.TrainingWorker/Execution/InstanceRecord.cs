using System.Text.Json;
using System.Text.Json.Serialization;

namespace GoblinAspire.TrainingWorker.Execution;

/// <summary>
/// What an attempt runs on, stored with the job so that any worker can destroy it after the attempt's worker died:
/// a local process group (<c>local</c>), a Vast.ai instance (<c>vastai</c>), a RunPod pod (<c>runpod-pod</c>) or a
/// serverless request (<c>runpod-request</c>).
/// </summary>
public sealed record InstanceRecord
{
    public required string Kind { get; init; }

    public required string Id { get; init; }

    /// <summary>Local processes: the machine; Vast.ai: the label; RunPod requests: the endpoint.</summary>
    public string? Scope { get; init; }

    public Guid JobId { get; init; }

    public int Attempt { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, InstanceJson.Default.InstanceRecord);

    public static InstanceRecord FromJson(string json) => JsonSerializer.Deserialize(json, InstanceJson.Default.InstanceRecord)!;
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(InstanceRecord))]
internal sealed partial class InstanceJson : JsonSerializerContext;
