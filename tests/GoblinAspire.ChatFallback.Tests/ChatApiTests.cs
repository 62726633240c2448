using System.Net;
using System.Text;
using System.Text.Json;
using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Serving;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace GoblinAspire.ChatFallback.Tests;

/// <summary>The OpenAI API over HTTP, answered from a generated model file.</summary>
public sealed class ChatApiTests : IAsyncLifetime
{
    private static readonly string ModelPath = TestModels.Create(GgmlType.Q4_0);
    private TestWebHost _host = null!;

    private HttpClient Http => _host.Client;

    public async Task InitializeAsync()
    {
        _host = await StartAsync(new() { ["ChatFallback__ModelPath"] = ModelPath, ["ChatFallback__MaxQueueLength"] = "0", ["ChatFallback__ModelAliases__0"] = "any" });
        await ChatApiTests.ModelLoadedAsync(Http, TimeSpan.FromSeconds(20));
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    /// <summary>
    /// Waits for the report's overall status to be Healthy, which needs the model loaded: other checks are Healthy in
    /// the same body from the start, so the text "Healthy" alone says nothing about the model.
    /// </summary>
    internal static Task ModelLoadedAsync(HttpClient client, TimeSpan timeout) =>
        Eventually.HoldsAsync(
            async () =>
            {
                using var report = JsonDocument.Parse(await client.GetStringAsync("/health"));
                return report.RootElement.GetProperty("status").GetString() == "Healthy";
            },
            timeout,
            "the model to load");

    internal static async Task<TestWebHost> StartAsync(Dictionary<string, string?> settings)
    {
        settings["Logging__LogLevel__Default"] = "Warning";
        return await TestWebHost.StartAsync(ChatFallbackApp.Build([], builder => TestWebHost.Configure(builder, settings)));
    }

    /// <summary>Bad bytes and bad escapes are the client's error: 400 in OpenAI's shape, never a 500 the gateway would count.</summary>
    [Fact]
    public async Task Invalid_utf8_and_lone_surrogates_are_400_invalid_encoding()
    {
        byte[] invalid = [.. "{\"messages\":[{\"role\":\"user\",\"content\":\""u8.ToArray(), 0xC3, 0x28, 0xFF, .. "\"}],\"max_tokens\":2}"u8.ToArray()];
        foreach (var body in new[] { invalid, "{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}],\"max_tokens\":2}"u8.ToArray() })
        {
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            using var response = await Http.PostAsync("/v1/chat/completions", content);
            var error = (await ReadAsync(response, HttpStatusCode.BadRequest)).GetProperty("error");
            Assert.Equal("invalid_encoding", error.GetProperty("code").GetString());
        }
    }

    /// <summary>Only the served model, its registered name and its aliases are answered; anything else is OpenAI's 404.</summary>
    [Fact]
    public async Task An_unknown_model_name_is_openais_404_model_not_found()
    {
        await Eventually.HoldsAsync(async () => (await Http.GetStringAsync("/v1/models")).Contains("\"id\"", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "the model loaded");
        using var response = await Http.PostAsync("/v1/chat/completions", Json("""{"model":"no-such-model-xyz","messages":[{"role":"user","content":"hi"}],"max_tokens":2}"""));
        var error = (await ReadAsync(response, HttpStatusCode.NotFound)).GetProperty("error");
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
        Assert.Equal("model", error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }

    [Fact]
    public async Task Health_names_the_model_and_models_lists_it()
    {
        var health = JsonDocument.Parse(await Http.GetStringAsync("/health")).RootElement.GetProperty("checks").GetProperty("model");
        Assert.Equal("Healthy", health.GetProperty("status").GetString());
        Assert.Contains("synthetic-q4_0", health.GetProperty("description").GetString(), StringComparison.Ordinal);
        var models = JsonDocument.Parse(await Http.GetStringAsync("/v1/models")).RootElement;
        Assert.Equal("synthetic-q4_0", models.GetProperty("data")[0].GetProperty("id").GetString());
    }

    [Fact]
    public async Task Chat_answers_with_usage_and_the_same_seed_gives_the_same_answer()
    {
        const string Body = """{"model":"any","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hello world"}],"max_tokens":12,"temperature":0.8,"seed":42}""";
        var first = await ChatAsync(Body);
        Assert.Equal("chat.completion", first.GetProperty("object").GetString());
        var choice = first.GetProperty("choices")[0];
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Contains(choice.GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
        var usage = first.GetProperty("usage");
        Assert.True(usage.GetProperty("prompt_tokens").GetInt32() > 5);
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
        var second = await ChatAsync(Body);
        Assert.Equal(choice.GetProperty("message").GetProperty("content").GetString(), second.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());

        var completion = await ReadAsync(await Http.PostAsync("/v1/completions", Json("""{"prompt":"hello","max_tokens":5,"temperature":0}""")), HttpStatusCode.OK);
        Assert.Equal("text_completion", completion.GetProperty("object").GetString());
        Assert.Equal(5, completion.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Streaming_uses_sse_framing_with_a_role_chunk_a_finish_chunk_usage_and_done()
    {
        using var response = await Http.PostAsync("/v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hello"}],"max_tokens":8,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var body = await response.Content.ReadAsStringAsync();
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e, StringComparison.Ordinal));
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        var finish = chunks[^2].GetProperty("choices")[0];
        Assert.Contains(finish.GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
        Assert.Equal(0, chunks[^1].GetProperty("choices").GetArrayLength());
        Assert.True(chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32() is > 0 and <= 8);

        var streamed = string.Concat(chunks.Skip(1).SkipLast(2).Select(c => c.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()));
        var whole = await ChatAsync("""{"messages":[{"role":"user","content":"hello"}],"max_tokens":8,"temperature":0}""");
        Assert.Equal(whole.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), streamed);
    }

    [Theory]
    [InlineData("{not json", 400, null)]
    [InlineData("[]", 400, null)]
    [InlineData("""{"messages":[]}""", 400, "messages")]
    [InlineData("""{"messages":[{"role":"wizard","content":"x"}]}""", 400, "messages[0].role")]
    [InlineData("""{"messages":[{"role":"user","content":{"evil":true}}]}""", 400, "messages[0].content")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}""", 400, "temperature")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"temperature":5}""", 400, "temperature")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"max_tokens":0}""", 400, "max_tokens")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"n":3}""", 400, "n")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"stop":[1,2]}""", 400, "stop")]
    public async Task Bad_requests_get_openai_errors(string body, int status, string? param)
    {
        var error = (await ReadAsync(await Http.PostAsync("/v1/chat/completions", Json(body)), (HttpStatusCode)status)).GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        if (param is not null)
        {
            Assert.Equal(param, error.GetProperty("param").GetString());
        }
    }

    [Fact]
    public async Task Oversized_bodies_and_overlong_prompts_are_refused()
    {
        var huge = "{\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('a', 1_100_000) + "\"}]}";
        Assert.Equal("request_too_large", (await ReadAsync(await Http.PostAsync("/v1/chat/completions", Json(huge)), HttpStatusCode.RequestEntityTooLarge)).GetProperty("error").GetProperty("code").GetString());
        var longPrompt = JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = string.Join(' ', Enumerable.Repeat("word", 400)) } } });
        Assert.Equal("context_length_exceeded", (await ReadAsync(await Http.PostAsync("/v1/chat/completions", Json(longPrompt)), HttpStatusCode.BadRequest)).GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task A_full_queue_answers_429_with_retry_after()
    {
        // Hold the only slot, as a long generation would; the queue length is 0.
        using var held = await _host.Services.GetRequiredService<GenerationGate>().EnterAsync(CancellationToken.None);
        using var refused = await Http.PostAsync("/v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"""));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter);
        Assert.Equal("rate_limit_error", JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("type").GetString());
    }

    private async Task<JsonElement> ChatAsync(string body) => await ReadAsync(await Http.PostAsync("/v1/chat/completions", Json(body)), HttpStatusCode.OK);

    internal static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    internal static async Task<JsonElement> ReadAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == expected, $"expected {expected}, got {(int)response.StatusCode}: {text}");
            return JsonDocument.Parse(text).RootElement.Clone();
        }
    }
}
