namespace GoblinAspire.ModelRegistry.Storage;

public sealed record KeyValue(string Key, string Value);

public sealed record Experiment(long Id, string Name, string ArtifactLocation, string LifecycleStage, long CreationTime, long LastUpdateTime, IReadOnlyList<KeyValue> Tags);

public sealed record RunInfo(string RunId, long ExperimentId, string RunName, string UserId, string Status, long StartTime, long? EndTime, string LifecycleStage, string ArtifactUri);

public sealed record Metric(string Key, double Value, long Timestamp, long Step);

/// <summary>A metric value with the run that logged it (MLflow's MetricWithRunId).</summary>
public sealed record RunMetric(string RunId, Metric Metric);

public sealed record Run(RunInfo Info, IReadOnlyList<Metric> Metrics, IReadOnlyList<KeyValue> Params, IReadOnlyList<KeyValue> Tags);

public sealed record ModelVersion(
    string Name,
    int Version,
    long CreationTimestamp,
    long LastUpdatedTimestamp,
    string? Description,
    string? UserId,
    string CurrentStage,
    string Source,
    string? RunId,
    string? RunLink,
    string Status,
    IReadOnlyList<KeyValue> Tags,
    IReadOnlyList<string> Aliases);

public sealed record ModelAlias(string Alias, int Version);

public sealed record RegisteredModel(
    string Name,
    long CreationTimestamp,
    long LastUpdatedTimestamp,
    string? Description,
    IReadOnlyList<ModelVersion> LatestVersions,
    IReadOnlyList<KeyValue> Tags,
    IReadOnlyList<ModelAlias> Aliases);

public sealed record Page<T>(IReadOnlyList<T> Items, string? NextPageToken);

public static class Page
{
    /// <summary>A page from a query that asked for one row more than the page size: that row says whether more exist.</summary>
    public static Page<T> Of<T>(List<T> items, int offset, int pageSize)
    {
        var hasMore = items.Count > pageSize;
        if (hasMore)
        {
            items.RemoveAt(items.Count - 1);
        }

        return new Page<T>(items, Search.PageToken.Next(offset, pageSize, hasMore));
    }
}

public static class LifecycleStages
{
    public const string Active = "active";
    public const string Deleted = "deleted";
}

/// <summary>MLflow's ViewType for searches.</summary>
public enum ViewType
{
    ActiveOnly,
    DeletedOnly,
    All,
}

public static class ModelStages
{
    public const string None = "None";
    public const string Staging = "Staging";
    public const string Production = "Production";
    public const string Archived = "Archived";

    public static IReadOnlyList<string> All { get; } = [None, Staging, Production, Archived];

    /// <summary>MLflow accepts stages in any case and answers with the canonical spelling.</summary>
    public static string Canonical(string? stage) =>
        All.FirstOrDefault(s => s.Equals(stage, StringComparison.OrdinalIgnoreCase))
        ?? throw Mlflow.MlflowException.Invalid($"Invalid Model Version stage: {stage}. Value must be one of {string.Join(", ", All)}.");
}
