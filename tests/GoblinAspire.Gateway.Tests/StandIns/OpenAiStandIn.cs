using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace GoblinAspire.Gateway.Tests.StandIns;

/// <summary>
/// An OpenAI-compatible server (vLLM's wire format): <c>/v1/chat/completions</c>, <c>/v1/completions</c>,
/// <c>/v1/embeddings</c>, <c>/v1/models</c>; SSE streams of <c>chat.completion.chunk</c> ending in
/// <c>data: [DONE]</c>, with a usage chunk when <c>stream_options.include_usage</c> is set; errors as
/// <c>{"error":{...}}</c>. With a path prefix it is a RunPod serverless endpoint's OpenAI route.
/// </summary>
public class OpenAiStandIn(string pathPrefix = "") : ProviderStandIn
{
    /// <summary>The exact bytes of the last whole answer, to compare with what the gateway relayed.</summary>
    public byte[] LastAnswer { get; private set; } = [];

    public string LastStreamText { get; private set; } = "";

    protected override string? AuthenticationFailure(HttpRequest request) =>
        RequiredApiKey is null || request.Headers.Authorization == $"Bearer {RequiredApiKey}" ? null : "Incorrect API key provided.";

    protected override async Task WriteErrorAsync(HttpContext context, int status, string type, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new { error = new { message, type, param = (string?)null, code = type } }));
    }

    protected override async Task AnswerAsync(HttpContext context, RecordedRequest request, Behaviour behaviour)
    {
        var path = context.Request.Path.Value!;
        if (!path.StartsWith(pathPrefix, StringComparison.Ordinal))
        {
            await WriteErrorAsync(context, 404, "not_found", $"no route {path}");
            return;
        }

        path = path[pathPrefix.Length..];
        if (context.Request.Method == "GET" && path is "/v1/models" or "/health")
        {
            await context.Response.WriteAsJsonAsync(new { @object = "list", data = new[] { new { id = "stand-in", @object = "model" } } });
            return;
        }

        var body = request.Json;
        var model = body.GetProperty("model").GetString()!;
        if (path == "/v1/embeddings")
        {
            var answer = JsonSerializer.SerializeToUtf8Bytes(new
            {
                @object = "list",
                data = new[] { new { @object = "embedding", index = 0, embedding = new[] { 0.25, -0.5, 1.0 } } },
                model,
                usage = new { prompt_tokens = 3, total_tokens = 3 },
            });
            await WriteWholeAsync(context, answer);
            return;
        }

        var chat = path == "/v1/chat/completions";
        var text = "echo: " + LastUserText(body);
        var stream = body.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        if (!stream)
        {
            object choice = chat
                ? new { index = 0, message = new { role = "assistant", content = text }, logprobs = (object?)null, finish_reason = "stop" }
                : new { index = 0, text, logprobs = (object?)null, finish_reason = "stop" };
            var answer = JsonSerializer.SerializeToUtf8Bytes(new
            {
                id = "chatcmpl-standin",
                @object = chat ? "chat.completion" : "text_completion",
                created = 1_700_000_000,
                model,
                system_fingerprint = "fp_standin",
                choices = new[] { choice },
                usage = new { prompt_tokens = 11, completion_tokens = 7, total_tokens = 18 },
            });
            await WriteWholeAsync(context, answer);
            return;
        }

        context.Response.ContentType = "text/event-stream";
        context.Response.Headers["x-request-id"] = "req-standin";
        var words = text.Split(' ');
        var sent = new StringBuilder();
        for (var i = 0; i < words.Length; i++)
        {
            var piece = (i == 0 ? "" : " ") + words[i];
            object delta = chat ? new { role = i == 0 ? "assistant" : null, content = piece } : null!;
            object chunk = chat
                ? new { id = "chatcmpl-standin", @object = "chat.completion.chunk", created = 1_700_000_000, model, choices = new[] { new { index = 0, delta, finish_reason = (string?)null } } }
                : new { id = "cmpl-standin", @object = "text_completion", created = 1_700_000_000, model, choices = new[] { new { index = 0, text = piece, finish_reason = (string?)null } } };
            var line = $"data: {JsonSerializer.Serialize(chunk)}\n\n";
            sent.Append(line);
            await context.Response.WriteAsync(line, context.RequestAborted);
            if (i == 0)
            {
                if (behaviour == Behaviour.ErrorEventAfterFirstChunk)
                {
                    await context.Response.WriteAsync("data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n", context.RequestAborted);
                    return;
                }

                await AfterFirstEventAsync(context, behaviour);
            }

            await DelayIfSlow(context, behaviour);
        }

        var finish = $"data: {JsonSerializer.Serialize(new { id = "chatcmpl-standin", @object = "chat.completion.chunk", created = 1_700_000_000, model, choices = new[] { new { index = 0, delta = new { }, finish_reason = "stop" } } })}\n\n";
        sent.Append(finish);
        await context.Response.WriteAsync(finish, context.RequestAborted);
        if (body.TryGetProperty("stream_options", out var options) && options.TryGetProperty("include_usage", out var usage) && usage.ValueKind == JsonValueKind.True)
        {
            var usageChunk = $"data: {JsonSerializer.Serialize(new { id = "chatcmpl-standin", @object = "chat.completion.chunk", created = 1_700_000_000, model, choices = Array.Empty<object>(), usage = new { prompt_tokens = 11, completion_tokens = words.Length, total_tokens = 11 + words.Length } })}\n\n";
            sent.Append(usageChunk);
            await context.Response.WriteAsync(usageChunk, context.RequestAborted);
        }

        sent.Append("data: [DONE]\n\n");
        await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
        LastStreamText = sent.ToString();
    }

    private async Task WriteWholeAsync(HttpContext context, byte[] answer)
    {
        LastAnswer = answer;
        context.Response.ContentType = "application/json";
        context.Response.Headers["x-request-id"] = "req-standin";
        await context.Response.Body.WriteAsync(answer);
    }
}

/// <summary>A RunPod serverless endpoint: OpenAI route under <c>/v2/{endpoint}/openai</c> and <c>/v2/{endpoint}/health</c>.</summary>
public sealed class RunPodStandIn(string endpointId) : OpenAiStandIn($"/v2/{endpointId}/openai")
{
    public string EndpointId { get; } = endpointId;
}
