using GoblinAspire.ModelRegistry.Artifacts;
using System.Text.Json;
using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Search;
using GoblinAspire.ModelRegistry.Storage;

namespace GoblinAspire.ModelRegistry.Api;

public static class ModelVersionEndpoints
{
    public static IEndpointRouteBuilder MapModelVersions(this IEndpointRouteBuilder app)
    {
        foreach (var prefix in MlflowEndpoint.Prefixes)
        {
            var versions = app.MapGroup($"{prefix}/model-versions");
            versions.MapPost("/create", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var source = args.Required("source");
                if (source.Length > 4096 || source.Any(char.IsControl))
                {
                    throw MlflowException.Invalid("Invalid model version source: at most 4096 characters without control characters.");
                }

                var version = await Store(http).CreateVersionAsync(
                    args.Required("name"),
                    source,
                    args.String("run_id"),
                    args.String("run_link"),
                    Validation.Description(args.String("description")),
                    MlflowEndpoint.Actor(http),
                    RegisteredModelEndpoints.Tags(args),
                    ct);
                return w => WriteVersion(w, version);
            }));
            versions.MapGet("/get", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var version = await Store(http).GetVersionAsync(args.Required("name"), Versions.Parse(args.String("version")), ct);
                return w => WriteVersion(w, version);
            }));
            versions.MapPatch("/update", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var version = await Store(http).UpdateVersionAsync(args.Required("name"), Versions.Parse(args.String("version")), Validation.Description(args.String("description")), ct);
                return w => WriteVersion(w, version);
            }));
            versions.MapDelete("/delete", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).DeleteVersionAsync(args.Required("name"), Versions.Parse(args.String("version")), ct);
                return null;
            }));
            var search = MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var page = await Store(http).SearchVersionsAsync(
                    args.String("filter"),
                    PageToken.PageSize(args.Long("max_results"), RegistryStore.VersionSearchDefaultPageSize, RegistryStore.VersionSearchMaxPageSize),
                    args.Strings("order_by"),
                    args.String("page_token"),
                    ct);
                return w =>
                {
                    RegisteredModelEndpoints.WriteVersions(w, "model_versions", page.Items);
                    if (page.NextPageToken is { } token)
                    {
                        w.WriteString("next_page_token", token);
                    }
                };
            });
            versions.MapGet("/search", search);
            versions.MapPost("/search", search);
            versions.MapPost("/transition-stage", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var version = await Store(http).TransitionStageAsync(
                    args.Required("name"),
                    Versions.Parse(args.String("version")),
                    args.Required("stage"),
                    args.Bool("archive_existing_versions") ?? false,
                    MlflowEndpoint.Actor(http),
                    ct);
                return w => WriteVersion(w, version);
            }));
            versions.MapGet("/get-download-uri", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var version = await Store(http).GetVersionAsync(args.Required("name"), Versions.Parse(args.String("version")), ct);
                // A single stored file gets a signed URL any HTTP client can fetch; folders and foreign URIs stay as MLflow gives them.
                var signed = ArtifactEndpoints.StorePath(version.Source) is { Length: > 0 } path
                    ? await http.RequestServices.GetRequiredService<ArtifactUrls>().SignedDownloadAsync(http, path, ct)
                    : null;
                return w => w.WriteString("artifact_uri", signed?.AbsoluteUri ?? version.Source);
            }));
            versions.MapPost("/set-tag", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var key = Validation.Key(args.Required("key"), "Tag");
                await Store(http).SetVersionTagAsync(args.Required("name"), Versions.Parse(args.String("version")), new KeyValue(key, Validation.Value(args.String("value") ?? "", "Tag", key, Validation.MaxTagValueLength)), ct);
                return null;
            }));
            versions.MapDelete("/delete-tag", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                await Store(http).DeleteVersionTagAsync(args.Required("name"), Versions.Parse(args.String("version")), args.Required("key"), ct);
                return null;
            }));
        }

        return app;
    }

    private static void WriteVersion(Utf8JsonWriter writer, ModelVersion version)
    {
        writer.WritePropertyName("model_version");
        MlflowJson.Version(writer, version);
    }

    private static RegistryStore Store(HttpContext http) => http.RequestServices.GetRequiredService<RegistryStore>();
}
