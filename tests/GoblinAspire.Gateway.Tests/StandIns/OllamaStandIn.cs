using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace GoblinAspire.Gateway.Tests.StandIns;

/// <summary>
/// Ollama's native API: <c>/api/chat</c>, <c>/api/generate</c>, <c>/api/embed</c>, <c>/api/tags</c>; NDJSON
/// streaming with a final <c>done:true</c> line carrying <c>prompt_eval_count</c> and <c>eval_count</c>; tool calls
/// with object arguments; errors as <c>{"error":"…"}</c>.
/// </summary>
public sealed class OllamaStandIn : ProviderStandIn
{
    protected override string? AuthenticationFailure(HttpRequest request) =>
        RequiredApiKey is null || request.Headers.Authorization == $"Bearer {RequiredApiKey}" ? null : "unauthorized";

    protected override async Task WriteErrorAsync(HttpContext context, int status, string type, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new { error = message }));
    }

    protected override async Task AnswerAsync(HttpContext context, RecordedRequest request, Behaviour behaviour)
    {
        var path = context.Request.Path.Value;
        if (path == "/api/tags")
        {
            await context.Response.WriteAsJsonAsync(new { models = new[] { new { name = "llama3.2:1b" } } });
            return;
        }

        var body = request.Json;
        var model = body.GetProperty("model").GetString();
        if (path == "/api/embed")
        {
            var inputs = body.GetProperty("input").ValueKind == JsonValueKind.Array ? body.GetProperty("input").GetArrayLength() : 1;
            await context.Response.WriteAsJsonAsync(new
            {
                model,
                embeddings = Enumerable.Range(0, inputs).Select(i => new[] { 0.5f + i, -0.25f, 1.0f }).ToArray(),
                total_duration = 1000,
                prompt_eval_count = 4 * inputs,
            });
            return;
        }

        var chat = path == "/api/chat";
        var wantsTool = chat && body.TryGetProperty("tools", out var tools) && tools.GetArrayLength() > 0;
        var text = wantsTool ? "" : "echo: " + LastUserText(body);
        var stream = !body.TryGetProperty("stream", out var s) || s.ValueKind != JsonValueKind.False;
        object? toolCalls = wantsTool ? new[] { new { function = new { name = "get_weather", arguments = new { city = "Tokyo" } } } } : null;
        object Final(string content) => chat
            ? new { model, created_at = "2026-11-22T10:00:00Z", message = new { role = "assistant", content, tool_calls = toolCalls }, done = true, done_reason = "stop", total_duration = 5000, prompt_eval_count = 12, eval_count = 5 }
            : new { model, created_at = "2026-11-22T10:00:00Z", response = content, done = true, done_reason = "length", prompt_eval_count = 12, eval_count = 5 };

        if (!stream)
        {
            await context.Response.WriteAsJsonAsync(Final(text));
            return;
        }

        context.Response.ContentType = "application/x-ndjson";
        var words = text.Length == 0 ? [] : text.Split(' ');
        for (var i = 0; i < words.Length; i++)
        {
            var piece = (i == 0 ? "" : " ") + words[i];
            object line = chat
                ? new { model, created_at = "2026-11-22T10:00:00Z", message = new { role = "assistant", content = piece }, done = false }
                : new { model, created_at = "2026-11-22T10:00:00Z", response = piece, done = false };
            await context.Response.WriteAsync(JsonSerializer.Serialize(line) + "\n", context.RequestAborted);
            if (i == 0)
            {
                if (behaviour == Behaviour.ErrorEventAfterFirstChunk)
                {
                    await context.Response.WriteAsync("{\"error\":\"an error was encountered while running the model\"}\n", context.RequestAborted);
                    return;
                }

                await AfterFirstEventAsync(context, behaviour);
            }

            await DelayIfSlow(context, behaviour);
        }

        await context.Response.WriteAsync(JsonSerializer.Serialize(Final("")) + "\n", context.RequestAborted);
    }
}
