using GoblinAspire.Gateway.Keys;
using GoblinAspire.Gateway.Protocols;
using GoblinAspire.Gateway.RateLimiting;
using GoblinAspire.Gateway.Routing;
using GoblinAspire.Gateway.Spend;
using GoblinAspire.Gateway.Telemetry;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Stages;

/// <summary>How a request ended, for accounting: who answered, with what status, tokens, cost and first-token time.</summary>
public sealed record RequestOutcome(string Provider, int Status, long? InputTokens, long? OutputTokens, decimal CostUsd, TimeSpan? FirstToken)
{
    /// <summary>The answer reached its end as the provider meant it (not cut off, not an error event).</summary>
    public bool Complete { get; init; }

    public bool CacheHit { get; init; }

    public long? Tokens => Total(InputTokens, OutputTokens);

    /// <summary>Tokens for a limit's correction: unknown only when neither side was counted.</summary>
    public static long? Total(long? input, long? output) => input is null && output is null ? null : (input ?? 0) + (output ?? 0);

    public static RequestOutcome FromCache { get; } = new("cache", StatusCodes.Status200OK, 0, 0, 0, null) { Complete = true, CacheHit = true };

    public static RequestOutcome Of(ClientAnswer answer, int status, bool complete = false)
    {
        ArgumentNullException.ThrowIfNull(answer);
        return new RequestOutcome(answer.Deployment.Provider.Name, status, answer.InputTokens, answer.OutputTokens, answer.CostUsd, answer.FirstToken) { Complete = complete };
    }

    /// <summary>No provider answered; the gateway sent <paramref name="status"/> itself.</summary>
    public static RequestOutcome Unanswered(int status) => new("none", status, null, null, 0, null);
}

/// <summary>Told of every attempt as it ends, so that a failing provider is avoided by other requests at once.</summary>
public interface IAttemptObserver
{
    /// <summary>The gateway's own limit for this provider is reached; it was skipped without a request.</summary>
    void Skipped(Deployment deployment);

    void Succeeded(ClientAnswer answer, TimeSpan elapsed);

    void Failed(ClientAnswer answer, UpstreamFailure failure, TimeSpan elapsed);

    void ClientClosed(ClientAnswer answer, TimeSpan elapsed);
}

/// <summary>
/// What follows an answer: request and token metrics, provider health (latency, errors, Retry-After cool-downs),
/// failure logs, the usage record behind spend, and the release of the key's admission.
/// </summary>
public sealed class OutcomeStage(
    IUsageSink usage,
    IRateGate limiter,
    GatewayMetrics metrics,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<OutcomeStage> logger) : IAttemptObserver
{
    private readonly TimeSpan _maxCooldown = options.Value.Routing.MaxCooldown;

    public void Skipped(Deployment deployment)
    {
        ArgumentNullException.ThrowIfNull(deployment);
        metrics.ProviderError(deployment.Provider.Name, FailureReasons.GatewayLimit);
    }

    public void Succeeded(ClientAnswer answer, TimeSpan elapsed)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var provider = answer.Deployment.Provider;
        var stream = answer.Request.Stream;
        provider.Health.ObserveLatency(elapsed);
        if (stream && answer.FirstToken is { } ttft)
        {
            provider.Health.ObserveFirstToken(ttft);
        }

        metrics.Request(provider.Name, answer.Request.Model, answer.StatusCode, elapsed, stream ? answer.FirstToken : null);
        metrics.Tokens(provider.Name, answer.Request.Model, answer.InputTokens, answer.OutputTokens);
    }

    public void Failed(ClientAnswer answer, UpstreamFailure failure, TimeSpan elapsed)
    {
        ArgumentNullException.ThrowIfNull(answer);
        ArgumentNullException.ThrowIfNull(failure);
        var provider = answer.Deployment.Provider;
        metrics.ProviderError(provider.Name, failure.Reason);
        // An open circuit is the gateway declining, not the provider failing again.
        if (failure.Reason != FailureReasons.CircuitOpen)
        {
            provider.Health.RecordError($"{failure.Reason}: {failure.Message}");
        }

        if (failure.RetryAfter is { } retryAfter)
        {
            provider.Health.CoolDown(retryAfter < _maxCooldown ? retryAfter : _maxCooldown);
        }

        if (answer.Committed)
        {
            GatewayLog.StreamBroken(logger, provider.Name, failure.Reason);
            metrics.Request(provider.Name, answer.Request.Model, answer.StatusCode, elapsed, answer.FirstToken);
        }
        else
        {
            GatewayLog.AttemptFailed(logger, answer.Attempt, provider.Name, answer.Request.Model, failure.Reason, failure.Message);
        }
    }

    public void ClientClosed(ClientAnswer answer, TimeSpan elapsed)
    {
        ArgumentNullException.ThrowIfNull(answer);
        // The client went away; the upstream request was cancelled with it. Not the provider's fault.
        metrics.Request(answer.Deployment.Provider.Name, answer.Request.Model, StatusCodes.Status499ClientClosedRequest, elapsed, answer.FirstToken);
    }

    /// <summary>Every provider failed or was skipped; the gateway answered <paramref name="status"/> itself.</summary>
    public void Exhausted(string model, int status, TimeSpan elapsed) => metrics.Request("none", model, status, elapsed, null);

    /// <summary>Accounts for a finished request (if it got as far as an answer) and releases the key's admission.</summary>
    public void Finish(RequestOutcome? outcome, VirtualKey? key, string model, RateLease? lease, TimeSpan elapsed)
    {
        if (outcome is not null)
        {
            usage.Record(new UsageRecord(
                time.GetUtcNow(), key?.Id, key?.Team ?? "", model, outcome.Provider, outcome.InputTokens ?? 0, outcome.OutputTokens ?? 0,
                outcome.CostUsd, elapsed.TotalMilliseconds, outcome.FirstToken?.TotalMilliseconds, outcome.Status, outcome.CacheHit));
            metrics.Spend(key?.Team ?? "", model, outcome.Provider, outcome.CostUsd);
        }

        if (lease is not null)
        {
            // Off the request path: the answer is complete, and the release only corrects shared counters (its
            // failures are handled inside). Admission stays the one shared round trip a request waits for.
            _ = limiter.ReleaseAsync(lease, outcome?.Tokens, outcome?.CostUsd ?? 0);
        }
    }
}
