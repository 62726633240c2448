using System.Net;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;

namespace GoblinAspire.Gateway.Tests;

/// <summary>The exact-match response cache: L1 per replica, L2 in the shared Redis, scoped per team.</summary>
[Collection(PlatformServers.Collection)]
public sealed class CacheTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly OpenAiStandIn _upstream = new();

    public Task InitializeAsync() => _upstream.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private static string Unique() => Guid.NewGuid().ToString("N");

    private static async Task<(HttpStatusCode Status, string? Cache, string Body)> AskAsync(HttpClient client, string? key, string text, bool stream = false, string temperature = "0", string? header = null, string extra = "")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = GatewayTestHost.Json($$"""{"model":"chat","temperature":{{temperature}},"messages":[{"role":"user","content":"{{text}}"}],"stream":{{(stream ? "true" : "false")}}{{extra}}}"""),
        };
        if (key is not null)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        }

        if (header is not null)
        {
            request.Headers.Add("x-goblin-cache", header);
        }

        using var response = await client.SendAsync(request);
        return (response.StatusCode, response.Headers.TryGetValues("x-goblin-cache", out var values) ? values.Single() : null, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_deterministic_request_is_answered_from_cache_with_an_identical_body()
    {
        await using var gateway = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: false));
        var text = Unique();
        var miss = await AskAsync(gateway.Client, null, text);
        var hit = await AskAsync(gateway.Client, null, text, extra: ""","user":"someone-else" """);

        Assert.Equal("miss", miss.Cache);
        Assert.Equal("hit", hit.Cache);
        Assert.Equal(miss.Body, hit.Body);
        Assert.Equal(1, _upstream.Requests.Count(r => r.BodyText.Contains(text, StringComparison.Ordinal)));
        Assert.Matches("(?m)^cache_requests_total\\{[^}]*result=\"hit\"[^}]*\\} 1", await gateway.Client.GetStringAsync("/metrics"));
    }

    [Fact]
    public async Task A_streamed_answer_is_replayed_as_the_same_valid_sse()
    {
        await using var gateway = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: false));
        var text = Unique();
        var miss = await AskAsync(gateway.Client, null, $"one two {text}", stream: true);
        var hit = await AskAsync(gateway.Client, null, $"one two {text}", stream: true);

        Assert.Equal("hit", hit.Cache);
        Assert.Equal(miss.Body, hit.Body);
        var events = GatewayTestHost.SseData(hit.Body);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal($"echo: one two {text}", StreamText.Of(hit.Body));
    }

    [Fact]
    public async Task Teams_never_share_entries()
    {
        await using var gateway = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: true));
        var (_, red) = await AccessTests.CreateKeyAsync(gateway.Client, new { team = "red" });
        var (_, blue) = await AccessTests.CreateKeyAsync(gateway.Client, new { team = "blue" });
        var text = Unique();
        Assert.Equal("miss", (await AskAsync(gateway.Client, red, text)).Cache);
        Assert.Equal("miss", (await AskAsync(gateway.Client, blue, text)).Cache);
        Assert.Equal("hit", (await AskAsync(gateway.Client, red, text)).Cache);
        Assert.Equal(2, _upstream.Requests.Count(r => r.BodyText.Contains(text, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Errors_are_never_cached_and_non_deterministic_requests_only_with_force()
    {
        await using var gateway = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: false));
        var text = Unique();
        _upstream.Script(Behaviour.BadRequest);
        Assert.Equal(HttpStatusCode.BadRequest, (await AskAsync(gateway.Client, null, text)).Status);
        var afterError = await AskAsync(gateway.Client, null, text);
        Assert.Equal(HttpStatusCode.OK, afterError.Status);
        Assert.Equal("miss", afterError.Cache);

        var warm = Unique();
        Assert.Null((await AskAsync(gateway.Client, null, warm, temperature: "0.7")).Cache);
        Assert.Null((await AskAsync(gateway.Client, null, warm, temperature: "0.7")).Cache);
        Assert.Equal("miss", (await AskAsync(gateway.Client, null, warm, temperature: "0.7", header: "force")).Cache);
        Assert.Equal("hit", (await AskAsync(gateway.Client, null, warm, temperature: "0.7", header: "force")).Cache);

        var bypassed = await AskAsync(gateway.Client, null, text, header: "bypass");
        Assert.Null(bypassed.Cache);
    }

    [Fact]
    public async Task A_second_replica_is_answered_from_the_shared_redis_entry()
    {
        await using var first = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: false));
        await using var second = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: false));
        var text = Unique();
        var miss = await AskAsync(first.Client, null, text);
        var hit = await AskAsync(second.Client, null, text);
        Assert.Equal("miss", miss.Cache);
        Assert.Equal("hit", hit.Cache);
        Assert.Equal(miss.Body, hit.Body);
    }
}
