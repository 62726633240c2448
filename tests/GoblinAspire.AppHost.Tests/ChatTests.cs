using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using GoblinAspire.AppHost.Tests.Platform;
using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Responses;

namespace GoblinAspire.AppHost.Tests;

/// <summary>The platform with the ChatFallback looking at the registry every second, so a promotion shows at once.</summary>
public sealed class ChatPlatform : PlatformFixture
{
    protected override bool EnableDashboard => true;

    protected override void Configure(IDistributedApplicationTestingBuilder appHost) =>
        appHost.CreateResourceBuilder<ProjectResource>(PlatformResources.ChatFallback).WithEnvironment("ChatFallback__RegistryPollInterval", "00:00:01");
}

/// <summary>Chat through the gateway, answered on CPU by the ChatFallback from the model the AppHost put in production.</summary>
[Collection(WholePlatformCollection.Name)]
public sealed class ChatTests(ChatPlatform platform) : IClassFixture<ChatPlatform>
{
    private const string Question = """{"model":"goblin-chat","messages":[{"role":"user","content":"hello"}],"max_tokens":6}""";

    [Fact]
    public async Task The_official_openai_sdk_with_the_development_key_is_answered_by_the_chatfallback()
    {
        var baseUrl = new Uri(platform.App.GetEndpoint(PlatformResources.Gateway, PlatformResources.HttpEndpoint), "/v1");
        var client = new ChatClient("goblin-chat", new ApiKeyCredential(platform.DevelopmentKey), new OpenAIClientOptions { Endpoint = baseUrl });
        var result = await client.CompleteChatAsync([new UserChatMessage("hello")], new ChatCompletionOptions { MaxOutputTokenCount = 5 });
        ChatCompletion completion = result;
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.InRange(completion.Usage.OutputTokenCount, 1, 5);
        Assert.Equal(PlatformResources.ChatFallback, result.GetRawResponse().Headers.TryGetValue("x-goblin-provider", out var provider) ? provider : null);

        var streamed = 0;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("hello")], new ChatCompletionOptions { MaxOutputTokenCount = 5 }))
        {
            streamed += update.ContentUpdate.Count;
        }

        Assert.True(streamed > 0, "no content arrived in the stream");

        // The development key is a real virtual key: its spend is attributed to it.
        using var admin = platform.AdminClient();
        var keys = await PlatformFixture.ReadJsonAsync(await admin.GetAsync("/admin/keys?team=development"));
        Assert.Contains(keys.GetProperty("data").EnumerateArray(), k => k.GetProperty("name").GetString() == "development");
    }

    /// <summary>
    /// The Responses API end to end: the ChatFallback speaks chat completions only, so the gateway translates, streams
    /// included, and keeps the response in gatewaydb for the key that made it.
    /// </summary>
    [Fact]
    public async Task The_official_sdks_responses_are_answered_by_the_chatfallback_through_the_gateway()
    {
#pragma warning disable OPENAI001 // The SDK marks its Responses client as evaluation-only; the wire API is what is tested.
        var client = new ResponsesClient(new ApiKeyCredential(platform.DevelopmentKey), new ResponsesClientOptions { Endpoint = new Uri(platform.App.GetEndpoint(PlatformResources.Gateway, PlatformResources.HttpEndpoint), "/v1") });
        ResponseResult whole = await client.CreateResponseAsync(new CreateResponseOptions(PlatformResources.ChatModel, [ResponseItem.CreateUserMessageItem("hello")]) { MaxOutputTokenCount = 5 });
        Assert.InRange(whole.Usage.OutputTokenCount, 1, 5);
        Assert.Equal(whole.GetOutputText(), (await client.GetResponseAsync(whole.Id)).Value.GetOutputText());

        var deltas = 0;
        ResponseResult? completed = null;
        await foreach (var update in await client.CreateResponseStreamingAsync(new CreateResponseOptions(PlatformResources.ChatModel, [ResponseItem.CreateUserMessageItem("and again")]) { MaxOutputTokenCount = 5, PreviousResponseId = whole.Id, StreamingEnabled = true }))
        {
            switch (update)
            {
                case StreamingResponseOutputTextDeltaUpdate:
                    deltas++;
                    break;
                case StreamingResponseCompletedUpdate done:
                    completed = done.Response;
                    break;
                case StreamingResponseIncompleteUpdate incomplete:
                    completed = incomplete.Response;
                    break;
            }
        }

        Assert.True(deltas > 0, "no text arrived in the stream");
        Assert.Equal(whole.Id, Assert.IsType<ResponseResult>(completed).PreviousResponseId);
#pragma warning restore OPENAI001
    }

    /// <summary>Bad bytes from clients never count against the fallback: it cannot be knocked out by 50 of them.</summary>
    [Fact]
    public async Task Fifty_invalid_utf8_requests_leave_the_chatfallback_answering()
    {
        using var gateway = platform.Client(PlatformResources.Gateway, platform.DevelopmentKey);
        byte[] invalid = [.. "{\"model\":\"goblin-chat\",\"messages\":[{\"role\":\"user\",\"content\":\""u8.ToArray(), 0xC3, 0x28, .. "\"}]}"u8.ToArray()];
        var escaped = "{\"model\":\"goblin-chat\",\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}"u8.ToArray();
        for (var i = 0; i < 50; i++)
        {
            var content = new ByteArrayContent(i % 2 == 0 ? invalid : escaped);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var response = await gateway.PostAsync("/v1/chat/completions", content);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("invalid_encoding", (await PlatformFixture.ReadJsonAsync(response)).GetProperty("error").GetProperty("code").GetString());
        }

        using var good = await gateway.PostAsync("/v1/chat/completions", PlatformFixture.Json(Question));
        Assert.Equal(HttpStatusCode.OK, good.StatusCode);
        Assert.Equal(PlatformResources.ChatFallback, good.Headers.GetValues("x-goblin-provider").Single());
    }

    [Fact]
    public async Task A_chat_through_the_gateway_is_answered_by_the_chatfallback_with_usage()
    {
        using var gateway = platform.Client(PlatformResources.Gateway, platform.DevelopmentKey);
        using var response = await gateway.PostAsync("/v1/chat/completions", PlatformFixture.Json(Question));
        var body = await PlatformFixture.ReadJsonAsync(response);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}: {body}\n{platform.Output}");
        Assert.Equal(PlatformResources.ChatFallback, response.Headers.GetValues("x-goblin-provider").Single());
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.Equal("assistant", body.GetProperty("choices")[0].GetProperty("message").GetProperty("role").GetString());
        var usage = body.GetProperty("usage");
        Assert.True(usage.GetProperty("prompt_tokens").GetInt32() > 0);
        Assert.InRange(usage.GetProperty("completion_tokens").GetInt32(), 1, 6);
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task A_streamed_chat_arrives_as_server_sent_events_with_a_usage_chunk_and_done()
    {
        using var gateway = platform.Client(PlatformResources.Gateway, platform.DevelopmentKey);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = PlatformFixture.Json("""{"model":"goblin-chat","messages":[{"role":"user","content":"hello"}],"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}"""),
        };
        using var response = await gateway.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e, StringComparison.Ordinal));
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Contains(chunks, c => c.GetProperty("choices").GetArrayLength() > 0 && c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind == JsonValueKind.String);
        var usage = chunks[^1];
        Assert.Equal(0, usage.GetProperty("choices").GetArrayLength());
        Assert.InRange(usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 1, 5);
    }

    [Fact]
    public async Task A_promoted_version_replaces_the_served_model_without_dropping_a_request()
    {
        using var registry = platform.Client(PlatformResources.ModelRegistry);
        using var chatFallback = platform.Client(PlatformResources.ChatFallback);
        using var gateway = platform.Client(PlatformResources.Gateway, platform.DevelopmentKey);
        var production = await PlatformFixture.ReadJsonAsync(await registry.GetAsync($"/api/v1/models/{PlatformResources.ChatModel}/production"));
        var before = production.GetProperty("model_version").GetProperty("version").GetString();
        Assert.Contains($"registry:{PlatformResources.ChatModel}/{before}", await chatFallback.GetStringAsync("/health"), StringComparison.Ordinal);

        var file = Path.Combine(Directory.CreateTempSubdirectory("goblin-promote-").FullName, "goblin-chat-v2.gguf");
        SyntheticLlama.Writer(GgmlType.Q4_0, seed: 42, name: "promoted").Write(file);
        using var form = new MultipartFormDataContent();
        form.Add(PlatformFixture.Json("""{"description":"a retrained model","metrics":{"eval.accuracy":0.93}}"""), "metadata");
        var artifact = new ByteArrayContent(await File.ReadAllBytesAsync(file));
        artifact.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(artifact, "artifact", Path.GetFileName(file));
        using var registered = await registry.PostAsync($"/api/v1/models/{PlatformResources.ChatModel}/versions", form);
        Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
        var version = (await PlatformFixture.ReadJsonAsync(registered)).GetProperty("model_version").GetProperty("version").GetString()!;

        // Requests run back to back through the gateway from before the promotion until after the new version serves.
        using var done = new CancellationTokenSource();
        var answered = 0;
        var failures = new List<string>();
        var traffic = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                using var response = await gateway.PostAsync("/v1/chat/completions", PlatformFixture.Json(Question));
                if (response.StatusCode != HttpStatusCode.OK || response.Headers.GetValues("x-goblin-provider").Single() != PlatformResources.ChatFallback)
                {
                    failures.Add($"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }

                Interlocked.Increment(ref answered);
            }
        });
        await Eventually.HoldsAsync(() => Task.FromResult(Volatile.Read(ref answered) > 0), TimeSpan.FromSeconds(30), "traffic flowing");

        // The dashboard's command, as a platform engineer would click it: it promotes the newest version.
        var registryId = (await platform.ReplicasAsync(PlatformResources.ModelRegistry)).Single().ResourceId;
        var promoted = await platform.App.ResourceCommands.ExecuteCommandAsync(registryId, Operations.RegistryOperations.PromoteCommand);
        Assert.True(promoted.Success, promoted.Message);
        await Eventually.HoldsAsync(async () => (await chatFallback.GetStringAsync("/health")).Contains($"registry:{PlatformResources.ChatModel}/{version}", StringComparison.Ordinal), TimeSpan.FromSeconds(60), $"version {version} served");
        var atSwap = Volatile.Read(ref answered);
        await Eventually.HoldsAsync(() => Task.FromResult(Volatile.Read(ref answered) > atSwap + 2), TimeSpan.FromSeconds(30), "traffic after the swap");
        await done.CancelAsync();
        await traffic;
        Assert.Empty(failures);

        // And the rollback command puts the version before back.
        var rolledBack = await platform.App.ResourceCommands.ExecuteCommandAsync(registryId, Operations.RegistryOperations.RollbackCommand);
        Assert.True(rolledBack.Success, rolledBack.Message);
        production = await PlatformFixture.ReadJsonAsync(await registry.GetAsync($"/api/v1/models/{PlatformResources.ChatModel}/production"));
        Assert.Equal(before, production.GetProperty("model_version").GetProperty("version").GetString());
    }

    [Fact]
    public async Task The_gateway_command_creates_a_virtual_key_that_works()
    {
        var gatewayId = (await platform.ReplicasAsync(PlatformResources.Gateway))[0].ResourceId;
        var result = await platform.App.ResourceCommands.ExecuteCommandAsync(gatewayId, Operations.GatewayOperations.CreateKeyCommand);
        Assert.True(result.Success, result.Message);
        var key = result.Data?.Value;
        Assert.StartsWith("sk-goblin-", key, StringComparison.Ordinal);
        using var gateway = platform.Client(PlatformResources.Gateway, key);
        using var response = await gateway.PostAsync("/v1/chat/completions", PlatformFixture.Json(Question));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
