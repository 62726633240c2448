using System.Text.Json;
using GoblinAspire.Gateway.Keys;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.Stages;
using GoblinAspire.Gateway.Routing;

namespace GoblinAspire.Gateway.Api;

public static class InferenceEndpoints
{
    /// <summary>OpenAI's inference routes. Bodies are read raw: the relay parses only what routing needs.</summary>
    public static IEndpointRouteBuilder MapInference(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1");
        v1.MapPost("/chat/completions", (HttpContext http, InferencePipeline pipeline) => pipeline.HandleAsync(http, InferenceOperation.Chat));
        v1.MapPost("/completions", (HttpContext http, InferencePipeline pipeline) => pipeline.HandleAsync(http, InferenceOperation.Completions));
        v1.MapPost("/embeddings", (HttpContext http, InferencePipeline pipeline) => pipeline.HandleAsync(http, InferenceOperation.Embeddings));
        v1.MapGet("/models", WriteModelsAsync);
        v1.MapGet("/models/{**id}", WriteModelAsync);
        return app;
    }

    /// <summary>
    /// The models routable right now (at least one deployment whose circuit is not open) that the caller's key may use:
    /// a key restricted to some models sees only those.
    /// </summary>
    private static async Task WriteModelsAsync(HttpContext http, ProviderCatalog catalog, KeyAuthenticator keys, TimeProvider time)
    {
        if (await VisibleModelsAsync(http, catalog, keys) is not { } models)
        {
            return;
        }

        http.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(http.Response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteString("object", "list");
        writer.WriteStartArray("data");
        foreach (var model in models)
        {
            WriteModel(writer, model, time);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    /// <summary>OpenAI's <c>models.retrieve</c>: one model object, or 404 <c>model_not_found</c> in OpenAI's shape.</summary>
    private static async Task WriteModelAsync(string id, HttpContext http, ProviderCatalog catalog, KeyAuthenticator keys, TimeProvider time)
    {
        if (await VisibleModelsAsync(http, catalog, keys) is not { } models)
        {
            return;
        }

        if (!models.Contains(id, StringComparer.Ordinal))
        {
            await OpenAiError.ModelNotFound(id).WriteAsync(http.Response);
            return;
        }

        http.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(http.Response.BodyWriter);
        WriteModel(writer, id, time);
    }

    /// <returns>The model names, or null once an authentication error has been written.</returns>
    private static async Task<IReadOnlyList<string>?> VisibleModelsAsync(HttpContext http, ProviderCatalog catalog, KeyAuthenticator keys)
    {
        var (key, error) = await keys.AuthenticateAsync(http.Request, http.RequestAborted);
        if (error is not null)
        {
            await error.WriteAsync(http.Response);
            return null;
        }

        return
        [
            .. catalog.ByModel
                .Where(m => !m.Value.All(d => d.Provider.Health.Circuit is Polly.CircuitBreaker.CircuitState.Open or Polly.CircuitBreaker.CircuitState.Isolated))
                .Select(m => m.Key)
                .Where(model => key?.AllowsModel(model) ?? true)
                .Order(StringComparer.Ordinal),
        ];
    }

    private static void WriteModel(Utf8JsonWriter writer, string model, TimeProvider time)
    {
        writer.WriteStartObject();
        writer.WriteString("id", model);
        writer.WriteString("object", "model");
        writer.WriteNumber("created", time.GetUtcNow().ToUnixTimeSeconds());
        writer.WriteString("owned_by", "goblinaspire");
        writer.WriteEndObject();
    }
}
