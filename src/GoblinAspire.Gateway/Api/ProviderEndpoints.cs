using System.Text.Json;
using GoblinAspire.Gateway.Routing;

namespace GoblinAspire.Gateway.Api;

public static class ProviderEndpoints
{
    /// <summary>
    /// <c>GET /providers</c>: each provider's status in the seeds' shape, e.g.
    /// <c>{"vllm":{"status":"healthy","latency_ms":45},"runpod":{"status":"circuit_open","latency_ms":120,"last_error":"…"}}</c>.
    /// </summary>
    public static IEndpointRouteBuilder MapProviders(this IEndpointRouteBuilder app)
    {
        app.MapGet("/providers", async (HttpContext http, ProviderCatalog catalog) =>
        {
            http.Response.ContentType = "application/json";
            await using var writer = new Utf8JsonWriter(http.Response.BodyWriter);
            writer.WriteStartObject();
            foreach (var provider in catalog.Providers)
            {
                var health = provider.Health;
                writer.WriteStartObject(provider.Name);
                writer.WriteString("status", health.Status);
                writer.WriteString("kind", provider.Options.Kind);
                if (!double.IsNaN(health.LatencyMs))
                {
                    writer.WriteNumber("latency_ms", Math.Round(health.LatencyMs));
                }

                if (!double.IsNaN(health.FirstTokenMs))
                {
                    writer.WriteNumber("time_to_first_token_ms", Math.Round(health.FirstTokenMs));
                }

                if (health.IsCoolingDown)
                {
                    writer.WriteNumber("retry_after_s", Math.Ceiling(health.CooldownRemaining.TotalSeconds));
                }

                if (health.LastError is { } error)
                {
                    writer.WriteString("last_error", error);
                }

                writer.WriteStartArray("models");
                foreach (var model in provider.Options.Models)
                {
                    writer.WriteStringValue(model.Name);
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        });
        return app;
    }
}
