using System.Net;
using System.Text.Json;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;

namespace GoblinAspire.Gateway.Tests;

/// <summary>A primary that misbehaves in each way a provider can, and a fallback that answers.</summary>
[Collection(PlatformServers.Collection)]
public sealed class FailoverTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly OpenAiStandIn _primary = new();
    private readonly OpenAiStandIn _fallback = new();
    private TestWebHost _gateway = null!;

    public async Task InitializeAsync()
    {
        await _primary.StartAsync();
        await _fallback.StartAsync();

        // The stall cases wait out the first-token timeout; 3 s keeps them quick and still leaves a loaded CI
        // machine time to deliver the request to the primary before the gateway gives up on it.
        _gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("primary", "openai", _primary.Url, "chat", priority: 0, extra: [("FirstTokenTimeout", "00:00:03"), ("Timeout", "00:01:00"), ("CircuitBreaker__MinimumThroughput", "100")])
            .Provider("fallback", "openai", _fallback.Url, "chat", priority: 1));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _primary.DisposeAsync();
        await _fallback.DisposeAsync();
    }

    [Theory]
    [InlineData(Behaviour.ServerError, false)]
    [InlineData(Behaviour.Overloaded, false)]
    [InlineData(Behaviour.ResetConnection, false)]
    [InlineData(Behaviour.Stall, true)]
    [InlineData(Behaviour.StallAfterFirstChunk, true)]
    [InlineData(Behaviour.ServerError, true)]
    [InlineData(Behaviour.ResetConnection, true)]
    public async Task A_failure_before_the_first_byte_moves_to_the_next_provider(Behaviour failure, bool stream)
    {
        // The stalled stream pauses before the client sees anything, so it too is a failure before the first byte.
        _primary.Script(failure == Behaviour.StallAfterFirstChunk ? Behaviour.Stall : failure);
        using var response = await _gateway.Client.ChatAsync("chat", stream: stream);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("fallback", response.Headers.GetValues("x-goblin-provider").Single());
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains("echo: hello there", stream ? StreamText.Of(body) : body, StringComparison.Ordinal);
        Assert.Equal(1, _primary.InferenceRequestCount);
        Assert.Equal(1, _fallback.InferenceRequestCount);
    }

    [Fact]
    public async Task A_429_cools_the_provider_down_for_its_retry_after_and_the_fallback_answers()
    {
        _primary.RetryAfterSeconds = 30;
        _primary.Script(Behaviour.RateLimited);
        using var first = await _gateway.Client.ChatAsync("chat");
        Assert.Equal("fallback", first.Headers.GetValues("x-goblin-provider").Single());

        // While it cools down the primary is tried last, so the next request goes straight to the fallback.
        using var second = await _gateway.Client.ChatAsync("chat");
        Assert.Equal("fallback", second.Headers.GetValues("x-goblin-provider").Single());
        Assert.Equal(1, _primary.InferenceRequestCount);

        using var providers = JsonDocument.Parse(await _gateway.Client.GetStringAsync("/providers"));
        var primary = providers.RootElement.GetProperty("primary");
        Assert.Equal("rate_limited", primary.GetProperty("status").GetString());
        Assert.InRange(primary.GetProperty("retry_after_s").GetDouble(), 25, 30);
    }

    [Fact]
    public async Task After_the_first_byte_a_failure_ends_the_stream_with_an_error_event_and_is_never_retried()
    {
        _primary.Script(Behaviour.BreakAfterFirstChunk);
        using var response = await _gateway.Client.ChatAsync("chat", "one two three", stream: true);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var raw = await response.Content.ReadAsStringAsync();
        var events = GatewayTestHost.SseData(raw);
        Assert.True(events.Count >= 2, raw);
        Assert.Contains("echo:", events[0], StringComparison.Ordinal);
        Assert.DoesNotContain("[DONE]", events);
        using var error = JsonDocument.Parse(events[^1]);
        Assert.Equal("server_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(0, _fallback.InferenceRequestCount);
    }

    [Fact]
    public async Task When_every_provider_fails_the_client_gets_one_openai_error_naming_them()
    {
        _primary.Script(Behaviour.ServerError);
        _fallback.Script(Behaviour.ResetConnection);
        using var response = await _gateway.Client.ChatAsync("chat");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = document.RootElement.GetProperty("error");
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.Contains("primary: server_error (HTTP 500)", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("fallback:", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task When_every_provider_is_rate_limited_the_client_gets_429_with_retry_after()
    {
        _primary.RetryAfterSeconds = 3;
        _fallback.RetryAfterSeconds = 9;
        _primary.Script(Behaviour.RateLimited);
        _fallback.Script(Behaviour.RateLimited);
        using var response = await _gateway.Client.ChatAsync("chat");

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.InRange(response.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 3);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("rate_limit_exceeded", document.RootElement.GetProperty("error").GetProperty("code").GetString());
    }
}

[Collection(PlatformServers.Collection)]
public sealed class CircuitBreakerTests(PlatformServers servers)
{
    [Fact]
    public async Task Repeated_failures_open_the_circuit_which_then_rejects_without_calling_the_provider()
    {
        await using var primary = new OpenAiStandIn { DefaultBehaviour = Behaviour.ServerError };
        await using var fallback = new OpenAiStandIn();
        await primary.StartAsync();
        await fallback.StartAsync();
        await using var gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("primary", "openai", primary.Url, "chat", priority: 0, extra: [("CircuitBreaker__MinimumThroughput", "2"), ("CircuitBreaker__FailureRatio", "0.5"), ("CircuitBreaker__BreakDuration", "00:01:00")])
            .Provider("fallback", "openai", fallback.Url, "chat", priority: 1));

        for (var i = 0; i < 2; i++)
        {
            using var response = await gateway.Client.ChatAsync("chat");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(2, primary.InferenceRequestCount);
        using var providers = JsonDocument.Parse(await gateway.Client.GetStringAsync("/providers"));
        var status = providers.RootElement.GetProperty("primary");
        Assert.Equal("circuit_open", status.GetProperty("status").GetString());
        Assert.Contains("server_error", status.GetProperty("last_error").GetString(), StringComparison.Ordinal);
        Assert.Equal("healthy", providers.RootElement.GetProperty("fallback").GetProperty("status").GetString());

        for (var i = 0; i < 3; i++)
        {
            using var response = await gateway.Client.ChatAsync("chat");
            Assert.Equal("fallback", response.Headers.GetValues("x-goblin-provider").Single());
        }

        Assert.Equal(2, primary.InferenceRequestCount);
        var metrics = await gateway.Client.GetStringAsync("/metrics");
        Assert.Matches("(?m)^provider_circuit_state\\{[^}]*provider=\"primary\"[^}]*\\} 2$", metrics);
        Assert.Matches("(?m)^provider_errors_total\\{[^}]*provider=\"primary\",reason=\"server_error\"[^}]*\\} 2$", metrics);
    }

    [Fact]
    public async Task An_open_circuit_half_opens_after_its_break_and_closes_on_success()
    {
        await using var primary = new OpenAiStandIn();
        await primary.StartAsync();
        primary.Script(Behaviour.ServerError, Behaviour.ServerError);
        await using var gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("primary", "openai", primary.Url, "chat", extra: [("CircuitBreaker__MinimumThroughput", "2"), ("CircuitBreaker__BreakDuration", "00:00:02")]));

        for (var i = 0; i < 2; i++)
        {
            using var failed = await gateway.Client.ChatAsync("chat");
            Assert.Equal(HttpStatusCode.BadGateway, failed.StatusCode);
        }

        using (var rejected = await gateway.Client.ChatAsync("chat"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, rejected.StatusCode);
            Assert.NotNull(rejected.Headers.RetryAfter);
        }

        using (var models = JsonDocument.Parse(await gateway.Client.GetStringAsync("/v1/models")))
        {
            Assert.Equal(0, models.RootElement.GetProperty("data").GetArrayLength());
        }

        // The break is long enough that the rejection above lands inside it on a loaded machine.
        await Task.Delay(2300);
        using var probe = await gateway.Client.ChatAsync("chat");
        Assert.Equal(HttpStatusCode.OK, probe.StatusCode);
        using var providers = JsonDocument.Parse(await gateway.Client.GetStringAsync("/providers"));
        Assert.Equal("healthy", providers.RootElement.GetProperty("primary").GetProperty("status").GetString());
    }
}
