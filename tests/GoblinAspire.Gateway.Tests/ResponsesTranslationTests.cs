#pragma warning disable OPENAI001 // The SDK marks its Responses client as evaluation-only; the wire API is what is tested.
using System.ClientModel;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;
using OpenAI.Responses;

namespace GoblinAspire.Gateway.Tests;

/// <summary>
/// The Responses API on providers that speak neither it nor chat completions: the request goes through the chat
/// translation and then the provider's own (Ollama's /api/chat, Anthropic's Messages API), and back, streams included.
/// </summary>
[Collection(PlatformServers.Collection)]
public sealed class ResponsesTranslationTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly OllamaStandIn _ollama = new();
    private readonly AnthropicStandIn _anthropic = new();
    private TestWebHost _gateway = null!;

    public static TheoryData<string> Models => new() { "llama", "claude" };

    public async Task InitializeAsync()
    {
        await _ollama.StartAsync();
        await _anthropic.StartAsync();
        _gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("ollama", "ollama", _ollama.Url, "llama", upstreamModel: "llama3.2:1b", extra: [("Models__0__Capabilities__0", "chat"), ("Models__0__Capabilities__1", "streaming"), ("Models__0__Capabilities__2", "tools")])
            .Provider("anthropic", "anthropic", _anthropic.Url, "claude", upstreamModel: "claude-sonnet-4-5", extra: [("ApiKey", "sk-ant-secret"), ("Models__0__Capabilities__0", "chat"), ("Models__0__Capabilities__1", "streaming"), ("Models__0__Capabilities__2", "tools")]));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _ollama.DisposeAsync();
        await _anthropic.DisposeAsync();
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task Whole_and_streamed_responses_come_back_from_a_native_api(string model)
    {
        var client = new ResponsesClient(new ApiKeyCredential("unused"), new ResponsesClientOptions { Endpoint = new Uri(_gateway.BaseAddress, "/v1") });
        ResponseResult whole = await client.CreateResponseAsync(model, "hello there");
        Assert.Equal("echo: hello there", whole.GetOutputText());
        Assert.True(whole.Usage.InputTokenCount > 0);

        var text = new System.Text.StringBuilder();
        ResponseResult? completed = null;
        await foreach (var update in await client.CreateResponseStreamingAsync(model, "hello stream", whole.Id))
        {
            switch (update)
            {
                case StreamingResponseOutputTextDeltaUpdate delta:
                    text.Append(delta.Delta);
                    break;
                case StreamingResponseCompletedUpdate done:
                    completed = done.Response;
                    break;
            }
        }

        Assert.Equal("echo: hello stream", text.ToString());
        Assert.Equal("echo: hello stream", completed!.GetOutputText());
        Assert.Equal(whole.Id, completed.PreviousResponseId);
        Assert.True(completed.Usage.OutputTokenCount > 0);
    }

    [Fact]
    public async Task A_tool_use_comes_back_as_a_function_call_item()
    {
        var client = new ResponsesClient(new ApiKeyCredential("unused"), new ResponsesClientOptions { Endpoint = new Uri(_gateway.BaseAddress, "/v1") });
        var options = new CreateResponseOptions("claude", [ResponseItem.CreateUserMessageItem("Weather in Tokyo?")])
        {
            Tools = { ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString("""{"type":"object"}"""), strictModeEnabled: null) },
            StreamingEnabled = true,
        };
        ResponseResult? completed = null;
        await foreach (var update in await client.CreateResponseStreamingAsync(options))
        {
            if (update is StreamingResponseCompletedUpdate done)
            {
                completed = done.Response;
            }
        }

        var call = Assert.IsType<FunctionCallResponseItem>(completed!.OutputItems[^1]);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal("Tokyo", System.Text.Json.JsonDocument.Parse(call.FunctionArguments).RootElement.GetProperty("city").GetString());
        Assert.Equal("toolu_01", call.CallId);
    }
}
