using System.Text.Json;
using GoblinAspire.ModelRegistry.Artifacts;
using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Storage;

namespace GoblinAspire.ModelRegistry.Api;

public static class ArtifactEndpoints
{
    public const string MlflowArtifactsScheme = "mlflow-artifacts:/";

    /// <summary>MLflow's artifact proxy (<c>mlflow_artifacts.proto</c>) and the tracking API's <c>artifacts/list</c>.</summary>
    public static IEndpointRouteBuilder MapArtifacts(this IEndpointRouteBuilder app)
    {
        foreach (var prefix in new[] { "/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts" })
        {
            app.MapGet(prefix, MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var path = ArtifactPath.Normalize(args.String("path"), allowEmpty: true);
                var entries = await Store(http).ListAsync(path, ct);
                return w => WriteFiles(w, entries, e => e.Path[(e.Path.LastIndexOf('/') + 1)..]);
            }));
            app.MapGet(prefix + "/{**path}", async (HttpContext http) =>
            {
                try
                {
                    var path = RoutePath(http);
                    var stream = await Store(http).OpenReadAsync(ArtifactPath.Normalize(path), http.RequestAborted)
                        ?? throw MlflowException.NotFound($"Artifact '{path}' does not exist.");
                    await using (stream)
                    {
                        http.Response.ContentType = "application/octet-stream";
                        http.Response.ContentLength = stream.Length;
                        await stream.CopyToAsync(http.Response.Body, 64 * 1024, http.RequestAborted);
                    }
                }
                catch (MlflowException ex)
                {
                    await ex.WriteAsync(http.Response);
                }
            });
            app.MapPut(prefix + "/{**path}", MlflowEndpointRaw(async (http, path) =>
            {
                // Model weights are gigabytes; the store streams them, so Kestrel's 30 MB default does not apply.
                if (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
                {
                    limit.MaxRequestBodySize = null;
                }

                await Store(http).WriteAsync(ArtifactPath.Normalize(path), http.Request.Body, http.RequestAborted);
            }));
            app.MapDelete(prefix + "/{**path}", MlflowEndpointRaw(async (http, path) =>
            {
                if (!await Store(http).DeleteAsync(ArtifactPath.Normalize(path), http.RequestAborted))
                {
                    throw MlflowException.NotFound($"Artifact '{path}' does not exist.");
                }
            }));
        }

        foreach (var prefix in MlflowEndpoint.Prefixes)
        {
            app.MapGet($"{prefix}/artifacts/list", MlflowEndpoint.Of(async (args, http, ct) =>
            {
                var runId = args.String("run_id") is { Length: > 0 } id ? id : args.String("run_uuid") ?? throw MlflowException.Missing("run_id");
                var run = await http.RequestServices.GetRequiredService<TrackingStore>().GetRunAsync(runId, ct);
                var relative = ArtifactPath.Normalize(args.String("path"), allowEmpty: true);
                var root = StorePath(run.Info.ArtifactUri);
                var entries = root is null ? [] : await Store(http).ListAsync(relative.Length == 0 ? root : $"{root}/{relative}", ct);
                return w =>
                {
                    w.WriteString("root_uri", run.Info.ArtifactUri);
                    WriteFiles(w, entries, e => e.Path[(root!.Length + 1)..]);
                };
            }));
        }

        return app;
    }

    /// <summary>The store path behind an <c>mlflow-artifacts:/…</c> URI, or null for URIs the proxy does not serve.</summary>
    public static string? StorePath(string uri) =>
        uri.StartsWith(MlflowArtifactsScheme, StringComparison.Ordinal) ? ArtifactPath.Normalize(uri[MlflowArtifactsScheme.Length..].TrimStart('/'), allowEmpty: true) : null;

    private static void WriteFiles(Utf8JsonWriter writer, IReadOnlyList<ArtifactEntry> entries, Func<ArtifactEntry, string> name)
    {
        if (entries.Count == 0)
        {
            return;
        }

        writer.WriteStartArray("files");
        foreach (var entry in entries)
        {
            writer.WriteStartObject();
            writer.WriteString("path", name(entry));
            writer.WriteBoolean("is_dir", entry.IsDirectory);
            if (entry.Size is { } size)
            {
                writer.WriteNumber("file_size", size);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private static RequestDelegate MlflowEndpointRaw(Func<HttpContext, string, Task> action) =>
        MlflowEndpoint.Of(async (_, http, _) =>
        {
            await action(http, RoutePath(http));
            return null;
        }, readArgs: false);

    /// <summary>
    /// The artifact path from the URL. Routing decodes every escape but <c>%2F</c>; decoding that too before the
    /// checks means an encoded traversal (<c>..%2F..</c>) is seen, and refused, as the traversal it is.
    /// </summary>
    private static string RoutePath(HttpContext http) =>
        ((string?)http.GetRouteValue("path") ?? "").Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);

    private static IArtifactStore Store(HttpContext http) => http.RequestServices.GetRequiredService<IArtifactStore>();
}
