using System.Text.Json;
using GoblinAspire.ModelRegistry.Storage;

namespace GoblinAspire.ModelRegistry.Mlflow;

/// <summary>
/// MLflow's JSON shapes (proto3 JSON as its server writes it): snake_case names, int64 as numbers, ids and model
/// version numbers as strings, enums by name, unset fields left out, non-finite doubles as strings.
/// </summary>
public static class MlflowJson
{
    public static void Experiment(Utf8JsonWriter writer, Experiment experiment)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(experiment);
        writer.WriteStartObject();
        writer.WriteString("experiment_id", TrackingStore.Id(experiment.Id));
        writer.WriteString("name", experiment.Name);
        writer.WriteString("artifact_location", experiment.ArtifactLocation);
        writer.WriteString("lifecycle_stage", experiment.LifecycleStage);
        writer.WriteNumber("last_update_time", experiment.LastUpdateTime);
        writer.WriteNumber("creation_time", experiment.CreationTime);
        Tags(writer, "tags", experiment.Tags);
        writer.WriteEndObject();
    }

    public static void Run(Utf8JsonWriter writer, Run run)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(run);
        writer.WriteStartObject();
        writer.WritePropertyName("info");
        RunInfo(writer, run.Info);
        writer.WriteStartObject("data");
        if (run.Metrics.Count > 0)
        {
            writer.WriteStartArray("metrics");
            foreach (var metric in run.Metrics)
            {
                Metric(writer, metric);
            }

            writer.WriteEndArray();
        }

        Tags(writer, "params", run.Params);
        Tags(writer, "tags", run.Tags);
        writer.WriteEndObject();
        writer.WriteStartObject("inputs");
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    public static void RunInfo(Utf8JsonWriter writer, RunInfo info)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(info);
        writer.WriteStartObject();
        writer.WriteString("run_id", info.RunId);
        writer.WriteString("run_uuid", info.RunId);
        writer.WriteString("run_name", info.RunName);
        writer.WriteString("experiment_id", TrackingStore.Id(info.ExperimentId));
        writer.WriteString("user_id", info.UserId);
        writer.WriteString("status", info.Status);
        writer.WriteNumber("start_time", info.StartTime);
        if (info.EndTime is { } end)
        {
            writer.WriteNumber("end_time", end);
        }

        writer.WriteString("artifact_uri", info.ArtifactUri);
        writer.WriteString("lifecycle_stage", info.LifecycleStage);
        writer.WriteEndObject();
    }

    /// <param name="runId">Set for MLflow's MetricWithRunId (bulk history), whose last field is the run.</param>
    public static void Metric(Utf8JsonWriter writer, Metric metric, string? runId = null)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(metric);
        writer.WriteStartObject();
        writer.WriteString("key", metric.Key);
        if (double.IsFinite(metric.Value))
        {
            writer.WriteNumber("value", metric.Value);
        }
        else
        {
            writer.WriteString("value", double.IsNaN(metric.Value) ? "NaN" : metric.Value > 0 ? "Infinity" : "-Infinity");
        }

        writer.WriteNumber("timestamp", metric.Timestamp);
        writer.WriteNumber("step", metric.Step);
        if (runId is not null)
        {
            writer.WriteString("run_id", runId);
        }

        writer.WriteEndObject();
    }

    /// <summary>
    /// A string as Python's <c>json.dumps</c> writes it (MLflow quotes bad values so in its messages): in double
    /// quotes, with quotes, backslashes, control characters and everything beyond ASCII escaped.
    /// </summary>
    public static string PythonJsonString(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var quoted = new System.Text.StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
        {
            switch (c)
            {
                case '"':
                    quoted.Append("\\\"");
                    break;
                case '\\':
                    quoted.Append("\\\\");
                    break;
                case '\n':
                    quoted.Append("\\n");
                    break;
                case '\r':
                    quoted.Append("\\r");
                    break;
                case '\t':
                    quoted.Append("\\t");
                    break;
                case '\b':
                    quoted.Append("\\b");
                    break;
                case '\f':
                    quoted.Append("\\f");
                    break;
                case < ' ' or > '~':
                    quoted.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
                    break;
                default:
                    quoted.Append(c);
                    break;
            }
        }

        return quoted.Append('"').ToString();
    }

    public static void Model(Utf8JsonWriter writer, RegisteredModel model)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(model);
        writer.WriteStartObject();
        writer.WriteString("name", model.Name);
        writer.WriteNumber("creation_timestamp", model.CreationTimestamp);
        writer.WriteNumber("last_updated_timestamp", model.LastUpdatedTimestamp);
        if (model.Description is { } description)
        {
            writer.WriteString("description", description);
        }

        if (model.LatestVersions.Count > 0)
        {
            writer.WriteStartArray("latest_versions");
            foreach (var version in model.LatestVersions)
            {
                Version(writer, version);
            }

            writer.WriteEndArray();
        }

        Tags(writer, "tags", model.Tags);
        if (model.Aliases.Count > 0)
        {
            writer.WriteStartArray("aliases");
            foreach (var alias in model.Aliases)
            {
                writer.WriteStartObject();
                writer.WriteString("alias", alias.Alias);
                writer.WriteString("version", Versions.Format(alias.Version));
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }

    public static void Version(Utf8JsonWriter writer, ModelVersion version)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(version);
        writer.WriteStartObject();
        writer.WriteString("name", version.Name);
        writer.WriteString("version", Versions.Format(version.Version));
        writer.WriteNumber("creation_timestamp", version.CreationTimestamp);
        writer.WriteNumber("last_updated_timestamp", version.LastUpdatedTimestamp);
        if (version.UserId is { Length: > 0 } user)
        {
            writer.WriteString("user_id", user);
        }

        writer.WriteString("current_stage", version.CurrentStage);
        if (version.Description is { } description)
        {
            writer.WriteString("description", description);
        }

        writer.WriteString("source", version.Source);
        if (version.RunId is { Length: > 0 } run)
        {
            writer.WriteString("run_id", run);
        }

        if (version.RunLink is { Length: > 0 } link)
        {
            writer.WriteString("run_link", link);
        }

        writer.WriteString("status", version.Status);
        Tags(writer, "tags", version.Tags);
        if (version.Aliases.Count > 0)
        {
            writer.WriteStartArray("aliases");
            foreach (var alias in version.Aliases)
            {
                writer.WriteStringValue(alias);
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }

    private static void Tags(Utf8JsonWriter writer, string name, IReadOnlyList<KeyValue> tags)
    {
        if (tags.Count == 0)
        {
            return;
        }

        writer.WriteStartArray(name);
        foreach (var tag in tags)
        {
            writer.WriteStartObject();
            writer.WriteString("key", tag.Key);
            writer.WriteString("value", tag.Value);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }
}
