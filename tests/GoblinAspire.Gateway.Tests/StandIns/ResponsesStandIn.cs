using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace GoblinAspire.Gateway.Tests.StandIns;

/// <summary>
/// An OpenAI-compatible server with a tool-using model. Chat completions always; with <paramref name="native"/> also
/// the Responses API (<c>/v1/responses</c>, whole and as typed SSE events), as vLLM serves it; without, a
/// <c>/v1/responses</c> request gets 404, as from a chat-only server. The model answers "echo: {last user text}";
/// given tools and a user turn last, it calls <c>get_weather</c> with <c>{"city":"Paris"}</c>; given a tool result
/// last, it answers "The weather in Paris is {result}". A max_tokens / max_output_tokens of 1 stops for length.
/// </summary>
public sealed class ResponsesStandIn(bool native) : ProviderStandIn
{
    public const string CallArguments = """{"city":"Paris"}""";

    protected override string? AuthenticationFailure(HttpRequest request) => null;

    protected override async Task WriteErrorAsync(HttpContext context, int status, string type, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new { error = new { message, type, param = (string?)null, code = type } }));
    }

    protected override async Task AnswerAsync(HttpContext context, RecordedRequest request, Behaviour behaviour)
    {
        var path = context.Request.Path.Value;
        if (context.Request.Method == "GET")
        {
            await context.Response.WriteAsJsonAsync(new { @object = "list", data = Array.Empty<object>() });
            return;
        }

        var body = JsonNode.Parse(request.Body)!.AsObject();
        if (path == "/v1/chat/completions")
        {
            await ChatAsync(context, body, behaviour);
        }
        else if (path == "/v1/responses" && native)
        {
            await ResponsesAsync(context, body, behaviour);
        }
        else
        {
            await WriteErrorAsync(context, 404, "not_found", $"no route {path}");
        }
    }

    /// <summary>What the model does next: a function call (name) or text.</summary>
    private static (string? Call, string Text) Decide(bool hasTools, string lastRole, string lastText) =>
        lastRole == "tool" ? (null, "The weather in Paris is " + lastText)
        : hasTools ? ("get_weather", "")
        : (null, "echo: " + lastText);

    private async Task ChatAsync(HttpContext context, JsonObject body, Behaviour behaviour)
    {
        var messages = body["messages"]!.AsArray();
        var last = messages[^1]!.AsObject();
        var lastText = last["content"] is JsonValue v ? (string)v! : string.Concat(last["content"]!.AsArray().Select(p => (string?)p!["text"]));
        var (call, text) = Decide(body["tools"] is JsonArray { Count: > 0 }, (string)last["role"]!, lastText);
        var model = (string)body["model"]!;
        var length = (int?)body["max_tokens"] == 1;
        var finish = length ? "length" : call is null ? "stop" : "tool_calls";
        if (length)
        {
            text = text.Split(' ')[0];
        }

        if (body["stream"] is not JsonValue stream || !(bool)stream)
        {
            var message = new JsonObject { ["role"] = "assistant", ["content"] = call is null ? text : null };
            if (call is not null)
            {
                message["tool_calls"] = new JsonArray(new JsonObject { ["id"] = "call_standin", ["type"] = "function", ["function"] = new JsonObject { ["name"] = call, ["arguments"] = CallArguments } });
            }

            var answer = new JsonObject
            {
                ["id"] = "chatcmpl-standin", ["object"] = "chat.completion", ["created"] = 1_700_000_000, ["model"] = model,
                ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["message"] = message, ["finish_reason"] = finish }),
                ["usage"] = new JsonObject { ["prompt_tokens"] = 11, ["completion_tokens"] = 7, ["total_tokens"] = 18 },
            };
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(answer.ToJsonString());
            return;
        }

        context.Response.ContentType = "text/event-stream";
        JsonObject Chunk(JsonObject delta, string? reason) => new()
        {
            ["id"] = "chatcmpl-standin", ["object"] = "chat.completion.chunk", ["created"] = 1_700_000_000, ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = reason }),
        };
        var first = true;
        if (call is not null)
        {
            await WriteSseAsync(context, null, Chunk(new JsonObject { ["role"] = "assistant", ["tool_calls"] = new JsonArray(new JsonObject { ["index"] = 0, ["id"] = "call_standin", ["type"] = "function", ["function"] = new JsonObject { ["name"] = call, ["arguments"] = "" } }) }, null).ToJsonString());
            await AfterFirstAsync(context, behaviour);
            first = false;
            foreach (var piece in new[] { CallArguments[..8], CallArguments[8..] })
            {
                await WriteSseAsync(context, null, Chunk(new JsonObject { ["tool_calls"] = new JsonArray(new JsonObject { ["index"] = 0, ["function"] = new JsonObject { ["arguments"] = piece } }) }, null).ToJsonString());
            }
        }
        else
        {
            foreach (var (word, i) in text.Split(' ').Select((w, i) => (w, i)))
            {
                await WriteSseAsync(context, null, Chunk(new JsonObject { ["content"] = (i == 0 ? "" : " ") + word }, null).ToJsonString());
                if (first)
                {
                    await AfterFirstAsync(context, behaviour);
                    first = false;
                }
            }
        }

        await WriteSseAsync(context, null, Chunk([], finish).ToJsonString());
        if (body["stream_options"]?["include_usage"] is JsonValue include && (bool)include)
        {
            await WriteSseAsync(context, null, new JsonObject
            {
                ["id"] = "chatcmpl-standin", ["object"] = "chat.completion.chunk", ["created"] = 1_700_000_000, ["model"] = model,
                ["choices"] = new JsonArray(), ["usage"] = new JsonObject { ["prompt_tokens"] = 11, ["completion_tokens"] = 7, ["total_tokens"] = 18 },
            }.ToJsonString());
        }

        await WriteSseAsync(context, null, "[DONE]");
    }

    private async Task ResponsesAsync(HttpContext context, JsonObject body, Behaviour behaviour)
    {
        string lastRole, lastText;
        if (body["input"] is JsonValue input)
        {
            (lastRole, lastText) = ("user", (string)input!);
        }
        else
        {
            var last = body["input"]!.AsArray()[^1]!.AsObject();
            (lastRole, lastText) = (string?)last["type"] switch
            {
                "function_call_output" => ("tool", (string)last["output"]!),
                "function_call" => ("assistant", ""),
                _ => ((string)last["role"]!, last["content"] is JsonValue c ? (string)c! : string.Concat(last["content"]!.AsArray().Select(p => (string?)p!["text"]))),
            };
        }

        var (call, text) = Decide(body["tools"] is JsonArray { Count: > 0 }, lastRole, lastText);
        var length = (int?)body["max_output_tokens"] == 1;
        if (length)
        {
            text = text.Split(' ')[0];
        }

        var item = call is null
            ? new JsonObject
            {
                ["id"] = "msg_standin", ["type"] = "message", ["status"] = "completed", ["role"] = "assistant",
                ["content"] = new JsonArray(new JsonObject { ["type"] = "output_text", ["text"] = text, ["annotations"] = new JsonArray() }),
            }
            : new JsonObject { ["id"] = "fc_standin", ["type"] = "function_call", ["status"] = "completed", ["call_id"] = "call_standin", ["name"] = call, ["arguments"] = CallArguments };
        var id = "resp_standin" + Guid.NewGuid().ToString("N");
        JsonObject Response(string status, JsonArray output, bool withUsage) => new()
        {
            ["id"] = id, ["object"] = "response", ["created_at"] = 1_700_000_000, ["status"] = status, ["error"] = null,
            ["incomplete_details"] = status == "incomplete" ? new JsonObject { ["reason"] = "max_output_tokens" } : null,
            ["model"] = (string)body["model"]!, ["output"] = output, ["parallel_tool_calls"] = true, ["tool_choice"] = "auto",
            ["tools"] = body["tools"]?.DeepClone() ?? new JsonArray(), ["temperature"] = 1.0, ["top_p"] = 1.0,
            ["usage"] = withUsage ? new JsonObject { ["input_tokens"] = 13, ["output_tokens"] = 5, ["total_tokens"] = 18 } : null,
            ["metadata"] = body["metadata"]?.DeepClone() ?? new JsonObject(),
        };
        var finalStatus = length ? "incomplete" : "completed";
        if (body["stream"] is not JsonValue stream || !(bool)stream)
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(Response(finalStatus, new JsonArray(item), true).ToJsonString());
            return;
        }

        context.Response.ContentType = "text/event-stream";
        var sequence = 0;
        async Task EventAsync(string type, JsonObject fields)
        {
            fields["type"] = type;
            fields["sequence_number"] = sequence++;
            await WriteSseAsync(context, type, fields.ToJsonString());
        }

        await EventAsync("response.created", new JsonObject { ["response"] = Response("in_progress", [], false) });
        await AfterFirstAsync(context, behaviour);
        var added = (JsonObject)item.DeepClone();
        added["status"] = "in_progress";
        if (call is null)
        {
            added["content"] = new JsonArray();
            await EventAsync("response.output_item.added", new JsonObject { ["output_index"] = 0, ["item"] = added });
            await EventAsync("response.content_part.added", new JsonObject { ["item_id"] = "msg_standin", ["output_index"] = 0, ["content_index"] = 0, ["part"] = new JsonObject { ["type"] = "output_text", ["text"] = "", ["annotations"] = new JsonArray() } });
            foreach (var (word, i) in text.Split(' ').Select((w, i) => (w, i)))
            {
                await EventAsync("response.output_text.delta", new JsonObject { ["item_id"] = "msg_standin", ["output_index"] = 0, ["content_index"] = 0, ["delta"] = (i == 0 ? "" : " ") + word });
            }

            await EventAsync("response.output_text.done", new JsonObject { ["item_id"] = "msg_standin", ["output_index"] = 0, ["content_index"] = 0, ["text"] = text });
        }
        else
        {
            added["arguments"] = "";
            await EventAsync("response.output_item.added", new JsonObject { ["output_index"] = 0, ["item"] = added });
            await EventAsync("response.function_call_arguments.delta", new JsonObject { ["item_id"] = "fc_standin", ["output_index"] = 0, ["delta"] = CallArguments });
            await EventAsync("response.function_call_arguments.done", new JsonObject { ["item_id"] = "fc_standin", ["output_index"] = 0, ["arguments"] = CallArguments });
        }

        await EventAsync("response.output_item.done", new JsonObject { ["output_index"] = 0, ["item"] = item.DeepClone() });
        await EventAsync(length ? "response.incomplete" : "response.completed", new JsonObject { ["response"] = Response(finalStatus, new JsonArray(item.DeepClone()), true) });
    }

    private async Task AfterFirstAsync(HttpContext context, Behaviour behaviour)
    {
        if (behaviour is Behaviour.BreakAfterFirstChunk or Behaviour.StallAfterFirstChunk)
        {
            await AfterFirstEventAsync(context, behaviour);
        }
    }
}
