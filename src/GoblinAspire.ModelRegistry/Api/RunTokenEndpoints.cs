using GoblinAspire.ModelRegistry.Access;
using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Storage;

namespace GoblinAspire.ModelRegistry.Api;

/// <summary>
/// <c>POST /api/v1/run-tokens</c> <c>{"run_id", "ttl_seconds"}</c>: a token for one MLflow run, which the training
/// worker hands its job as <c>MLFLOW_TRACKING_TOKEN</c> instead of its own. Needs the registry token itself.
/// </summary>
public static class RunTokenEndpoints
{
    public const string Path = "/api/v1/run-tokens";

    public static IEndpointRouteBuilder MapRunTokens(this IEndpointRouteBuilder app)
    {
        app.MapPost(Path, MlflowEndpoint.Of(async (args, http, ct) =>
        {
            var tokens = http.RequestServices.GetRequiredService<RunTokens>();
            if (!tokens.CanMint)
            {
                throw new MlflowException(ErrorCodes.FailedPrecondition, "This registry runs without a token (ModelRegistry:Access:RequireToken=false), so it has no run tokens to give.");
            }

            var runId = args.Required("run_id");
            _ = await http.RequestServices.GetRequiredService<TrackingStore>().GetRunAsync(runId, ct);
            var ttl = args.Long("ttl_seconds") ?? (long)RunTokens.MaxLifetime.TotalSeconds;
            if (ttl is < 1 or > 7 * 24 * 3600)
            {
                throw MlflowException.Invalid("ttl_seconds must be between 1 and 604800 (7 days).");
            }

            var (token, expires) = tokens.Mint(runId, TimeSpan.FromSeconds(ttl));
            return w =>
            {
                w.WriteString("token", token);
                w.WriteString("expires_at", expires);
            };
        }));
        return app;
    }
}
