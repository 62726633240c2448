using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Search;
using GoblinAspire.ModelRegistry.Storage;

namespace GoblinAspire.ModelRegistry.Api;

public static class ExperimentEndpoints
{
    public static IEndpointRouteBuilder MapExperiments(this IEndpointRouteBuilder app)
    {
        foreach (var prefix in MlflowEndpoint.Prefixes)
        {
            var group = app.MapGroup($"{prefix}/experiments");
            group.MapPost("/create", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var name = Validation.Name(args.String("name"), "name");
                var tags = MlflowArgs.KeyValues(args.Objects("tags"), "Tag", Validation.MaxTagValueLength).Select(t => new KeyValue(t.Key, t.Value)).ToList();
                var id = await Store(http).CreateExperimentAsync(name, args.String("artifact_location"), tags, ct);
                return w => w.WriteString("experiment_id", TrackingStore.Id(id));
            }));
            group.MapGet("/get", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var experiment = await Store(http).GetExperimentAsync(MlflowEndpoint.ExperimentId(args.String("experiment_id")), ct);
                return w =>
                {
                    w.WritePropertyName("experiment");
                    MlflowJson.Experiment(w, experiment);
                };
            }));
            group.MapGet("/get-by-name", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var experiment = await Store(http).GetExperimentByNameAsync(args.Required("experiment_name"), ct);
                return w =>
                {
                    w.WritePropertyName("experiment");
                    MlflowJson.Experiment(w, experiment);
                };
            }));
            var search = MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var page = await Store(http).SearchExperimentsAsync(
                    MlflowEndpoint.View(args.String("view_type")),
                    args.String("filter"),
                    args.Strings("order_by"),
                    PageToken.PageSize(args.Long("max_results"), TrackingStore.SearchDefaultPageSize, TrackingStore.SearchMaxPageSize),
                    args.String("page_token"),
                    ct);
                return w =>
                {
                    w.WriteStartArray("experiments");
                    foreach (var experiment in page.Items)
                    {
                        MlflowJson.Experiment(w, experiment);
                    }

                    w.WriteEndArray();
                    if (page.NextPageToken is { } token)
                    {
                        w.WriteString("next_page_token", token);
                    }
                };
            });
            group.MapPost("/search", search);
            group.MapGet("/search", search);
            group.MapPost("/update", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).RenameExperimentAsync(MlflowEndpoint.ExperimentId(args.String("experiment_id")), Validation.Name(args.String("new_name"), "new_name"), ct);
                return null;
            }));
            group.MapPost("/delete", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).SetExperimentLifecycleAsync(MlflowEndpoint.ExperimentId(args.String("experiment_id")), LifecycleStages.Deleted, ct);
                return null;
            }));
            group.MapPost("/restore", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).SetExperimentLifecycleAsync(MlflowEndpoint.ExperimentId(args.String("experiment_id")), LifecycleStages.Active, ct);
                return null;
            }));
            group.MapPost("/set-experiment-tag", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var key = Validation.Key(args.Required("key"), "Tag");
                var value = Validation.Value(args.String("value") ?? "", "Tag", key, Validation.MaxTagValueLength);
                await Store(http).SetExperimentTagAsync(MlflowEndpoint.ExperimentId(args.String("experiment_id")), new KeyValue(key, value), ct);
                return null;
            }));
            group.MapPost("/delete-experiment-tag", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).DeleteExperimentTagAsync(MlflowEndpoint.ExperimentId(args.String("experiment_id")), args.Required("key"), ct);
                return null;
            }));
        }

        return app;
    }

    private static TrackingStore Store(HttpContext http) => http.RequestServices.GetRequiredService<TrackingStore>();
}
