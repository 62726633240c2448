using System.Net;
using System.Text.Json;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;

namespace GoblinAspire.Gateway.Tests;

[Collection(PlatformServers.Collection)]
public sealed class RoutingTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly OpenAiStandIn _a = new();
    private readonly OpenAiStandIn _b = new();
    private readonly OpenAiStandIn _c = new();

    public async Task InitializeAsync()
    {
        await _a.StartAsync();
        await _b.StartAsync();
        await _c.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        await _c.DisposeAsync();
    }

    private Task<TestWebHost> StartAsync(string strategy, Action<GatewayConfig>? more = null)
    {
        var config = new GatewayConfig(servers)
            .Set("Gateway__Routing__Models__chat", strategy)
            .Provider("a", "openai", _a.Url, "chat", priority: 2, extra: [("InputPricePer1K", "0.5"), ("OutputPricePer1K", "1.5"), ("Weight", "0")])
            .Provider("b", "openai", _b.Url, "chat", priority: 1, extra: [("InputPricePer1K", "0.05"), ("OutputPricePer1K", "0.10"), ("Weight", "3")])
            .Provider("c", "openai", _c.Url, "chat", priority: 3, extra: [("InputPricePer1K", "0.2"), ("OutputPricePer1K", "0.2"), ("Weight", "1")]);
        more?.Invoke(config);
        return GatewayTestHost.StartAsync(config);
    }

    private static async Task<List<string>> ProvidersForAsync(TestWebHost gateway, int requests, string? strategyHeader = null)
    {
        var served = new List<string>();
        for (var i = 0; i < requests; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayTestHost.Json("""{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":100}""") };
            if (strategyHeader is not null)
            {
                request.Headers.Add("x-goblin-routing-strategy", strategyHeader);
            }

            using var response = await gateway.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            served.Add(response.Headers.GetValues("x-goblin-provider").Single());
        }

        return served;
    }

    [Fact]
    public async Task Failover_follows_priority()
    {
        await using var gateway = await StartAsync("failover");
        Assert.All(await ProvidersForAsync(gateway, 3), p => Assert.Equal("b", p));
    }

    [Fact]
    public async Task Round_robin_takes_turns()
    {
        await using var gateway = await StartAsync("round-robin");
        var served = await ProvidersForAsync(gateway, 6);
        Assert.Equal(2, served.Count(p => p == "a"));
        Assert.Equal(2, served.Count(p => p == "b"));
        Assert.Equal(2, served.Count(p => p == "c"));
        Assert.NotEqual(served[0], served[1]);
    }

    [Fact]
    public async Task Weighted_random_never_picks_a_zero_weight_and_favours_the_heavy_one()
    {
        await using var gateway = await StartAsync("weighted-random");
        var served = await ProvidersForAsync(gateway, 40);
        Assert.DoesNotContain("a", served);
        Assert.True(served.Count(p => p == "b") > served.Count(p => p == "c"), string.Join(",", served));
    }

    [Fact]
    public async Task Lowest_cost_picks_the_cheapest_expected_price()
    {
        await using var gateway = await StartAsync("lowest-cost");
        Assert.All(await ProvidersForAsync(gateway, 3), p => Assert.Equal("b", p));
    }

    [Fact]
    public async Task Lowest_latency_moves_to_the_fastest_once_measured()
    {
        _b.DefaultBehaviour = Behaviour.SlowStream;
        await using var gateway = await StartAsync("lowest-latency");
        // Streams measure time to first token; b waits 200 ms per chunk and so is slowest.
        for (var i = 0; i < 6; i++)
        {
            using var response = await gateway.Client.ChatAsync("chat", stream: true);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using var providers = JsonDocument.Parse(await gateway.Client.GetStringAsync("/providers"));
        Assert.True(providers.RootElement.GetProperty("b").GetProperty("latency_ms").GetDouble() > providers.RootElement.GetProperty("a").GetProperty("latency_ms").GetDouble());
        var served = await ProvidersForAsync(gateway, 3);
        Assert.DoesNotContain("b", served);
    }

    [Fact]
    public async Task A_header_overrides_the_strategy_and_an_unknown_one_is_rejected()
    {
        await using var gateway = await StartAsync("failover");
        Assert.Contains("a", await ProvidersForAsync(gateway, 6, "round-robin"));

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayTestHost.Json("""{"model":"chat","messages":[{"role":"user","content":"hi"}]}""") };
        request.Headers.Add("x-goblin-routing-strategy", "cheapest-please");
        using var response = await gateway.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("x-goblin-routing-strategy", document.RootElement.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Candidates_are_filtered_by_capability_and_context_length()
    {
        await using var gateway = await StartAsync("failover", config => config
            .Provider("embedder", "openai", _c.Url, "embed-small", extra: [("Models__0__Capabilities__0", "embeddings")])
            .Provider("tiny", "openai", _c.Url, "tiny", extra: [("Models__0__ContextLength", "16"), ("Models__0__Capabilities__0", "chat")]));

        using var embeddingsOnChatModel = await gateway.Client.PostAsync("/v1/embeddings", GatewayTestHost.Json("""{"model":"chat","input":"x"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, embeddingsOnChatModel.StatusCode);

        using var chatOnEmbedder = await gateway.Client.ChatAsync("embed-small");
        Assert.Equal(HttpStatusCode.BadRequest, chatOnEmbedder.StatusCode);

        using var streamOnTiny = await gateway.Client.ChatAsync("tiny", stream: true);
        Assert.Equal(HttpStatusCode.BadRequest, streamOnTiny.StatusCode);

        using var tooLong = await gateway.Client.ChatAsync("tiny", new string('x', 400));
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
        using var document = JsonDocument.Parse(await tooLong.Content.ReadAsStringAsync());
        Assert.Equal("context_length_exceeded", document.RootElement.GetProperty("error").GetProperty("code").GetString());

        using var embedding = await gateway.Client.PostAsync("/v1/embeddings", GatewayTestHost.Json("""{"model":"embed-small","input":"x"}"""));
        Assert.Equal(HttpStatusCode.OK, embedding.StatusCode);
    }
}
