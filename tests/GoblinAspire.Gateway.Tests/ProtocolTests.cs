using System.Net;
using System.Text.Json;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;

namespace GoblinAspire.Gateway.Tests;

[Collection(PlatformServers.Collection)]
public sealed class OllamaProtocolTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly OllamaStandIn _ollama = new();
    private TestWebHost _gateway = null!;

    public async Task InitializeAsync()
    {
        await _ollama.StartAsync();
        _gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("ollama", "ollama", _ollama.Url, "llama", upstreamModel: "llama3.2:1b", extra: [("Models__0__Capabilities__0", "chat"), ("Models__0__Capabilities__1", "completions"), ("Models__0__Capabilities__2", "embeddings"), ("Models__0__Capabilities__3", "streaming"), ("Models__0__Capabilities__4", "tools")]));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _ollama.DisposeAsync();
    }

    [Fact]
    public async Task Chat_is_translated_to_api_chat_and_back_with_usage()
    {
        using var response = await _gateway.Client.ChatAsync("llama", extra: ""","temperature":0.2,"max_tokens":50,"stop":"END","seed":7""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var sent = Assert.Single(_ollama.Requests, r => r.Method == "POST").Json;
        Assert.Equal("llama3.2:1b", sent.GetProperty("model").GetString());
        Assert.False(sent.GetProperty("stream").GetBoolean());
        var options = sent.GetProperty("options");
        Assert.Equal(50, options.GetProperty("num_predict").GetInt32());
        Assert.Equal(0.2, options.GetProperty("temperature").GetDouble());
        Assert.Equal(7, options.GetProperty("seed").GetInt32());
        Assert.Equal("END", options.GetProperty("stop")[0].GetString());

        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = document.RootElement;
        Assert.Equal("chat.completion", root.GetProperty("object").GetString());
        Assert.Equal("llama", root.GetProperty("model").GetString());
        Assert.Equal("echo: hello there", root.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", root.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(12, root.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(5, root.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(17, root.GetProperty("usage").GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task An_ndjson_stream_becomes_an_sse_stream_with_done_and_usage()
    {
        using var response = await _gateway.Client.ChatAsync("llama", "one two", stream: true, extra: ""","stream_options":{"include_usage":true}""");
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var body = await response.Content.ReadAsStringAsync();
        var events = GatewayTestHost.SseData(body);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal("echo: one two", StreamText.Of(body));
        using var first = JsonDocument.Parse(events[0]);
        Assert.Equal("chat.completion.chunk", first.RootElement.GetProperty("object").GetString());
        Assert.Equal("assistant", first.RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        using var finish = JsonDocument.Parse(events[^3]);
        Assert.Equal("stop", finish.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        using var usage = JsonDocument.Parse(events[^2]);
        Assert.Equal(0, usage.RootElement.GetProperty("choices").GetArrayLength());
        Assert.Equal(5, usage.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Tool_calls_travel_both_ways()
    {
        const string extra = ""","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]""";
        using var response = await _gateway.Client.ChatAsync("llama", "weather?", extra: extra);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var choice = document.RootElement.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var call = choice.GetProperty("message").GetProperty("tool_calls")[0];
        Assert.StartsWith("call_", call.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("get_weather", call.GetProperty("function").GetProperty("name").GetString());
        using var arguments = JsonDocument.Parse(call.GetProperty("function").GetProperty("arguments").GetString()!);
        Assert.Equal("Tokyo", arguments.RootElement.GetProperty("city").GetString());

        // The assistant's tool call and the tool's result go back to Ollama in its own shape.
        var followUp = """{"model":"llama","messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}}]},{"role":"tool","tool_call_id":"call_1","name":"get_weather","content":"sunny"}]}""";
        using var second = await _gateway.Client.PostAsync("/v1/chat/completions", GatewayTestHost.Json(followUp));
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        var sent = _ollama.Requests.Last(r => r.Method == "POST").Json.GetProperty("messages");
        Assert.Equal("Tokyo", sent[1].GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments").GetProperty("city").GetString());
        Assert.Equal("tool", sent[2].GetProperty("role").GetString());
        Assert.Equal("get_weather", sent[2].GetProperty("tool_name").GetString());
    }

    [Fact]
    public async Task Completions_and_embeddings_use_generate_and_embed()
    {
        using var completion = await _gateway.Client.PostAsync("/v1/completions", GatewayTestHost.Json("""{"model":"llama","prompt":"Say hi","max_tokens":3}"""));
        using (var document = JsonDocument.Parse(await completion.Content.ReadAsStringAsync()))
        {
            Assert.Equal("text_completion", document.RootElement.GetProperty("object").GetString());
            Assert.Equal("echo: Say hi", document.RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
            Assert.Equal("length", document.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        }

        Assert.Contains(_ollama.Requests, r => r.Path == "/api/generate");

        using var embedding = await _gateway.Client.PostAsync("/v1/embeddings", GatewayTestHost.Json("""{"model":"llama","input":["a","b"]}"""));
        using (var document = JsonDocument.Parse(await embedding.Content.ReadAsStringAsync()))
        {
            var data = document.RootElement.GetProperty("data");
            Assert.Equal(2, data.GetArrayLength());
            Assert.Equal(1.5, data[1].GetProperty("embedding")[0].GetDouble());
            Assert.Equal(8, document.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        }

        using var base64 = await _gateway.Client.PostAsync("/v1/embeddings", GatewayTestHost.Json("""{"model":"llama","input":"a","encoding_format":"base64"}"""));
        using (var document = JsonDocument.Parse(await base64.Content.ReadAsStringAsync()))
        {
            var bytes = Convert.FromBase64String(document.RootElement.GetProperty("data")[0].GetProperty("embedding").GetString()!);
            Assert.Equal(0.5f, BitConverter.ToSingle(bytes, 0));
            Assert.Equal(-0.25f, BitConverter.ToSingle(bytes, 4));
        }
    }

    [Fact]
    public async Task Ollama_errors_come_back_in_openai_shape()
    {
        _ollama.Script(Behaviour.NotFound);
        using var response = await _gateway.Client.ChatAsync("llama");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("model 'nope' not found", document.RootElement.GetProperty("error").GetProperty("message").GetString());

        _ollama.Script(Behaviour.ErrorEventAfterFirstChunk);
        using var stream = await _gateway.Client.ChatAsync("llama", stream: true);
        var events = GatewayTestHost.SseData(await stream.Content.ReadAsStringAsync());
        using var error = JsonDocument.Parse(events[^1]);
        Assert.Equal("server_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
    }
}

[Collection(PlatformServers.Collection)]
public sealed class AnthropicProtocolTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly AnthropicStandIn _anthropic = new() { RequiredApiKey = "sk-ant-secret" };
    private readonly OpenAiStandIn _fallback = new();
    private TestWebHost _gateway = null!;

    public async Task InitializeAsync()
    {
        await _anthropic.StartAsync();
        await _fallback.StartAsync();
        _gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("anthropic", "anthropic", _anthropic.Url, "claude", upstreamModel: "claude-sonnet-4-5", priority: 0, extra: [("ApiKey", "sk-ant-secret"), ("Models__0__Capabilities__0", "chat"), ("Models__0__Capabilities__1", "streaming"), ("Models__0__Capabilities__2", "tools")])
            .Provider("fallback", "openai", _fallback.Url, "claude", priority: 1));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _anthropic.DisposeAsync();
        await _fallback.DisposeAsync();
    }

    [Fact]
    public async Task System_messages_tools_and_defaults_are_translated_to_the_messages_api()
    {
        var body = """{"model":"claude","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object"}}}],"tool_choice":"required","stop":["END"],"temperature":0.1}""";
        using var response = await _gateway.Client.PostAsync("/v1/chat/completions", GatewayTestHost.Json(body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var sent = Assert.Single(_anthropic.Requests, r => r.Method == "POST");
        Assert.Equal("/v1/messages", sent.Path);
        Assert.Equal("sk-ant-secret", sent.Headers["x-api-key"]);
        Assert.Equal("2023-06-01", sent.Headers["anthropic-version"]);
        var json = sent.Json;
        Assert.Equal("claude-sonnet-4-5", json.GetProperty("model").GetString());
        Assert.Equal(4096, json.GetProperty("max_tokens").GetInt32());
        Assert.Equal("Be brief.", json.GetProperty("system").GetString());
        Assert.Equal(1, json.GetProperty("messages").GetArrayLength());
        Assert.Equal("get_weather", json.GetProperty("tools")[0].GetProperty("name").GetString());
        Assert.Equal("object", json.GetProperty("tools")[0].GetProperty("input_schema").GetProperty("type").GetString());
        Assert.Equal("any", json.GetProperty("tool_choice").GetProperty("type").GetString());
        Assert.Equal("END", json.GetProperty("stop_sequences")[0].GetString());

        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var choice = document.RootElement.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        Assert.Equal("echo: weather?", choice.GetProperty("message").GetProperty("content").GetString());
        var call = choice.GetProperty("message").GetProperty("tool_calls")[0];
        Assert.Equal("toolu_01", call.GetProperty("id").GetString());
        Assert.Equal("{\"city\":\"Tokyo\"}", call.GetProperty("function").GetProperty("arguments").GetString());
        Assert.Equal(21, document.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(9, document.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Tool_results_go_back_as_user_tool_result_blocks()
    {
        var body = """{"model":"claude","messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"toolu_01","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}}]},{"role":"tool","tool_call_id":"toolu_01","content":"sunny"}]}""";
        using var response = await _gateway.Client.PostAsync("/v1/chat/completions", GatewayTestHost.Json(body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var messages = _anthropic.Requests.Last(r => r.Method == "POST").Json.GetProperty("messages");
        Assert.Equal(3, messages.GetArrayLength());
        var toolUse = messages[1].GetProperty("content")[0];
        Assert.Equal("tool_use", toolUse.GetProperty("type").GetString());
        Assert.Equal("Tokyo", toolUse.GetProperty("input").GetProperty("city").GetString());
        var result = messages[2].GetProperty("content")[0];
        Assert.Equal("user", messages[2].GetProperty("role").GetString());
        Assert.Equal("tool_result", result.GetProperty("type").GetString());
        Assert.Equal("toolu_01", result.GetProperty("tool_use_id").GetString());
    }

    [Fact]
    public async Task Streaming_events_become_openai_chunks_with_tool_call_deltas_and_usage()
    {
        const string extra = ""","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],"stream_options":{"include_usage":true}""";
        using var response = await _gateway.Client.ChatAsync("claude", "one two", stream: true, extra: extra);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal("echo: one two", StreamText.Of(body));
        var events = GatewayTestHost.SseData(body);
        Assert.Equal("[DONE]", events[^1]);

        var arguments = string.Concat(events.Where(e => e.Contains("\"tool_calls\":[", StringComparison.Ordinal)).Select(e =>
        {
            using var chunk = JsonDocument.Parse(e);
            return chunk.RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments").GetString();
        }));
        Assert.Equal("{\"city\": \"Tokyo\"}", arguments);
        using var finish = JsonDocument.Parse(events[^3]);
        Assert.Equal("tool_calls", finish.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        using var usage = JsonDocument.Parse(events[^2]);
        Assert.Equal(21, usage.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(9, usage.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Overloaded_529_fails_over_and_invalid_requests_come_back_in_openai_shape()
    {
        _anthropic.Script(Behaviour.Overloaded);
        using var overloaded = await _gateway.Client.ChatAsync("claude");
        Assert.Equal("fallback", overloaded.Headers.GetValues("x-goblin-provider").Single());

        _anthropic.Script(Behaviour.BadRequest);
        using var invalid = await _gateway.Client.ChatAsync("claude");
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        using var document = JsonDocument.Parse(await invalid.Content.ReadAsStringAsync());
        Assert.Equal("invalid_request_error", document.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("temperature: must be at most 2", document.RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task A_mid_stream_error_event_ends_the_stream_with_an_openai_error()
    {
        _anthropic.Script(Behaviour.ErrorEventAfterFirstChunk);
        using var response = await _gateway.Client.ChatAsync("claude", stream: true);
        var events = GatewayTestHost.SseData(await response.Content.ReadAsStringAsync());
        using var error = JsonDocument.Parse(events[^1]);
        Assert.Equal("upstream_stream_error", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(0, _fallback.InferenceRequestCount);
    }
}

[Collection(PlatformServers.Collection)]
public sealed class RunPodProtocolTests(PlatformServers servers)
{
    [Fact]
    public async Task Requests_go_to_the_endpoints_openai_route_with_the_runpod_key_and_probes_use_health()
    {
        await using var runpod = new RunPodStandIn("vllm-abc123") { RequiredApiKey = "rpa_secret" };
        await runpod.StartAsync();
        await using var gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("runpod", "runpod", runpod.Url, "chat", upstreamModel: "mistral-7b", extra: [("EndpointId", "vllm-abc123"), ("ApiKey", "rpa_secret"), ("HealthProbe", "true")]));

        using var response = await gateway.Client.ChatAsync("chat", stream: true);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("echo: hello there", StreamText.Of(await response.Content.ReadAsStringAsync()));
        var sent = Assert.Single(runpod.Requests, r => r.Method == "POST");
        Assert.Equal("/v2/vllm-abc123/openai/v1/chat/completions", sent.Path);
        Assert.Equal("Bearer rpa_secret", sent.Headers["authorization"]);
        Assert.Equal("mistral-7b", sent.Json.GetProperty("model").GetString());

        await Eventually.HoldsAsync(() => Task.FromResult(runpod.Requests.Any(r => r.Path == "/v2/vllm-abc123/health")), TimeSpan.FromSeconds(10), "a health probe");
    }

    [Fact]
    public async Task A_failing_probe_marks_the_provider_unhealthy()
    {
        await using var gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("gone", "runpod", $"http://127.0.0.1:{FreePort.Next()}", "chat", extra: [("EndpointId", "x"), ("HealthProbe", "true")]));
        await Eventually.HoldsAsync(async () =>
        {
            using var providers = JsonDocument.Parse(await gateway.Client.GetStringAsync("/providers"));
            return providers.RootElement.GetProperty("gone").GetProperty("status").GetString() == "unhealthy";
        }, TimeSpan.FromSeconds(10), "the probe marking the provider unhealthy");
    }
}
