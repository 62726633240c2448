using System.Text;
using System.Text.Json;
using GoblinAspire.ModelRegistry.Storage;
using GoblinAspire.ServiceDefaults.Access;

namespace GoblinAspire.ModelRegistry.Mlflow;

/// <summary>
/// Turns a handler into an MLflow endpoint: reads the fields (query string or JSON body), answers 200 with a JSON
/// object (<c>{}</c> when empty), and turns <see cref="MlflowException"/> into MLflow's error shape and status.
/// </summary>
public static class MlflowEndpoint
{
    public static readonly string[] Prefixes = ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"];

    public delegate Task<Action<Utf8JsonWriter>?> Handler(MlflowArgs args, HttpContext http, CancellationToken cancellationToken);

    /// <param name="readArgs">False when the body is the payload itself (artifact uploads), not JSON fields.</param>
    public static RequestDelegate Of(Handler handler, bool readArgs = true) => async http =>
    {
        try
        {
            using var args = readArgs ? await MlflowArgs.ReadAsync(http.Request) : MlflowArgs.Empty;
            // A job's run token (its grant's scope is its run) reaches its own run and nothing else; a payload endpoint
            // (an artifact upload) has no fields, and the access check matched its path to the run already.
            if (readArgs && http.Grant() is { IsFull: false } grant && !string.Equals(args.String("run_id"), grant.Scope, StringComparison.Ordinal))
            {
                throw new MlflowException(ErrorCodes.PermissionDenied, "This run token is for another run.");
            }

            var write = await handler(args, http, http.RequestAborted);
            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = "application/json";
            await using var writer = new Utf8JsonWriter(http.Response.BodyWriter);
            writer.WriteStartObject();
            write?.Invoke(writer);
            writer.WriteEndObject();
        }
        catch (MlflowException ex)
        {
            await ex.WriteAsync(http.Response);
        }
    };

    /// <summary>The caller recorded in the audit log: the basic-auth user MLflow clients send, else "anonymous".</summary>
    public static string Actor(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (http.User.Identity?.Name is { Length: > 0 } name)
        {
            return name;
        }

        var authorization = http.Request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(authorization[6..].Trim()));
                var user = decoded.Split(':', 2)[0];
                if (user.Length is > 0 and <= 256)
                {
                    return user;
                }
            }
            catch (FormatException)
            {
            }
        }

        return "anonymous";
    }

    public static ViewType View(string? text) => text?.ToUpperInvariant() switch
    {
        null or "" or "ACTIVE_ONLY" or "1" => ViewType.ActiveOnly,
        "DELETED_ONLY" or "2" => ViewType.DeletedOnly,
        "ALL" or "3" => ViewType.All,
        _ => throw MlflowException.Invalid($"Invalid view type '{MlflowArgs.Shorten(text)}'; use ACTIVE_ONLY, DELETED_ONLY or ALL."),
    };

    public static long ExperimentId(string? text, string parameter = "experiment_id") =>
        text is null ? throw MlflowException.Missing(parameter)
        : long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) ? id
        : throw MlflowException.NotFound($"No Experiment with id={MlflowArgs.Shorten(text)} exists");
}
