using System.Text;
using System.Text.Json.Nodes;
using GoblinAspire.Gateway.Responses;
using Microsoft.AspNetCore.Http;

namespace GoblinAspire.Gateway.Tests;

/// <summary>The Responses translation on its own: request to chat, chat stream to typed events, without HTTP servers.</summary>
public sealed class ResponsesTranslationUnitTests
{
    private const string ChatStream =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hé\"}}]}\n\n" +
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"llo\"}}]}\n\n" +
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n" +
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}\n\n" +
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n" +
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n" +
        "data: [DONE]\n\n";

    [Fact]
    public void Function_calls_join_the_assistant_turn_and_outputs_become_tool_messages()
    {
        var request = Parse("""
            {"model":"m","instructions":"Be brief.","input":[
              {"role":"user","content":"weather?"},
              {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Let me check."}]},
              {"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
              {"type":"function_call","call_id":"c2","name":"g","arguments":"{}"},
              {"type":"function_call_output","call_id":"c1","output":"one"},
              {"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"two"}]}]}
            """);

        var messages = JsonNode.Parse(request.ChatBody())!["messages"]!.AsArray();

        Assert.Equal(["system", "user", "assistant", "tool", "tool"], messages.Select(m => (string?)m!["role"]));
        Assert.Equal("Let me check.", (string?)messages[2]!["content"]);
        Assert.Equal(["c1", "c2"], messages[2]!["tool_calls"]!.AsArray().Select(c => (string?)c!["id"]));
        Assert.Equal("two", (string?)messages[4]!["content"]);
        Assert.Equal("c2", (string?)messages[4]!["tool_call_id"]);
    }

    [Fact]
    public void A_continued_conversation_carries_earlier_items_but_not_the_id()
    {
        var request = Parse("""{"model":"m","input":"next","previous_response_id":"resp_1","store":false}""");
        request.Continue(
            [new JsonObject { ["id"] = "msg_a", ["type"] = "message", ["role"] = "user", ["content"] = "first" }],
            [new JsonObject { ["id"] = "rs_1", ["type"] = "reasoning" }, new JsonObject { ["id"] = "fc_1", ["type"] = "function_call", ["call_id"] = "c", ["name"] = "f", ["arguments"] = "{}" }]);

        var native = JsonNode.Parse(request.NativeBody())!.AsObject();

        Assert.False(native.ContainsKey("previous_response_id"));
        Assert.Equal(["msg_a", "fc_1"], native["input"]!.AsArray().Take(2).Select(i => (string?)i!["id"]));
        Assert.Equal(3, native["input"]!.AsArray().Count);
        Assert.False((bool)native["store"]!);
        Assert.True(request.Continued);
    }

    [Fact]
    public async Task A_chat_stream_split_at_every_byte_gives_the_same_events_as_whole()
    {
        var whole = await TranslateAsync([Encoding.UTF8.GetBytes(ChatStream)]);
        var bytewise = await TranslateAsync(Encoding.UTF8.GetBytes(ChatStream).Select(b => new[] { b }));

        Assert.Equal(Names(whole), Names(bytewise));
        Assert.Equal(
            ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
             "response.output_text.delta", "response.output_text.delta", "response.output_text.done", "response.content_part.done",
             "response.output_item.done", "response.output_item.added", "response.function_call_arguments.delta",
             "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done",
             "response.completed"],
            Names(bytewise));
        var final = bytewise[^1]["response"]!;
        Assert.Equal("Héllo", (string?)final["output"]![0]!["content"]![0]!["text"]);
        Assert.Equal("{\"a\":1}", (string?)final["output"]![1]!["arguments"]);
        Assert.Equal("call_1", (string?)final["output"]![1]!["call_id"]);
        Assert.Equal(4, (int)final["usage"]!["output_tokens"]!);
    }

    private static ResponsesRequest Parse(string json)
    {
        var request = ResponsesRequest.Parse(Encoding.UTF8.GetBytes(json), out var error);
        Assert.True(request is not null, error?.Message);
        return request;
    }

    private static async Task<List<JsonObject>> TranslateAsync(IEnumerable<byte[]> writes)
    {
        var http = new DefaultHttpContext();
        var body = new MemoryStream();
        http.Response.Body = body;
        http.Response.StatusCode = StatusCodes.Status200OK;
        var answer = ResponsesAnswer.Install(http, Parse("""{"model":"m","input":"hi","stream":true}"""), "m", stream: true, TimeProvider.System);
        answer.Begin(native: false);
        foreach (var write in writes)
        {
            await answer.WriteAsync(write);
        }

        await answer.SealAsync(complete: true, CancellationToken.None);
        await answer.FinishAsync(CancellationToken.None);
        Assert.NotNull(answer.Final);
        return Encoding.UTF8.GetString(body.ToArray())
            .Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => JsonNode.Parse(e.Split('\n').Single(l => l.StartsWith("data: ", StringComparison.Ordinal))[6..])!.AsObject())
            .ToList();
    }

    private static List<string?> Names(List<JsonObject> events) => events.Select(e => (string?)e["type"]).ToList();
}
