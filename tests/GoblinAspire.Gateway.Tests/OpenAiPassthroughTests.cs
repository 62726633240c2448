using System.Net;
using System.Text.Json;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;

namespace GoblinAspire.Gateway.Tests;

[Collection(PlatformServers.Collection)]
public sealed class OpenAiPassthroughTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly OpenAiStandIn _vllm = new() { RequiredApiKey = "sk-upstream-secret-123" };
    private TestWebHost _gateway = null!;

    public async Task InitializeAsync()
    {
        await _vllm.StartAsync();
        _gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("vllm", "openai", _vllm.Url, "chat", upstreamModel: "meta-llama/Llama-3.1-8B-Instruct", extra: [("ApiKey", "sk-upstream-secret-123"), ("Models__0__Capabilities__0", "chat"), ("Models__0__Capabilities__1", "completions"), ("Models__0__Capabilities__2", "embeddings"), ("Models__0__Capabilities__3", "streaming"), ("Models__0__Capabilities__4", "tools")]));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _vllm.DisposeAsync();
    }

    [Fact]
    public async Task Unknown_fields_reach_the_provider_untouched_and_only_the_model_is_mapped()
    {
        const string extra = ""","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"auto","response_format":{"type":"json_object"},"logprobs":true,"seed":42,"x_custom":{"nested":[1,2,3]}""";
        using var response = await _gateway.Client.ChatAsync("chat", extra: extra);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var sent = Assert.Single(_vllm.Requests, r => r.Method == "POST");
        Assert.Equal("/v1/chat/completions", sent.Path);
        Assert.Equal("Bearer sk-upstream-secret-123", sent.Headers["authorization"]);
        var expected = $$"""{"model":"meta-llama/Llama-3.1-8B-Instruct","messages":[{"role":"user","content":"hello there"}],"stream":false{{extra}}}""";
        Assert.Equal(expected, sent.BodyText);
    }

    [Fact]
    public async Task A_whole_answer_comes_back_byte_for_byte_with_the_provider_named()
    {
        using var response = await _gateway.Client.ChatAsync("chat");
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(_vllm.LastAnswer, body);
        Assert.Equal("vllm", response.Headers.GetValues("x-goblin-provider").Single());
        Assert.Equal("req-standin", response.Headers.GetValues("x-request-id").Single());
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task A_stream_is_relayed_event_for_event_with_the_usage_chunk()
    {
        using var response = await _gateway.Client.ChatAsync("chat", "one two three", stream: true, extra: ""","stream_options":{"include_usage":true}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(_vllm.LastStreamText, body);
        var events = GatewayTestHost.SseData(body);
        Assert.Equal("[DONE]", events[^1]);
        using var usage = JsonDocument.Parse(events[^2]);
        Assert.Equal(11, usage.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task The_first_event_reaches_the_client_before_the_provider_sends_the_rest()
    {
        _vllm.PauseAfterFirstEvent = true;
        try
        {
            using var response = await _gateway.Client.ChatAsync("chat", "alpha beta gamma", stream: true, completion: HttpCompletionOption.ResponseHeadersRead);
            await using var body = await response.Content.ReadAsStreamAsync();
            using var reader = new StreamReader(body);
            var first = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.StartsWith("data: ", first, StringComparison.Ordinal);
            Assert.Contains("echo:", first, StringComparison.Ordinal);

            _vllm.ReleaseStream.TrySetResult();
            var rest = await reader.ReadToEndAsync();
            Assert.EndsWith("data: [DONE]\n\n", rest, StringComparison.Ordinal);
        }
        finally
        {
            _vllm.PauseAfterFirstEvent = false;
        }
    }

    [Fact]
    public async Task A_client_that_disconnects_cancels_the_upstream_request()
    {
        _vllm.Script(Behaviour.StallAfterFirstChunk);
        using var cts = new CancellationTokenSource();
        var response = await _gateway.Client.ChatAsync("chat", stream: true, completion: HttpCompletionOption.ResponseHeadersRead, cancellationToken: cts.Token);
        var body = await response.Content.ReadAsStreamAsync(cts.Token);
        var buffer = new byte[64];
        _ = await body.ReadAsync(buffer, cts.Token);

        await cts.CancelAsync();
        response.Dispose();
        await _vllm.UpstreamAborted.Task.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Completions_and_embeddings_pass_through()
    {
        using var completion = await _gateway.Client.PostAsync("/v1/completions", GatewayTestHost.Json("""{"model":"chat","prompt":"Say hi","max_tokens":5}"""));
        Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
        Assert.Equal(_vllm.LastAnswer, await completion.Content.ReadAsByteArrayAsync());
        Assert.Contains(_vllm.Requests, r => r.Path == "/v1/completions");

        using var embedding = await _gateway.Client.PostAsync("/v1/embeddings", GatewayTestHost.Json("""{"model":"chat","input":["a","b"],"encoding_format":"float"}"""));
        Assert.Equal(HttpStatusCode.OK, embedding.StatusCode);
        Assert.Equal(_vllm.LastAnswer, await embedding.Content.ReadAsByteArrayAsync());
        Assert.Contains(_vllm.Requests, r => r.Path == "/v1/embeddings" && r.BodyText.Contains("\"encoding_format\":\"float\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Models_lists_what_is_routable()
    {
        using var document = JsonDocument.Parse(await _gateway.Client.GetStringAsync("/v1/models"));
        Assert.Equal("list", document.RootElement.GetProperty("object").GetString());
        var ids = document.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal(["chat"], ids);
    }

    [Fact]
    public async Task Upstream_client_errors_come_back_as_sent_without_failover()
    {
        _vllm.Script(Behaviour.BadRequest);
        using var response = await _gateway.Client.ChatAsync("chat");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("temperature: must be at most 2", document.RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task The_provider_api_key_never_appears_in_answers_or_status()
    {
        using var response = await _gateway.Client.ChatAsync("chat");
        var providers = await _gateway.Client.GetStringAsync("/providers");
        var metrics = await _gateway.Client.GetStringAsync("/metrics");
        foreach (var text in new[] { await response.Content.ReadAsStringAsync(), providers, metrics, string.Join(" ", response.Headers.SelectMany(h => h.Value)) })
        {
            Assert.DoesNotContain("sk-upstream-secret-123", text, StringComparison.Ordinal);
        }
    }
}
