using System.Globalization;
using System.Text.Json;
using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Search;
using GoblinAspire.ModelRegistry.Storage;

namespace GoblinAspire.ModelRegistry.Api;

public static class RunEndpoints
{
    public static IEndpointRouteBuilder MapRuns(this IEndpointRouteBuilder app)
    {
        foreach (var prefix in MlflowEndpoint.Prefixes)
        {
            var runs = app.MapGroup($"{prefix}/runs");
            runs.MapPost("/create", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var tags = Tags(args);
                var run = await Store(http).CreateRunAsync(
                    MlflowEndpoint.ExperimentId(args.String("experiment_id")),
                    args.String("user_id"),
                    args.Long("start_time"),
                    args.String("run_name") is { Length: > 0 } name ? Validation.Name(name, "run_name") : null,
                    tags,
                    ct);
                return w =>
                {
                    w.WritePropertyName("run");
                    MlflowJson.Run(w, run);
                };
            }));
            runs.MapGet("/get", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var run = await Store(http).GetRunAsync(RunId(args), ct);
                return w =>
                {
                    w.WritePropertyName("run");
                    MlflowJson.Run(w, run);
                };
            }));
            runs.MapPost("/update", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var info = await Store(http).UpdateRunAsync(RunId(args), args.String("status"), args.Long("end_time"), args.String("run_name") is { Length: > 0 } name ? Validation.Name(name, "run_name") : null, ct);
                return w =>
                {
                    w.WritePropertyName("run_info");
                    MlflowJson.RunInfo(w, info);
                };
            }));
            runs.MapPost("/delete", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).SetRunLifecycleAsync(RunId(args), LifecycleStages.Deleted, ct);
                return null;
            }));
            runs.MapPost("/restore", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).SetRunLifecycleAsync(RunId(args), LifecycleStages.Active, ct);
                return null;
            }));
            runs.MapPost("/log-metric", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var key = Validation.Key(args.Required("key"), "Metric");
                var value = args.Double("value") ?? throw MlflowException.Missing("value");
                var timestamp = args.Long("timestamp") ?? throw MlflowException.Missing("timestamp");
                await Store(http).LogBatchAsync(RunId(args), [new Metric(key, value, timestamp, args.Long("step") ?? 0)], [], [], ct);
                return null;
            }));
            runs.MapPost("/log-parameter", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var key = Validation.Key(args.Required("key"), "Param");
                var value = Validation.Value(args.String("value") ?? "", "Param", key, Validation.MaxParamValueLength);
                await Store(http).LogBatchAsync(RunId(args), [], [new KeyValue(key, value)], [], ct);
                return null;
            }));
            runs.MapPost("/set-tag", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var key = Validation.Key(args.Required("key"), "Tag");
                var value = Validation.Value(args.String("value") ?? "", "Tag", key, Validation.MaxTagValueLength);
                await Store(http).LogBatchAsync(RunId(args), [], [], [new KeyValue(key, value)], ct);
                return null;
            }));
            runs.MapPost("/delete-tag", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).DeleteRunTagAsync(RunId(args), args.Required("key"), ct);
                return null;
            }));
            runs.MapPost("/log-batch", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var metrics = args.Objects("metrics").Select(Metric).ToList();
                var parameters = MlflowArgs.KeyValues(args.Objects("params"), "Param", Validation.MaxParamValueLength).Select(p => new KeyValue(p.Key, p.Value)).ToList();
                var tags = MlflowArgs.KeyValues(args.Objects("tags"), "Tag", Validation.MaxTagValueLength).Select(t => new KeyValue(t.Key, t.Value)).ToList();
                await Store(http).LogBatchAsync(RunId(args), metrics, parameters, tags, ct);
                return null;
            }));
            var search = MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var experimentIds = args.Strings("experiment_ids").Select(id => MlflowEndpoint.ExperimentId(id, "experiment_ids")).ToList();
                if (experimentIds.Count == 0)
                {
                    throw MlflowException.Invalid("experiment_ids must contain at least one experiment id.");
                }

                var page = await Store(http).SearchRunsAsync(
                    experimentIds,
                    args.String("filter"),
                    MlflowEndpoint.View(args.String("run_view_type")),
                    PageToken.PageSize(args.Long("max_results"), TrackingStore.SearchDefaultPageSize, TrackingStore.SearchMaxPageSize),
                    args.Strings("order_by"),
                    args.String("page_token"),
                    ct);
                return w =>
                {
                    if (page.Items.Count > 0)
                    {
                        w.WriteStartArray("runs");
                        foreach (var run in page.Items)
                        {
                            MlflowJson.Run(w, run);
                        }

                        w.WriteEndArray();
                    }

                    if (page.NextPageToken is { } token)
                    {
                        w.WriteString("next_page_token", token);
                    }
                };
            });
            runs.MapPost("/search", search);
            runs.MapGet("/search", search);

            app.MapGet($"{prefix}/metrics/get-history", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var page = await Store(http).GetMetricHistoryAsync(
                    RunId(args),
                    args.Required("metric_key"),
                    PageToken.PageSize(args.Long("max_results"), TrackingStore.MetricHistoryMaxPageSize, TrackingStore.MetricHistoryMaxPageSize),
                    args.String("page_token"),
                    ct);
                return w =>
                {
                    w.WriteStartArray("metrics");
                    foreach (var metric in page.Items)
                    {
                        MlflowJson.Metric(w, metric);
                    }

                    w.WriteEndArray();
                    if (page.NextPageToken is { } token)
                    {
                        w.WriteString("next_page_token", token);
                    }
                };
            }));

            app.MapGet($"{prefix}/metrics/get-history-bulk-interval", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                // Checked in the order MLflow's handler checks them, with its messages.
                var runIds = args.Strings("run_ids");
                if (runIds.Count == 0)
                {
                    throw MlflowException.Missing("run_ids");
                }

                if (runIds.Count > TrackingStore.BulkIntervalMaxRuns)
                {
                    throw MlflowException.Invalid(
                        $"GetMetricHistoryBulkInterval request must specify at most {TrackingStore.BulkIntervalMaxRuns} run_ids. Received {runIds.Count} run_ids.{MlflowException.ApiDocsHint}");
                }

                var key = args.Required("metric_key");
                var startStep = IntLike(args, "start_step");
                var endStep = IntLike(args, "end_step");
                var maxResults = IntLike(args, "max_results") ?? TrackingStore.BulkIntervalMaxResults;
                if (maxResults is < 1 or > TrackingStore.BulkIntervalMaxResults)
                {
                    throw MlflowException.Invalid($"max_results must be between 1 and {TrackingStore.BulkIntervalMaxResults}.{MlflowException.ApiDocsHint}");
                }

                var metrics = await Store(http).GetMetricHistoryBulkIntervalAsync(runIds, key, startStep, endStep, (int)maxResults, ct);
                return w =>
                {
                    // Proto3 JSON leaves an empty list out, as MLflow's answer does.
                    if (metrics.Count == 0)
                    {
                        return;
                    }

                    w.WriteStartArray("metrics");
                    foreach (var metric in metrics)
                    {
                        MlflowJson.Metric(w, metric.Metric, metric.RunId);
                    }

                    w.WriteEndArray();
                };
            }));
        }

        return app;
    }

    /// <summary>
    /// An integer query field, refused as MLflow's handler refuses a value that is not one: the value JSON-quoted,
    /// then Python's type hint.
    /// </summary>
    private static long? IntLike(MlflowArgs args, string name)
    {
        var text = args.String(name);
        if (text is null)
        {
            return null;
        }

        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw MlflowException.Invalid($"Invalid value {MlflowJson.PythonJsonString(MlflowArgs.Shorten(text))} for parameter '{name}' supplied:  Hint: Value was of type 'str'.{MlflowException.ApiDocsHint}");
    }

    /// <summary><c>run_id</c>, or the older <c>run_uuid</c> that MLflow clients still send.</summary>
    private static string RunId(MlflowArgs args) =>
        args.String("run_id") is { Length: > 0 } id ? id : args.String("run_uuid") is { Length: > 0 } uuid ? uuid : throw MlflowException.Missing("run_id");

    private static List<KeyValue> Tags(MlflowArgs args) =>
        MlflowArgs.KeyValues(args.Objects("tags"), "Tag", Validation.MaxTagValueLength).Select(t => new KeyValue(t.Key, t.Value)).ToList();

    private static Metric Metric(JsonElement item)
    {
        var key = item.TryGetProperty("key", out var k) && k.ValueKind == JsonValueKind.String ? Validation.Key(k.GetString()!, "Metric") : throw MlflowException.Missing("metrics.key");
        var value = item.TryGetProperty("value", out var v) ? v.ValueKind switch
        {
            JsonValueKind.Number => v.GetDouble(),
            JsonValueKind.String when v.GetString() is "NaN" => double.NaN,
            JsonValueKind.String when v.GetString() is "Infinity" => double.PositiveInfinity,
            JsonValueKind.String when v.GetString() is "-Infinity" => double.NegativeInfinity,
            JsonValueKind.String when double.TryParse(v.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) => parsed,
            _ => throw MlflowException.Invalid($"Got invalid value for metric '{key}': it must be a number."),
        } : throw MlflowException.Missing("metrics.value");
        var timestamp = item.TryGetProperty("timestamp", out var t) && Integer(t) is { } ts ? ts : throw MlflowException.Missing("metrics.timestamp");
        var step = item.TryGetProperty("step", out var s) ? Integer(s) ?? throw MlflowException.Invalid($"Got invalid step for metric '{key}'.") : 0;
        return new Metric(key, value, timestamp, step);
    }

    private static long? Integer(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Number when element.TryGetInt64(out var n) => n,
        JsonValueKind.String when long.TryParse(element.GetString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) => n,
        _ => null,
    };

    private static TrackingStore Store(HttpContext http) => http.RequestServices.GetRequiredService<TrackingStore>();
}
