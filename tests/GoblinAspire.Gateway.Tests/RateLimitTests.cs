using System.Net;
using System.Text.Json;
using GoblinAspire.Gateway.RateLimiting;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.Gateway.Tests;

/// <summary>Limits enforced together by several gateway replicas through one real Redis.</summary>
[Collection(PlatformServers.Collection)]
public sealed class RateLimitTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly OpenAiStandIn _upstream = new();

    public Task InitializeAsync() => _upstream.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    /// <summary>Windows are ten minutes long in these tests; start a test well inside one.</summary>
    private static async Task AwayFromWindowEdgeAsync()
    {
        var intoWindow = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() % 600_000;
        if (intoWindow > 570_000)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(600_000 - intoWindow + 500));
        }
    }

    [Fact]
    public async Task Two_replicas_sharing_redis_accept_exactly_the_limit()
    {
        await AwayFromWindowEdgeAsync();
        await using var first = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: true));
        await using var second = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: true));
        var (_, key) = await AccessTests.CreateKeyAsync(first.Client, new { rpm = 60 });

        var responses = await Task.WhenAll(Enumerable.Range(0, 100).Select(async i =>
        {
            using var response = await AccessTests.ChatWithKeyAsync((i % 2 == 0 ? first : second).Client, key);
            return (response.StatusCode, RetryAfter: response.Headers.RetryAfter?.Delta, Remaining: response.Headers.TryGetValues("x-ratelimit-remaining-requests", out var r) ? r.Single() : null, Body: await response.Content.ReadAsStringAsync());
        }));

        Assert.Equal(60, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        var refused = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.Equal(40, refused.Count);
        Assert.All(refused, r =>
        {
            Assert.NotNull(r.RetryAfter);
            Assert.Equal("0", r.Remaining);
            using var document = JsonDocument.Parse(r.Body);
            Assert.Equal("rate_limit_exceeded", document.RootElement.GetProperty("error").GetProperty("code").GetString());
        });
        Assert.Contains(responses, r => r.StatusCode == HttpStatusCode.OK && r.Remaining == "0");
    }

    [Fact]
    public async Task Concurrent_long_requests_cannot_overshoot_the_token_limit()
    {
        await AwayFromWindowEdgeAsync();
        _upstream.PauseAfterFirstEvent = true;
        await using var gateway = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: true));
        var (_, key) = await AccessTests.CreateKeyAsync(gateway.Client, new { tpm = 1000 });

        // Each asks for up to 300 completion tokens; three fit in 1000 tokens, a fourth would not.
        var pending = Enumerable.Range(0, 10).Select(_ => AccessTests.ChatWithKeyAsync(gateway.Client, key, extra: ""","max_tokens":300,"stream":true""")).ToList();
        await Eventually.HoldsAsync(() => Task.FromResult(pending.Count(t => t.IsCompleted) >= 7), TimeSpan.FromSeconds(10), "the refusals");
        _upstream.ReleaseStream.TrySetResult();
        var responses = await Task.WhenAll(pending);

        Assert.Equal(3, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        var refused = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.Equal(7, refused.Count);
        using var document = JsonDocument.Parse(await refused[0].Content.ReadAsStringAsync());
        Assert.Equal("tokens", document.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("1000", refused[0].Headers.GetValues("x-ratelimit-limit-tokens").Single());
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task Parallel_requests_beyond_the_limit_are_refused_and_slots_come_back()
    {
        _upstream.PauseAfterFirstEvent = true;
        await using var gateway = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: true));
        var (_, key) = await AccessTests.CreateKeyAsync(gateway.Client, new { max_parallel = 2 });

        var pending = Enumerable.Range(0, 5).Select(_ => AccessTests.ChatWithKeyAsync(gateway.Client, key, extra: ""","stream":true""")).ToList();
        await Eventually.HoldsAsync(() => Task.FromResult(pending.Count(t => t.IsCompleted) >= 3), TimeSpan.FromSeconds(10), "the refusals");
        _upstream.ReleaseStream.TrySetResult();
        var responses = await Task.WhenAll(pending);
        Assert.Equal(2, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.Equal(3, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));

        _upstream.PauseAfterFirstEvent = false;
        // Slots are released just after each answer ends, off the request path.
        await Eventually.HoldsAsync(async () => (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(5), "a freed slot");
    }

    [Fact]
    public async Task Without_redis_the_gateway_fails_open_to_local_limits_and_recovers_when_redis_returns()
    {
        await AwayFromWindowEdgeAsync();
        await using var redis = await RedisServer.StartAsync();
        var logs = new CapturingLoggerProvider();
        await using var gateway = await GatewayTestHost.StartAsync(
            AccessTests.Config(servers, _upstream, requireKeys: true, redis: redis.ConnectionString).Set($"Logging__LogLevel__{typeof(DistributedRateLimiter).FullName}", "Information"),
            builder => builder.Logging.AddProvider(logs));
        var (_, key) = await AccessTests.CreateKeyAsync(gateway.Client, new { rpm = 3 });
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode);
        }

        Assert.Equal(HttpStatusCode.TooManyRequests, (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode);
        var shared = await gateway.Client.GetStringAsync("/metrics");
        Assert.Matches("(?m)^rate_limit_admission_seconds_count\\{[^}]*\\} 4$", shared);
        Assert.DoesNotContain("rate_limit_fallbacks_total{", shared, StringComparison.Ordinal);
        Assert.Empty(LimiterLines(logs));

        await redis.StopAsync();
        // The local limiter starts its own count: the gateway keeps answering, never hanging on Redis.
        var started = DateTime.UtcNow;
        using (var local = await AccessTests.ChatWithKeyAsync(gateway.Client, key))
        {
            Assert.Equal(HttpStatusCode.OK, local.StatusCode);
        }

        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode);
        }

        Assert.Equal(HttpStatusCode.TooManyRequests, (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode);
        // Operators see the outage: every request decided locally is counted, and it is logged once, not per request.
        await MetricsShowAsync(gateway.Client, "(?m)^rate_limit_fallbacks_total\\{[^}]*mode=\"open\"[^}]*\\} [1-9][0-9]*$");
        Assert.Single(LimiterLines(logs), l => l.Contains("Warning: Rate limits are no longer shared", StringComparison.Ordinal));

        // Readiness stays 200 (a probe must not pull a replica that serves), Degraded and naming Redis.
        await Eventually.HoldsAsync(async () =>
        {
            using var health = await gateway.Client.GetAsync("/health");
            using var report = System.Text.Json.JsonDocument.Parse(await health.Content.ReadAsStringAsync());
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            return report.RootElement.GetProperty("status").GetString() == "Degraded"
                && report.RootElement.GetProperty("checks").GetProperty("redis").GetProperty("status").GetString() == "Degraded";
        }, TimeSpan.FromSeconds(20), "readiness Degraded with Redis named");

        await redis.StartAgainAsync();
        // Redis came back empty (no persistence): the shared count restarts there and is enforced again.
        // The local count is spent, so every OK from here on was admitted by Redis.
        await Eventually.HoldsAsync(async () => (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "Redis to be used again");
        var admitted = 1;
        while (admitted <= 3 && (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode == HttpStatusCode.OK)
        {
            admitted++;
        }

        // An admission whose answer outlived RedisTimeout while Redis was coming back still counts there (the
        // request itself fell back to the spent local count), so Redis may admit fewer than three, never more.
        Assert.InRange(admitted, 1, 3);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode);
        Assert.Contains(LimiterLines(logs), l => l.Contains("Information: Rate limits are shared through Redis again", StringComparison.Ordinal));
    }

    /// <summary>Redis killed and brought back while four clients keep sending: not one answer is a 5xx.</summary>
    [Fact]
    public async Task Redis_killed_under_load_gives_no_5xx()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var gateway = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: true, redis: redis.ConnectionString));
        var (_, key) = await AccessTests.CreateKeyAsync(gateway.Client, new { rpm = 1_000_000 });
        var statuses = new System.Collections.Concurrent.ConcurrentQueue<int>();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(8));
        var clients = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var response = await AccessTests.ChatWithKeyAsync(gateway.Client, key);
                statuses.Enqueue((int)response.StatusCode);
            }
        })).ToList();
        await Task.Delay(TimeSpan.FromSeconds(2));
        await redis.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(2));
        await redis.StartAgainAsync();
        await Task.WhenAll(clients);

        Assert.True(statuses.Count > 20, $"only {statuses.Count} requests");
        Assert.DoesNotContain(statuses, s => s >= 500);
    }

    /// <summary>The scrape endpoint caches its answer briefly, so a new count may take a moment to show.</summary>
    private static Task MetricsShowAsync(HttpClient client, string pattern) =>
        Eventually.HoldsAsync(async () => System.Text.RegularExpressions.Regex.IsMatch(await client.GetStringAsync("/metrics"), pattern), TimeSpan.FromSeconds(5), pattern);

    private static List<string> LimiterLines(CapturingLoggerProvider logs) =>
        logs.Lines.Where(l => l.StartsWith(typeof(DistributedRateLimiter).FullName!, StringComparison.Ordinal)).ToList();

    [Fact]
    public async Task Fail_closed_refuses_with_503_while_redis_is_away()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var gateway = await GatewayTestHost.StartAsync(AccessTests.Config(servers, _upstream, requireKeys: true, redis: redis.ConnectionString).Set("Gateway__Access__RedisFailureMode", "closed"));
        var (_, key) = await AccessTests.CreateKeyAsync(gateway.Client, new { rpm = 100 });
        Assert.Equal(HttpStatusCode.OK, (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode);

        await redis.StopAsync();
        using var refused = await AccessTests.ChatWithKeyAsync(gateway.Client, key);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter);
        await MetricsShowAsync(gateway.Client, "(?m)^rate_limit_fallbacks_total\\{[^}]*mode=\"closed\"[^}]*\\} 1$");

        await redis.StartAgainAsync();
        await Eventually.HoldsAsync(async () => (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "Redis to be used again");
    }
}

[Collection(PlatformServers.Collection)]
public sealed class ProviderLimitTests(PlatformServers servers)
{
    [Fact]
    public async Task A_provider_over_the_gateways_own_limit_is_skipped_for_the_next_one_without_a_call()
    {
        var intoWindow = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() % 600_000;
        if (intoWindow > 570_000)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(600_000 - intoWindow + 500));
        }

        await using var limited = new OpenAiStandIn();
        await using var fallback = new OpenAiStandIn();
        await limited.StartAsync();
        await fallback.StartAsync();
        var name = "limited-" + Guid.NewGuid().ToString("N")[..8];
        await using var gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Set("Gateway__Access__RateWindow", "00:10:00")
            .Provider(name, "openai", limited.Url, "chat", priority: 0, extra: [("Rpm", "2")])
            .Provider("fallback", "openai", fallback.Url, "chat", priority: 1));

        var served = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await gateway.Client.ChatAsync("chat");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            served.Add(response.Headers.GetValues("x-goblin-provider").Single());
        }

        Assert.Equal([name, name, "fallback", "fallback"], served);
        Assert.Equal(2, limited.InferenceRequestCount);
    }
}
