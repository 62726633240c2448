using System.Net;
using System.Net.Sockets;
using System.Text;
using GoblinAspire.Gateway.Protocols;
using GoblinAspire.Gateway.RateLimiting;
using GoblinAspire.Gateway.Stages;

namespace GoblinAspire.Gateway.Tests.Stages;

public sealed class ForwardingStageTests
{
    [Fact]
    public async Task A_server_error_moves_on_to_the_next_provider_which_answers_the_client()
    {
        var calls = new List<string>();
        using var rig = new StageRig(StageRig.Providers("a", "b"), (request, _) =>
        {
            calls.Add(request.RequestUri!.Host);
            return Task.FromResult(request.RequestUri.Host == "a.test"
                ? StageRig.Json(HttpStatusCode.ServiceUnavailable, """{"error":{"message":"busy"}}""")
                : StageRig.Json(HttpStatusCode.OK, StageRig.Completion("from b")));
        });
        var (forwarded, http) = await ForwardAsync(rig, StageRig.Chat());

        Assert.Equal(ForwardingEnd.Answered, forwarded.End);
        Assert.Equal(["a.test", "b.test"], calls);
        Assert.Equal("b", forwarded.Answer!.Deployment.Provider.Name);
        Assert.Equal(2, forwarded.Answer.Attempt);
        Assert.Equal((7L, 3L), (forwarded.Answer.InputTokens!.Value, forwarded.Answer.OutputTokens!.Value));
        var failure = Assert.Single(forwarded.Failures);
        Assert.Equal(("a", FailureReasons.ServerError, 503), (failure.Deployment.Provider.Name, failure.Failure.Reason, failure.Failure.StatusCode!.Value));
        Assert.Contains("from b", StageRig.Body(http), StringComparison.Ordinal);
        Assert.Equal("b", http.Response.Headers["x-goblin-provider"]);
        Assert.Contains("server_error", rig.Provider("a").Health.LastError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_provider_rate_limited_ends_exhausted_with_a_429_after_the_shortest_cooldown()
    {
        using var rig = new StageRig(StageRig.Providers("a", "b"), (request, _) =>
        {
            var response = StageRig.Json(HttpStatusCode.TooManyRequests, """{"error":{"message":"slow down"}}""");
            response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(request.RequestUri!.Host == "a.test" ? 30 : 7));
            return Task.FromResult(response);
        });
        var (forwarded, http) = await ForwardAsync(rig, StageRig.Chat());

        Assert.Equal(ForwardingEnd.Exhausted, forwarded.End);
        Assert.False(http.Response.HasStarted);
        Assert.Equal(2, forwarded.Failures.Count);
        var error = forwarded.FinalError("m");
        Assert.Equal(429, error.StatusCode);
        Assert.InRange(error.RetryAfter!.Value, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(7));
        Assert.True(rig.Provider("a").Health.IsCoolingDown);
    }

    [Fact]
    public async Task A_provider_that_cannot_be_reached_is_a_connect_failure_and_the_last_is_a_502()
    {
        using var rig = new StageRig(StageRig.Providers("a"), (_, _) =>
            throw new HttpRequestException(HttpRequestError.ConnectionError, "refused", new SocketException((int)SocketError.ConnectionRefused)));
        var (forwarded, _) = await ForwardAsync(rig, StageRig.Chat());

        Assert.Equal(ForwardingEnd.Exhausted, forwarded.End);
        Assert.Equal(FailureReasons.Connect, Assert.Single(forwarded.Failures).Failure.Reason);
        var error = forwarded.FinalError("m");
        Assert.Equal(502, error.StatusCode);
        Assert.Contains("a: connect", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stream_that_breaks_after_its_first_event_is_never_retried_elsewhere()
    {
        var calls = 0;
        using var rig = new StageRig(StageRig.Providers("a", "b"), (_, _) =>
        {
            calls++;
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK)
            {
                Content = new StreamContent(new BreakingStream("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"u8.ToArray())),
            });
        });
        var (forwarded, http) = await ForwardAsync(rig, StageRig.Chat(stream: true));

        Assert.Equal(ForwardingEnd.StreamBroken, forwarded.End);
        Assert.Equal(1, calls);
        Assert.True(forwarded.Answer!.Committed);
        Assert.Equal(FailureReasons.Reset, forwarded.BrokenBy!.Reason);
        Assert.Empty(forwarded.Failures);
        Assert.Contains("\"hi\"", StageRig.Body(http), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stream_without_a_first_token_in_time_is_a_first_token_timeout()
    {
        var configuration = StageRig.Providers("a");
        configuration["Gateway:Providers:0:FirstTokenTimeout"] = "00:00:00.200";
        using var rig = new StageRig(configuration, async (_, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            return new HttpResponseMessage(HttpStatusCode.OK);
        });
        var (forwarded, _) = await ForwardAsync(rig, StageRig.Chat(stream: true));

        Assert.Equal(FailureReasons.FirstTokenTimeout, Assert.Single(forwarded.Failures).Failure.Reason);
        Assert.Equal(504, forwarded.FinalError("m").StatusCode);
    }

    [Fact]
    public async Task Failures_returned_as_values_open_the_circuit_which_then_refuses_without_a_request()
    {
        var configuration = StageRig.Providers("a");
        configuration["Gateway:Providers:0:CircuitBreaker:MinimumThroughput"] = "2";
        configuration["Gateway:Providers:0:CircuitBreaker:FailureRatio"] = "0.5";
        configuration["Gateway:Providers:0:CircuitBreaker:BreakDuration"] = "00:05:00";
        var calls = 0;
        using var rig = new StageRig(configuration, (_, _) =>
        {
            calls++;
            return Task.FromResult(StageRig.Json(HttpStatusCode.BadGateway, "{}"));
        });

        for (var i = 0; i < 2; i++)
        {
            var (failed, _) = await ForwardAsync(rig, StageRig.Chat());
            Assert.Equal(FailureReasons.ServerError, Assert.Single(failed.Failures).Failure.Reason);
        }

        var (forwarded, _) = await ForwardAsync(rig, StageRig.Chat());
        Assert.Equal(FailureReasons.CircuitOpen, Assert.Single(forwarded.Failures).Failure.Reason);
        Assert.Equal(2, calls);
        Assert.Equal(503, forwarded.FinalError("m").StatusCode);
    }

    [Fact]
    public async Task A_rate_limit_answer_does_not_count_against_the_circuit()
    {
        var configuration = StageRig.Providers("a");
        configuration["Gateway:Providers:0:CircuitBreaker:MinimumThroughput"] = "2";
        var calls = 0;
        using var rig = new StageRig(configuration, (_, _) =>
        {
            calls++;
            return Task.FromResult(StageRig.Json(HttpStatusCode.TooManyRequests, "{}"));
        });

        for (var i = 0; i < 4; i++)
        {
            var (forwarded, _) = await ForwardAsync(rig, StageRig.Chat());
            Assert.Equal(FailureReasons.RateLimited, Assert.Single(forwarded.Failures).Failure.Reason);
        }

        Assert.Equal(4, calls);
    }

    [Fact]
    public async Task The_gateways_own_limit_for_a_provider_skips_it_without_a_request_and_releases_the_answering_lease()
    {
        var configuration = StageRig.Providers("a", "b");
        configuration["Gateway:Providers:0:Rpm"] = "1";
        configuration["Gateway:Providers:1:Tpm"] = "100000";
        var hosts = new List<string>();
        using var rig = new StageRig(configuration, (request, _) =>
        {
            hosts.Add(request.RequestUri!.Host);
            return Task.FromResult(StageRig.Json(HttpStatusCode.OK, StageRig.Completion("ok")));
        });
        rig.Gate.Decide = limits => limits.Subject == "provider:a"
            ? new RateDecision(RateLimitKind.Requests, 1, 0, 0, TimeSpan.FromSeconds(20))
            : new RateDecision(RateLimitKind.None, 1, 1, 0, TimeSpan.FromSeconds(60));

        var (forwarded, _) = await ForwardAsync(rig, StageRig.Chat());

        Assert.Equal(ForwardingEnd.Answered, forwarded.End);
        Assert.Equal(["b.test"], hosts);
        Assert.Equal(FailureReasons.RateLimited, Assert.Single(forwarded.Failures).Failure.Reason);
        Assert.True(rig.Gate.Released.TryDequeue(out var released));
        Assert.Equal("provider:b", released.Lease.Limits.Subject);
        Assert.Equal(10, released.Tokens);
    }

    [Fact]
    public async Task A_client_error_from_the_provider_is_the_clients_answer_in_openai_shape()
    {
        using var rig = new StageRig(StageRig.Providers("a", "b"), (_, _) =>
            Task.FromResult(StageRig.Json(HttpStatusCode.BadRequest, """{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}}""")));
        var (forwarded, http) = await ForwardAsync(rig, StageRig.Chat());

        Assert.Equal(ForwardingEnd.Answered, forwarded.End);
        Assert.Equal(400, forwarded.Answer!.StatusCode);
        Assert.Contains("bad temperature", StageRig.Body(http), StringComparison.Ordinal);
    }

    private static async Task<(Forwarded Forwarded, Microsoft.AspNetCore.Http.DefaultHttpContext Http)> ForwardAsync(StageRig rig, GoblinAspire.Gateway.OpenAi.InferenceRequest request)
    {
        var stage = rig.Get<ForwardingStage>();
        var plan = stage.Plan(request, null);
        Assert.Null(plan.Error);
        var http = StageRig.Client();
        var forwarded = await stage.ForwardAsync(http.Response, plan.Candidates, request, null, 100, TimeProvider.System.GetTimestamp(), CancellationToken.None);
        return (forwarded, http);
    }

    /// <summary>Sends its bytes, then fails as a dropped connection does.</summary>
    private sealed class BreakingStream(byte[] first) : Stream
    {
        private bool _sent;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_sent)
            {
                throw new IOException("connection reset by peer");
            }

            _sent = true;
            first.CopyTo(buffer);
            return first.Length;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
