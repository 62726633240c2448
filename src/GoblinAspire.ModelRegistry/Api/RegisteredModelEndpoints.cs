using System.Text.Json;
using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Search;
using GoblinAspire.ModelRegistry.Storage;

namespace GoblinAspire.ModelRegistry.Api;

public static class RegisteredModelEndpoints
{
    public static IEndpointRouteBuilder MapRegisteredModels(this IEndpointRouteBuilder app)
    {
        foreach (var prefix in MlflowEndpoint.Prefixes)
        {
            var models = app.MapGroup($"{prefix}/registered-models");
            models.MapPost("/create", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var model = await Store(http).CreateModelAsync(Validation.Name(args.String("name"), "name"), Validation.Description(args.String("description")), Tags(args), ct);
                return w => WriteModel(w, model);
            }));
            models.MapGet("/get", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var model = await Store(http).GetModelAsync(args.Required("name"), ct);
                return w => WriteModel(w, model);
            }));
            models.MapPost("/rename", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var model = await Store(http).RenameModelAsync(args.Required("name"), Validation.Name(args.String("new_name"), "new_name"), ct);
                return w => WriteModel(w, model);
            }));
            models.MapPatch("/update", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var model = await Store(http).UpdateModelAsync(args.Required("name"), Validation.Description(args.String("description")), ct);
                return w => WriteModel(w, model);
            }));
            models.MapDelete("/delete", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).DeleteModelAsync(args.Required("name"), ct);
                return null;
            }));
            var search = MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var page = await Store(http).SearchModelsAsync(
                    args.String("filter"),
                    PageToken.PageSize(args.Long("max_results"), RegistryStore.ModelSearchDefaultPageSize, RegistryStore.ModelSearchMaxPageSize),
                    args.Strings("order_by"),
                    args.String("page_token"),
                    ct);
                return w =>
                {
                    w.WriteStartArray("registered_models");
                    foreach (var model in page.Items)
                    {
                        MlflowJson.Model(w, model);
                    }

                    w.WriteEndArray();
                    if (page.NextPageToken is { } token)
                    {
                        w.WriteString("next_page_token", token);
                    }
                };
            });
            models.MapGet("/search", search);
            models.MapPost("/search", search);
            var latest = MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var versions = await Store(http).GetLatestVersionsAsync(args.Required("name"), args.Strings("stages"), ct);
                return w => WriteVersions(w, "model_versions", versions);
            });
            models.MapPost("/get-latest-versions", latest);
            models.MapGet("/get-latest-versions", latest);
            models.MapPost("/set-tag", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var key = Validation.Key(args.Required("key"), "Tag");
                await Store(http).SetModelTagAsync(args.Required("name"), new KeyValue(key, Validation.Value(args.String("value") ?? "", "Tag", key, Validation.MaxTagValueLength)), ct);
                return null;
            }));
            models.MapDelete("/delete-tag", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).DeleteModelTagAsync(args.Required("name"), args.Required("key"), ct);
                return null;
            }));
            models.MapPost("/alias", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).SetAliasAsync(args.Required("name"), Validation.Alias(args.String("alias")), Versions.Parse(args.String("version")), MlflowEndpoint.Actor(http), ct);
                return null;
            }));
            models.MapDelete("/alias", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).DeleteAliasAsync(args.Required("name"), args.Required("alias"), MlflowEndpoint.Actor(http), ct);
                return null;
            }));
            models.MapGet("/alias", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var version = await Store(http).GetVersionByAliasAsync(args.Required("name"), args.Required("alias"), ct);
                return w =>
                {
                    w.WritePropertyName("model_version");
                    MlflowJson.Version(w, version);
                };
            }));
        }

        return app;
    }

    internal static List<KeyValue> Tags(MlflowArgs args) =>
        MlflowArgs.KeyValues(args.Objects("tags"), "Tag", Validation.MaxTagValueLength).Select(t => new KeyValue(t.Key, t.Value)).ToList();

    internal static void WriteVersions(Utf8JsonWriter writer, string property, IReadOnlyList<ModelVersion> versions)
    {
        writer.WriteStartArray(property);
        foreach (var version in versions)
        {
            MlflowJson.Version(writer, version);
        }

        writer.WriteEndArray();
    }

    private static void WriteModel(Utf8JsonWriter writer, RegisteredModel model)
    {
        writer.WritePropertyName("registered_model");
        MlflowJson.Model(writer, model);
    }

    private static RegistryStore Store(HttpContext http) => http.RequestServices.GetRequiredService<RegistryStore>();
}
