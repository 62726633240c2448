using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Objects;
using GoblinAspire.ServiceDefaults.Access;

namespace GoblinAspire.ModelRegistry.Access;

/// <summary>
/// The registry's bearer token on every API but health, metrics and signed URLs (which carry their own signature),
/// answered in each API's own shape. A job's run token reaches only MLflow's run and metric calls, for its own run.
/// </summary>
public static class RegistryAccess
{
    private static readonly string[] GcsPrefixes = ["/storage/v1", "/upload/storage/v1", "/download/storage/v1", "/b"];
    private static readonly string[] RunScopedPaths = ["runs", "metrics"];
    private static readonly string[] ArtifactPrefixes = ["/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts"];

    public static IApplicationBuilder UseRegistryAccess(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var runTokens = app.ApplicationServices.GetRequiredService<RunTokens>();
        app.UseServiceAccess(
            (http, message) => WriteAsync(http, StatusCodes.Status401Unauthorized, message),
            (_, token) => runTokens.RunOf(token) is { } run ? new ServiceGrant(run) : null,
            IsSessionContinuation);
        return app.Use(async (http, next) =>
        {
            if (http.Grant() is { IsFull: false } grant && !IsRunCall(http.Request.Path, grant.Scope))
            {
                await WriteAsync(http, StatusCodes.Status403Forbidden, "A run token may only log to and read its own MLflow run.");
                return;
            }

            await next(http);
        });
    }

    /// <summary>
    /// MLflow's run and metric calls (their <c>run_id</c> is checked against the token where the fields are read), and
    /// the artifact proxy under the run's own folder (<c>{experiment}/{run}/artifacts/…</c>), as <c>log_artifact</c> uses.
    /// </summary>
    /// <summary>
    /// As in GCS, a resumable session's URI is its own credential (192 random bits in <c>upload_id</c>): the chunks
    /// and status queries of a session the token opened need no token; an unknown session is the upload API's 404.
    /// </summary>
    private static bool IsSessionContinuation(HttpContext http) =>
        http.Request.Path.StartsWithSegments("/upload/storage/v1") && http.Request.Query.ContainsKey("upload_id") && !HttpMethods.IsPost(http.Request.Method);

    private static bool IsRunCall(PathString path, string run) =>
        MlflowEndpoint.Prefixes.Any(prefix => path.StartsWithSegments(prefix, out var rest) && RunScopedPaths.Any(p => rest.StartsWithSegments("/" + p)))
        || (ArtifactPrefixes.Any(prefix => path.StartsWithSegments(prefix, out var rest) && rest.Value?.Split('/') is [_, _, var owner, "artifacts", ..] && owner == run));

    private static Task WriteAsync(HttpContext http, int status, string message) =>
        GcsPrefixes.Any(p => http.Request.Path.StartsWithSegments(p))
            ? new GcsException(status, status == 401 ? "required" : "forbidden", message).WriteAsync(http.Response)
            : new MlflowException(status == 401 ? ErrorCodes.Unauthenticated : ErrorCodes.PermissionDenied, message).WriteAsync(http.Response);
}
