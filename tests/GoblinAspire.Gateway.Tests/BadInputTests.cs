using System.Net;
using System.Text;
using System.Text.Json;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;

namespace GoblinAspire.Gateway.Tests;

/// <summary>Every inference endpoint refuses bad input in OpenAI's error shape, without calling any provider.</summary>
[Collection(PlatformServers.Collection)]
public sealed class BadInputTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly OpenAiStandIn _upstream = new();
    private TestWebHost _gateway = null!;

    public static TheoryData<string, string, int, string?> Cases => new()
    {
        { "/v1/chat/completions", "{not json", 400, null },
        { "/v1/chat/completions", "[1,2,3]", 400, null },
        { "/v1/chat/completions", "", 400, null },
        { "/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}]}""", 400, "model" },
        { "/v1/chat/completions", """{"model":42,"messages":[]}""", 400, "model" },
        { "/v1/chat/completions", """{"model":"","messages":[{"role":"user","content":"hi"}]}""", 400, "model" },
        { "/v1/chat/completions", """{"model":"chat"}""", 400, "messages" },
        { "/v1/chat/completions", """{"model":"chat","messages":"hi"}""", 400, "messages" },
        { "/v1/chat/completions", """{"model":"chat","messages":[]}""", 400, "messages" },
        { "/v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":-5}""", 400, "max_tokens" },
        { "/v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]} trailing""", 400, null },
        { "/v1/chat/completions", """{"model":"gpt-nonexistent","messages":[{"role":"user","content":"hi"}]}""", 404, "model" },
        { "/v1/chat/completions", """{"model":"chat\u0000\"; DROP TABLE","messages":[{"role":"user","content":"hi"}]}""", 404, "model" },
        { "/v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":"lots"}""", 400, "max_tokens" },
        { "/v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}],"stream":"yes"}""", 400, "stream" },
        { "/v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}""", 400, "temperature" },
        { "/v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}],"temperature":7}""", 400, "temperature" },
        { "/v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}],"stream_options":true}""", 400, "stream_options" },
        { "/v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}],"stop":42}""", 400, "stop" },
        { "/v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}],"user":{"id":1}}""", 400, "user" },
        { "/v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}],"tools":"all"}""", 400, "tools" },
        { "/v1/completions", """{"model":"chat"}""", 400, "prompt" },
        { "/v1/completions", """{"model":"chat","prompt":{"a":1}}""", 400, "prompt" },
        { "/v1/embeddings", """{"model":"chat"}""", 400, "input" },
        { "/v1/embeddings", """{"model":"chat","input":[]}""", 400, "input" },
    };

    public async Task InitializeAsync()
    {
        await _upstream.StartAsync();
        _gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Set("Gateway__MaxRequestBodyBytes", "65536")
            .Provider("upstream", "openai", _upstream.Url, "chat", extra: [("Models__0__Capabilities__0", "chat"), ("Models__0__Capabilities__1", "completions"), ("Models__0__Capabilities__2", "embeddings")]));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Bad_requests_get_openai_errors_and_no_upstream_call(string path, string body, int status, string? param)
    {
        using var response = await _gateway.Client.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        await AssertOpenAiErrorAsync(response, status, param);
        Assert.Equal(0, _upstream.InferenceRequestCount);
    }

    /// <summary>Invalid UTF-8 is the client's error at the gateway: 400, and no provider sees it (or counts it).</summary>
    [Fact]
    public async Task Invalid_utf8_is_400_invalid_encoding_without_an_upstream_call()
    {
        foreach (var path in new[] { "/v1/chat/completions", "/v1/completions", "/v1/embeddings" })
        {
            byte[] body = [.. """{"model":"chat","prompt":"a","input":"a","messages":[{"role":"user","content":" """u8.ToArray(), 0xC3, 0x28, 0xFE, .. "\"}]}"u8.ToArray()];
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new("application/json");
            using var response = await _gateway.Client.PostAsync(path, content);
            await AssertOpenAiErrorAsync(response, 400, null);
        }

        // Valid JSON whose escapes make no text: a provider decoding it would answer 500, counted against it.
        foreach (var escaped in new[] { "\\ud800", "\\udc00x", "ok\\ud83d" })
        {
            using var response = await _gateway.Client.PostAsync("/v1/chat/completions", GatewayTestHost.Json($$"""{"model":"chat","messages":[{"role":"user","content":"{{escaped}}"}]}"""));
            var text = await response.Content.ReadAsStringAsync();
            await AssertOpenAiErrorAsync(response, 400, null);
            Assert.Contains("invalid_encoding", text, StringComparison.Ordinal);
        }

        Assert.Equal(0, _upstream.InferenceRequestCount);
    }

    [Fact]
    public async Task A_body_over_the_limit_gets_413_whether_its_length_is_declared_or_not()
    {
        var big = """{"model":"chat","messages":[{"role":"user","content":" """ + new string('x', 70_000) + "\"}]}";
        using (var declared = await _gateway.Client.PostAsync("/v1/chat/completions", new StringContent(big, Encoding.UTF8, "application/json")))
        {
            await AssertOpenAiErrorAsync(declared, 413, null);
        }

        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big)));
        chunked.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        using (var undeclared = await _gateway.Client.SendAsync(request))
        {
            await AssertOpenAiErrorAsync(undeclared, 413, null);
        }

        Assert.Equal(0, _upstream.InferenceRequestCount);
    }

    [Fact]
    public async Task Deeply_nested_json_is_refused_not_crashed_on()
    {
        var hostile = """{"model":"chat","messages":[{"role":"user","content":"hi"}],"x":""" + new string('[', 5000) + new string(']', 5000) + "}";
        using var response = await _gateway.Client.PostAsync("/v1/chat/completions", new StringContent(hostile, Encoding.UTF8, "application/json"));
        await AssertOpenAiErrorAsync(response, 400, null);
        Assert.Equal(0, _upstream.InferenceRequestCount);
    }

    [Fact]
    public async Task Wrong_methods_are_refused()
    {
        using var get = await _gateway.Client.GetAsync("/v1/chat/completions");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, get.StatusCode);
        await AssertOpenAiErrorAsync(get, 405, null);
        Assert.Equal(0, _upstream.InferenceRequestCount);
    }

    /// <summary>An unknown URL is OpenAI's "Invalid URL" 404 with a body, as every other refusal.</summary>
    [Fact]
    public async Task Unknown_urls_get_openais_invalid_url_error()
    {
        foreach (var path in new[] { "/v1/chat/completion", "/v1/nothing/here", "/" })
        {
            using var response = await _gateway.Client.PostAsync(path, GatewayTestHost.Json("{}"));
            var text = await response.Content.ReadAsStringAsync();
            await AssertOpenAiErrorAsync(response, 404, null);
            Assert.Contains($"Invalid URL (POST {path})", text, StringComparison.Ordinal);
        }
    }

    private static async Task AssertOpenAiErrorAsync(HttpResponseMessage response, int status, string? param)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == (int)response.StatusCode, text);
        using var document = JsonDocument.Parse(text);
        var error = document.RootElement.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.True(error.TryGetProperty("code", out _));
        if (param is not null)
        {
            Assert.Equal(param, error.GetProperty("param").GetString());
        }
    }
}
