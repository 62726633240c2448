using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using GoblinAspire.Gateway.Keys;
using GoblinAspire.Gateway.OpenAi;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Api;

public sealed record KeyList(IReadOnlyList<VirtualKey> Data);

public sealed record SpendReport(DateTimeOffset From, DateTimeOffset To, string GroupBy, IReadOnlyList<Spend.SpendRow> Data);

// Unknown fields are refused rather than dropped: a misspelt "rpm" must not make a key without limits.
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(KeySettings))]
[JsonSerializable(typeof(VirtualKey))]
[JsonSerializable(typeof(KeyList))]
[JsonSerializable(typeof(SpendReport))]
public sealed partial class AdminJson : JsonSerializerContext;

public static class AdminEndpoints
{
    /// <summary>
    /// <c>/admin/keys</c>: create (the key is shown once), list, get, update, revoke. Every call needs
    /// <c>Authorization: Bearer {Gateway:Access:AdminKey}</c>; without an admin key configured the API does not exist.
    /// </summary>
    public static IEndpointRouteBuilder MapAdmin(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin").AddEndpointFilter(RequireAdminKey);
        admin.MapPost("/keys", async (HttpContext http, KeyStore store, TimeProvider time) =>
        {
            var (request, unreadable) = await ReadAsync(http);
            var invalid = unreadable ?? Validate(request!, time);
            if (invalid is not null)
            {
                return Error(invalid);
            }

            if (await store.CreateAsync(request!, http.RequestAborted) is not (var key, var secret))
            {
                return Error(new OpenAiError(StatusCodes.Status409Conflict, "A key with this secret already exists.", OpenAiError.InvalidRequest, "key", "key_exists"));
            }

            return Results.Json(key with { Secret = secret }, AdminJson.Default.VirtualKey, statusCode: StatusCodes.Status201Created);
        });
        admin.MapGet("/keys", async (string? team, KeyStore store, CancellationToken ct) =>
            BadFilter(team) ?? Results.Json(new KeyList(await store.ListAsync(team, ct)), AdminJson.Default.KeyList));
        admin.MapGet("/keys/{id:guid}", async (Guid id, KeyStore store, CancellationToken ct) =>
            await store.GetAsync(id, ct) is { } key ? Results.Json(key, AdminJson.Default.VirtualKey) : NotFound(id));
        admin.MapPatch("/keys/{id:guid}", async (Guid id, HttpContext http, KeyStore store, TimeProvider time) =>
        {
            var (request, unreadable) = await ReadAsync(http);
            var invalid = unreadable ?? Validate(request!, time);
            if (invalid is not null)
            {
                return Error(invalid);
            }

            return await store.UpdateAsync(id, request!, http.RequestAborted) is { } key ? Results.Json(key, AdminJson.Default.VirtualKey) : NotFound(id);
        });
        admin.MapGet("/spend", async (HttpContext http, Spend.SpendQueries spend, TimeProvider time) =>
        {
            var query = http.Request.Query;
            Guid? key = null;
            if (query["key"] is { Count: > 0 } keyText)
            {
                if (!Guid.TryParse(keyText, out var parsed))
                {
                    return Error(OpenAiError.InvalidParameter("key", "key must be a key id."));
                }

                key = parsed;
            }

            var to = DateTimeOffset.TryParse(query["to"], System.Globalization.CultureInfo.InvariantCulture, out var t) ? t : time.GetUtcNow().AddSeconds(1);
            var from = DateTimeOffset.TryParse(query["from"], System.Globalization.CultureInfo.InvariantCulture, out var f) ? f : to.AddDays(-30);
            var groupBy = query["group_by"].ToString() is { Length: > 0 } g ? g : "model";
            if (groupBy is not ("model" or "provider" or "day") || from >= to)
            {
                return Error(OpenAiError.InvalidParameter("group_by", "group_by must be model, provider or day, and from must be before to."));
            }

            var team = query["team"].ToString() is { Length: > 0 } filter ? filter : null;
            if (BadFilter(team) is { } bad)
            {
                return bad;
            }

            var rows = await spend.ReportAsync(key, team, from, to, groupBy, http.RequestAborted);
            return Results.Json(new SpendReport(from, to, groupBy, rows), AdminJson.Default.SpendReport);
        });
        admin.MapPost("/keys/{id:guid}/revoke", async (Guid id, KeyStore store, CancellationToken ct) =>
            await store.RevokeAsync(id, ct) is { } key ? Results.Json(key, AdminJson.Default.VirtualKey) : NotFound(id));
        return app;
    }

    private static async ValueTask<object?> RequireAdminKey(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var configured = http.RequestServices.GetRequiredService<IOptions<AccessOptions>>().Value.AdminKey;
        if (string.IsNullOrEmpty(configured))
        {
            return Results.NotFound();
        }

        var header = http.Request.Headers.Authorization.ToString();
        var presented = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : "";
        // Compare digests in constant time: neither length nor content of the admin key leaks through timing.
        if (!CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), SHA256.HashData(Encoding.UTF8.GetBytes(configured))))
        {
            return Error(new OpenAiError(StatusCodes.Status401Unauthorized, "The admin API needs the admin key.", OpenAiError.InvalidRequest, null, "invalid_admin_key"));
        }

        return await next(context);
    }

    /// <returns>The settings, or the error naming what is wrong with the body (a wrong type, an unknown field).</returns>
    private static async Task<(KeySettings? Settings, OpenAiError? Error)> ReadAsync(HttpContext http)
    {
        try
        {
            return await JsonSerializer.DeserializeAsync(http.Request.Body, AdminJson.Default.KeySettings, http.RequestAborted) is { } settings
                ? (settings, null)
                : (null, OpenAiError.InvalidJson());
        }
        catch (JsonException ex)
        {
            var field = ex.Path is { Length: > 2 } path ? path[2..] : null;
            return (null, new OpenAiError(StatusCodes.Status400BadRequest, $"The request body is not a valid key: {ex.Message}", OpenAiError.InvalidRequest, field, "invalid_value"));
        }
    }

    private static OpenAiError? Validate(KeySettings request, TimeProvider time)
    {
        if (request.ExpiresAt is { } expires && expires <= time.GetUtcNow())
        {
            return OpenAiError.InvalidParameter("expires_at", "expires_at must be in the future.");
        }

        if (request.Rpm is < 0 || request.Tpm is < 0 || request.MaxParallel is < 0 || request.BudgetUsd is < 0)
        {
            return OpenAiError.InvalidParameter("limits", "rpm, tpm, max_parallel and budget_usd must not be negative.");
        }

        if (request.Key is { } chosen && !KeyStore.IsAcceptableSecret(chosen))
        {
            return OpenAiError.InvalidParameter("key", $"key must start with {KeyStore.KeyPrefix} and be 32 to 128 letters, digits, '-' or '_'.");
        }

        if (request.BudgetPeriod is not (null or "day" or "week" or "month"))
        {
            return OpenAiError.InvalidParameter("budget_period", "budget_period must be day, week or month.");
        }

        foreach (var text in new[] { request.Name, request.Owner, request.Team }.Concat(request.AllowedModels ?? []))
        {
            if (text is { Length: > 256 } || text?.Any(char.IsControl) == true)
            {
                return OpenAiError.InvalidParameter("name", "names are at most 256 characters without control characters.");
            }
        }

        return request.AllowedModels is { Count: > 1000 } ? OpenAiError.InvalidParameter("allowed_models", "at most 1000 models.") : null;
    }

    /// <summary>A team filter PostgreSQL could not even compare (a NUL) is the caller's error, not the store's.</summary>
    private static IResult? BadFilter(string? team) =>
        team is { Length: > 256 } || team?.Any(char.IsControl) == true
            ? Error(OpenAiError.InvalidParameter("team", "team is at most 256 characters without control characters."))
            : null;

    private static IResult NotFound(Guid id) =>
        Error(new OpenAiError(StatusCodes.Status404NotFound, $"No key with id {id}.", OpenAiError.InvalidRequest, "id", "key_not_found"));

    private static IResult Error(OpenAiError error) => Results.Text(Encoding.UTF8.GetString(error.ToJsonBytes()), "application/json", Encoding.UTF8, error.StatusCode);
}
