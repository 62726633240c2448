using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using GoblinAspire.Gateway.Keys;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.Stages;
using GoblinAspire.Gateway.Responses;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace GoblinAspire.Gateway.Api;

/// <summary>The query of <c>GET /v1/responses/{id}/input_items</c>, as OpenAI names it.</summary>
public sealed record InputItemsQuery(string Id, string? Limit, string? Order, string? After, string? Before);

/// <summary>
/// OpenAI's Responses API: create (through the relay, like every inference route), and retrieve, delete and list the
/// input of a stored response. A stored response belongs to the key that made it; for any other key it does not exist.
/// </summary>
public static class ResponsesEndpoints
{
    private const int DefaultItemLimit = 20;
    private const int MaxItemLimit = 100;

    public static IEndpointRouteBuilder MapResponses(this IEndpointRouteBuilder app)
    {
        var responses = app.MapGroup("/v1/responses");
        responses.MapPost("", (HttpContext http, InferencePipeline pipeline) => pipeline.HandleAsync(http, InferenceOperation.Responses));
        responses.MapGet("/{id}", GetAsync);
        responses.MapDelete("/{id}", DeleteAsync);
        responses.MapGet("/{id}/input_items", ListInputItemsAsync);
        return app;
    }

    private static async Task<Results<ContentHttpResult, OpenAiError>> GetAsync(string id, HttpContext http, KeyAuthenticator keys, ResponseStore store)
    {
        var (stored, error) = await FindAsync(id, http, keys, store);
        return stored is null ? error! : TypedResults.Text(stored.Response.ToJsonString(), "application/json");
    }

    private static async Task<Results<ContentHttpResult, OpenAiError>> DeleteAsync(string id, HttpContext http, KeyAuthenticator keys, ResponseStore store)
    {
        var (key, authError) = await keys.AuthenticateAsync(http.Request, http.RequestAborted);
        if (authError is not null)
        {
            return authError;
        }

        try
        {
            if (!await store.DeleteAsync(id, key?.Id, http.RequestAborted))
            {
                return NotFound(id);
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            return StoreUnavailable();
        }

        var deleted = new JsonObject { ["id"] = id, ["object"] = "response", ["deleted"] = true };
        return TypedResults.Text(deleted.ToJsonString(), "application/json");
    }

    private static async Task<Results<ContentHttpResult, OpenAiError>> ListInputItemsAsync([AsParameters] InputItemsQuery query, HttpContext http, KeyAuthenticator keys, ResponseStore store)
    {
        var limit = DefaultItemLimit;
        if (query.Limit is not null && (!int.TryParse(query.Limit, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxItemLimit))
        {
            return OpenAiError.InvalidParameter("limit", $"limit must be an integer from 1 to {MaxItemLimit}.");
        }

        if (query.Order is not (null or "asc" or "desc"))
        {
            return OpenAiError.InvalidParameter("order", "order must be 'asc' or 'desc'.");
        }

        var (stored, error) = await FindAsync(query.Id, http, keys, store);
        if (stored is null)
        {
            return error!;
        }

        // OpenAI lists the newest item first unless asked otherwise; after and before are item ids in that order.
        var items = stored.Input.OfType<JsonObject>().ToList();
        if (query.Order != "asc")
        {
            items.Reverse();
        }

        if (query.After is not null)
        {
            var at = items.FindIndex(i => (string?)i["id"] == query.After);
            items = at < 0 ? [] : items[(at + 1)..];
        }

        if (query.Before is not null)
        {
            var at = items.FindIndex(i => (string?)i["id"] == query.Before);
            items = at < 0 ? [] : items[..at];
        }

        var page = items.Take(limit).ToList();
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("object", "list");
            writer.WriteStartArray("data");
            foreach (var item in page)
            {
                item.WriteTo(writer);
            }

            writer.WriteEndArray();
            WriteId(writer, "first_id", page.Count > 0 ? (string?)page[0]["id"] : null);
            WriteId(writer, "last_id", page.Count > 0 ? (string?)page[^1]["id"] : null);
            writer.WriteBoolean("has_more", items.Count > page.Count);
            writer.WriteEndObject();
        }

        return TypedResults.Text(System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan), "application/json");
    }

    private static async Task<(StoredResponse? Stored, OpenAiError? Error)> FindAsync(string id, HttpContext http, KeyAuthenticator keys, ResponseStore store)
    {
        var (key, authError) = await keys.AuthenticateAsync(http.Request, http.RequestAborted);
        if (authError is not null)
        {
            return (null, authError);
        }

        try
        {
            var stored = await store.FindAsync(id, key?.Id, http.RequestAborted);
            return stored is null ? (null, NotFound(id)) : (stored, null);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            return (null, StoreUnavailable());
        }
    }

    private static void WriteId(Utf8JsonWriter writer, string name, string? id)
    {
        if (id is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, id);
        }
    }

    private static OpenAiError NotFound(string id) => new(
        StatusCodes.Status404NotFound,
        $"Response with id '{Printable(id)}' not found.",
        OpenAiError.InvalidRequest,
        null,
        "response_not_found");

    /// <summary>The id as the client sent it, without control characters and kept short, to echo in an error.</summary>
    private static string Printable(string id)
    {
        var clean = string.Concat(id.Where(c => !char.IsControl(c) && !char.IsSurrogate(c)));
        return clean.Length <= 64 ? clean : clean[..64] + "…";
    }

    private static OpenAiError StoreUnavailable() => new(
        StatusCodes.Status503ServiceUnavailable, "Stored responses cannot be read right now; retry shortly.", OpenAiError.ServerError, null, "response_store_unavailable")
    {
        RetryAfter = TimeSpan.FromSeconds(1),
    };
}
