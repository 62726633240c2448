using System.Text.Json;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.Relay;
using GoblinAspire.Gateway.Routing;

namespace GoblinAspire.Gateway.Api;

public static class InferenceEndpoints
{
    /// <summary>OpenAI's inference routes. Bodies are read raw: the relay parses only what routing needs.</summary>
    public static IEndpointRouteBuilder MapInference(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1");
        v1.MapPost("/chat/completions", (HttpContext http, InferenceRelay relay) => relay.HandleAsync(http, InferenceOperation.Chat));
        v1.MapPost("/completions", (HttpContext http, InferenceRelay relay) => relay.HandleAsync(http, InferenceOperation.Completions));
        v1.MapPost("/embeddings", (HttpContext http, InferenceRelay relay) => relay.HandleAsync(http, InferenceOperation.Embeddings));
        v1.MapGet("/models", WriteModelsAsync);
        return app;
    }

    /// <summary>The models routable right now: at least one deployment whose circuit is not open.</summary>
    private static async Task WriteModelsAsync(HttpContext http, ProviderCatalog catalog, TimeProvider time)
    {
        http.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(http.Response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteString("object", "list");
        writer.WriteStartArray("data");
        foreach (var (model, deployments) in catalog.ByModel.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            if (deployments.All(d => d.Provider.Health.Circuit is Polly.CircuitBreaker.CircuitState.Open or Polly.CircuitBreaker.CircuitState.Isolated))
            {
                continue;
            }

            writer.WriteStartObject();
            writer.WriteString("id", model);
            writer.WriteString("object", "model");
            writer.WriteNumber("created", time.GetUtcNow().ToUnixTimeSeconds());
            writer.WriteString("owned_by", "goblinaspire");
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }
}
