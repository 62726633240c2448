using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace GoblinAspire.Gateway.Tests.StandIns;

/// <summary>
/// Anthropic's Messages API: <c>POST /v1/messages</c> requiring <c>x-api-key</c> and <c>anthropic-version</c>,
/// <c>max_tokens</c> required, content blocks (text, tool_use), SSE events (<c>message_start</c>,
/// <c>content_block_start/delta/stop</c> with <c>text_delta</c> and <c>input_json_delta</c>, <c>message_delta</c>,
/// <c>message_stop</c>, <c>ping</c>, <c>error</c>), errors as <c>{"type":"error","error":{...}}</c>, 529 overloaded.
/// </summary>
public sealed class AnthropicStandIn : ProviderStandIn
{
    protected override string? AuthenticationFailure(HttpRequest request)
    {
        if (request.Headers["anthropic-version"] != "2023-06-01")
        {
            return "anthropic-version header is required";
        }

        return RequiredApiKey is null || request.Headers["x-api-key"] == RequiredApiKey ? null : "invalid x-api-key";
    }

    protected override async Task WriteErrorAsync(HttpContext context, int status, string type, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new { type = "error", error = new { type, message } }));
    }

    protected override async Task AnswerAsync(HttpContext context, RecordedRequest request, Behaviour behaviour)
    {
        if (context.Request.Method == "GET")
        {
            await context.Response.WriteAsJsonAsync(new { data = new[] { new { id = "claude-stand-in", type = "model" } }, has_more = false });
            return;
        }

        var body = request.Json;
        if (!body.TryGetProperty("max_tokens", out _))
        {
            await WriteErrorAsync(context, 400, "invalid_request_error", "max_tokens: Field required");
            return;
        }

        var model = body.GetProperty("model").GetString();
        var wantsTool = body.TryGetProperty("tools", out var tools) && tools.GetArrayLength() > 0;
        var text = "echo: " + LastUserTextOf(body);
        var stream = body.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        if (!stream)
        {
            var content = new List<object> { new { type = "text", text } };
            if (wantsTool)
            {
                content.Add(new { type = "tool_use", id = "toolu_01", name = "get_weather", input = new { city = "Tokyo" } });
            }

            await context.Response.WriteAsJsonAsync(new
            {
                id = "msg_standin",
                type = "message",
                role = "assistant",
                model,
                content,
                stop_reason = wantsTool ? "tool_use" : "end_turn",
                stop_sequence = (string?)null,
                usage = new { input_tokens = 21, output_tokens = 9 },
            });
            return;
        }

        context.Response.ContentType = "text/event-stream";
        await WriteSseAsync(context, "message_start", JsonSerializer.Serialize(new { type = "message_start", message = new { id = "msg_standin", type = "message", role = "assistant", model, content = Array.Empty<object>(), stop_reason = (string?)null, usage = new { input_tokens = 21, output_tokens = 1 } } }));
        await AfterFirstEventAsync(context, behaviour);
        await WriteSseAsync(context, "content_block_start", JsonSerializer.Serialize(new { type = "content_block_start", index = 0, content_block = new { type = "text", text = "" } }));
        await WriteSseAsync(context, "ping", "{\"type\": \"ping\"}");
        if (behaviour == Behaviour.ErrorEventAfterFirstChunk)
        {
            await WriteSseAsync(context, "error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}");
            return;
        }

        foreach (var piece in text.Split(' ').Select((w, i) => (i == 0 ? "" : " ") + w))
        {
            await WriteSseAsync(context, "content_block_delta", JsonSerializer.Serialize(new { type = "content_block_delta", index = 0, delta = new { type = "text_delta", text = piece } }));
            await DelayIfSlow(context, behaviour);
        }

        await WriteSseAsync(context, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
        if (wantsTool)
        {
            await WriteSseAsync(context, "content_block_start", JsonSerializer.Serialize(new { type = "content_block_start", index = 1, content_block = new { type = "tool_use", id = "toolu_01", name = "get_weather", input = new { } } }));
            await WriteSseAsync(context, "content_block_delta", JsonSerializer.Serialize(new { type = "content_block_delta", index = 1, delta = new { type = "input_json_delta", partial_json = "{\"city\": \"To" } }));
            await WriteSseAsync(context, "content_block_delta", JsonSerializer.Serialize(new { type = "content_block_delta", index = 1, delta = new { type = "input_json_delta", partial_json = "kyo\"}" } }));
            await WriteSseAsync(context, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}");
        }

        await WriteSseAsync(context, "message_delta", JsonSerializer.Serialize(new { type = "message_delta", delta = new { stop_reason = wantsTool ? "tool_use" : "end_turn", stop_sequence = (string?)null }, usage = new { output_tokens = 9 } }));
        await WriteSseAsync(context, "message_stop", "{\"type\":\"message_stop\"}");
    }

    private static string LastUserTextOf(JsonElement body)
    {
        var text = "";
        foreach (var message in body.GetProperty("messages").EnumerateArray())
        {
            if (message.GetProperty("role").GetString() != "user")
            {
                continue;
            }

            foreach (var block in message.GetProperty("content").EnumerateArray())
            {
                if (block.GetProperty("type").GetString() == "text")
                {
                    text = block.GetProperty("text").GetString()!;
                }
            }
        }

        return text;
    }
}
