using System.Diagnostics;
using System.Net.Sockets;
using GoblinAspire.Gateway.Caching;
using GoblinAspire.Gateway.Keys;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.RateLimiting;
using GoblinAspire.Gateway.Responses;
using GoblinAspire.Gateway.Routing;
using GoblinAspire.Gateway.Spend;
using GoblinAspire.Gateway.Telemetry;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace GoblinAspire.Gateway.Relay;

/// <summary>
/// Answers one inference request: reads and checks it, asks the router for candidates, and tries them in order.
/// Before the first byte reaches the client, a failed attempt (connect error, 429, 5xx, timeout, open circuit) moves
/// on to the next candidate; after it, the stream is ended with an OpenAI-style error event and never retried.
/// </summary>
public sealed class InferenceRelay(
    ProviderRouter router,
    IHttpClientFactory httpClients,
    IOptions<GatewayOptions> options,
    KeyAuthenticator keys,
    DistributedRateLimiter limiter,
    UsageRecorder usage,
    SpendQueries spend,
    ResponseCache cache,
    ResponseStore responses,
    IOptions<AccessOptions> access,
    GatewayMetrics metrics,
    TimeProvider time,
    ILogger<InferenceRelay> logger)
{
    public const string UpstreamClientName = "gateway-upstream";

    private readonly GatewayOptions _options = options.Value;

    public async Task HandleAsync(HttpContext http, InferenceOperation operation)
    {
        ArgumentNullException.ThrowIfNull(http);
        var startedAt = time.GetTimestamp();
        var aborted = http.RequestAborted;

        // As OpenAI answers: a missing or bad key is refused before the body is even read.
        var (key, authError) = await keys.AuthenticateAsync(http.Request, aborted);
        if (authError is not null)
        {
            await authError.WriteAsync(http.Response);
            return;
        }

        var (body, readError) = await RequestBody.ReadAsync(http.Request, _options.MaxRequestBodyBytes, aborted);
        if (readError is not null)
        {
            await readError.WriteAsync(http.Response);
            return;
        }

        var request = InferenceRequest.Parse(body, operation, out var parseError);
        if (request is null)
        {
            await parseError!.WriteAsync(http.Response);
            return;
        }

        ResponsesTurn? turn = null;
        if (operation == InferenceOperation.Responses)
        {
            (turn, parseError) = await ResponsesTurn.PrepareAsync(request, key?.Id, responses, aborted);
            if (turn is null)
            {
                await parseError!.WriteAsync(http.Response);
                return;
            }

            request = turn.Request;
        }

        if (key is not null && !key.AllowsModel(request.Model))
        {
            await KeyAuthenticator.ModelNotAllowed(request.Model).WriteAsync(http.Response);
            return;
        }

        DistributedRateLimiter.Lease? lease = null;
        if (key is not null)
        {
            var period = key.BudgetPeriod ?? "month";
            var limits = new RateLimits(key.Id.ToString("N"), key.Rpm, key.Tpm, key.MaxParallel, key.BudgetUsd, key.BudgetUsd is null ? null : BudgetPeriods.Id(period, time.GetUtcNow()));
            if (limits.Any)
            {
                RateDecision decision;
                try
                {
                    (decision, lease) = await limiter.AdmitAsync(
                        limits,
                        request.EstimatedPromptTokens + (request.MaxTokens ?? access.Value.DefaultReservedCompletionTokens),
                        ct => spend.SpentSinceAsync(key.Id, BudgetPeriods.Start(period, time.GetUtcNow()), ct),
                        aborted);
                }
                catch (RateLimiterUnavailableException)
                {
                    await new OpenAiError(StatusCodes.Status503ServiceUnavailable, "Rate limits cannot be checked right now; retry shortly.", OpenAiError.ServerError, null, "rate_limiter_unavailable").WriteAsync(http.Response, TimeSpan.FromSeconds(1));
                    return;
                }

                RateLimitHeaders.Write(http.Response, limits, decision);
                if (decision.RefusedBy == RateLimitKind.Budget)
                {
                    metrics.RateLimited(decision.RefusedBy);
                    await new OpenAiError(
                        StatusCodes.Status429TooManyRequests,
                        $"You exceeded your current quota: this key's budget is {key.BudgetUsd} USD per {period} and {decision.Spent:0.####} USD is spent.",
                        "insufficient_quota",
                        null,
                        "insufficient_quota").WriteAsync(http.Response, BudgetPeriods.End(period, time.GetUtcNow()) - time.GetUtcNow());
                    return;
                }

                if (!decision.Allowed)
                {
                    metrics.RateLimited(decision.RefusedBy);
                    var retryAfter = decision.RefusedBy == RateLimitKind.Parallel ? TimeSpan.FromSeconds(1) : decision.ResetIn;
                    await new OpenAiError(StatusCodes.Status429TooManyRequests, RateLimitHeaders.Message(limits, decision), decision.RefusedBy == RateLimitKind.Tokens ? "tokens" : "requests", null, OpenAiError.RateLimit).WriteAsync(http.Response, retryAfter);
                    return;
                }
            }
        }

        Outcome? outcome = null;
        try
        {
            // A stored response has an identity its caller owns; a replay would hand out another caller's id.
            var cacheKey = turn is { Conversation.Store: true } ? null : cache.KeyFor(request, http.Request.Headers[CacheOptions.RequestHeader], key?.Team);
            if (cacheKey is not null && await cache.GetAsync(cacheKey, aborted) is { } hit)
            {
                metrics.Cache(hit: true);
                http.Response.StatusCode = StatusCodes.Status200OK;
                http.Response.ContentType = hit.ContentType;
                http.Response.ContentLength = hit.Body.Length;
                http.Response.Headers[CacheOptions.RequestHeader] = "hit";
                await http.Response.Body.WriteAsync(hit.Body, aborted);
                outcome = new Outcome("cache", StatusCodes.Status200OK, 0, 0, 0, null) { Complete = true, CacheHit = true };
                return;
            }

            CapturingStream? capture = null;
            if (cacheKey is not null)
            {
                metrics.Cache(hit: false);
                http.Response.Headers[CacheOptions.RequestHeader] = "miss";
                capture = new CapturingStream(http.Response.Body, cache.MaxEntryBytes);
                http.Response.Body = capture;
            }

            if (turn is not null)
            {
                turn.Answer = ResponsesAnswer.Install(http, turn.Conversation, request.Model, request.Stream, time);
            }

            outcome = await RouteAsync(http, request, startedAt, turn);
            if (turn is not null)
            {
                await turn.CompleteAsync(http, outcome is { Complete: true, Status: StatusCodes.Status200OK }, key?.Id, responses, logger);
            }

            // Only a whole, successful answer is cached: never an error, never a stream that broke off.
            if (capture is { Overflowed: false } && outcome is { Complete: true, Status: StatusCodes.Status200OK })
            {
                await http.Response.Body.FlushAsync(aborted);
                await cache.SetAsync(cacheKey!, new CachedAnswer(http.Response.ContentType ?? "application/json", capture.Captured));
            }
        }
        finally
        {
            if (outcome is not null)
            {
                usage.Record(new UsageRecord(
                    time.GetUtcNow(), key?.Id, key?.Team ?? "", request.Model, outcome.Provider, outcome.InputTokens ?? 0, outcome.OutputTokens ?? 0,
                    outcome.CostUsd, time.GetElapsedTime(startedAt).TotalMilliseconds, outcome.FirstToken?.TotalMilliseconds, outcome.Status, outcome.CacheHit));
                metrics.Spend(key?.Team ?? "", request.Model, outcome.Provider, outcome.CostUsd);
            }

            if (lease is not null)
            {
                // Off the request path: the answer is complete, and the release only corrects shared counters
                // (its failures are handled inside). Admission stays the one Redis round trip a request waits for.
                _ = limiter.ReleaseAsync(lease, outcome?.Tokens, outcome?.CostUsd ?? 0);
            }
        }
    }

    /// <summary>How a routed request ended, for accounting.</summary>
    private sealed record Outcome(string Provider, int Status, long? InputTokens, long? OutputTokens, decimal CostUsd, TimeSpan? FirstToken)
    {
        /// <summary>The answer reached its end as the provider meant it (not cut off, not an error event).</summary>
        public bool Complete { get; init; }

        public bool CacheHit { get; init; }

        public long? Tokens => InputTokens is null && OutputTokens is null ? null : (InputTokens ?? 0) + (OutputTokens ?? 0);

        public static Outcome Of(RelayContext relay, int status)
        {
            var options = relay.Deployment.Provider.Options;
            var cost = ((relay.InputTokens ?? 0) * options.InputPricePer1K / 1000m) + ((relay.OutputTokens ?? 0) * options.OutputPricePer1K / 1000m);
            return new Outcome(relay.Deployment.Provider.Name, status, relay.InputTokens, relay.OutputTokens, cost, relay.FirstToken);
        }
    }

    private async Task<Outcome?> RouteAsync(HttpContext http, InferenceRequest request, long startedAt, ResponsesTurn? turn)
    {
        var aborted = http.RequestAborted;
        var plan = router.Plan(request, http.Request.Headers[ProviderRouter.StrategyHeader]);
        if (plan.Error is not null)
        {
            await plan.Error.WriteAsync(http.Response);
            return null;
        }

        var failures = new List<UpstreamException>();
        var client = httpClients.CreateClient(UpstreamClientName);
        var reserve = request.EstimatedPromptTokens + (request.MaxTokens ?? access.Value.DefaultReservedCompletionTokens);
        for (var attempt = 0; attempt < plan.Candidates.Count; attempt++)
        {
            var deployment = plan.Candidates[attempt];
            var provider = deployment.Provider;
            var relay = new RelayContext(http, deployment, turn?.RequestFor(provider) ?? request, time, startedAt, attempt + 1);
            DistributedRateLimiter.Lease? providerLease = null;
            if (provider.Options.Rpm is not null || provider.Options.Tpm is not null)
            {
                var providerLimits = new RateLimits("provider:" + provider.Name, provider.Options.Rpm, provider.Options.Tpm, null);
                RateDecision decision;
                try
                {
                    (decision, providerLease) = await limiter.AdmitAsync(providerLimits, reserve, static _ => Task.FromResult(0m), aborted);
                }
                catch (RateLimiterUnavailableException)
                {
                    decision = new RateDecision(RateLimitKind.Requests, 0, 0, 0, TimeSpan.FromSeconds(1));
                }

                if (!decision.Allowed)
                {
                    // The gateway's own limit protects this upstream: skip it as if it had answered 429.
                    metrics.ProviderError(provider.Name, "gateway_limit");
                    failures.Add(new UpstreamException(FailureReasons.RateLimited, "the gateway's limit for this provider is reached", retryAfter: decision.ResetIn));
                    continue;
                }
            }

            Outcome? attemptOutcome = null;
            try
            {
                using var activity = StartActivity(deployment, request, relay.Attempt);
                try
                {
                    await provider.Pipeline.ExecuteAsync(
                        static async (state, ct) => await state.Self.AttemptAsync(state.Client, state.Relay, ct),
                        (Self: this, Client: client, Relay: relay),
                        aborted);
                    var latency = time.GetElapsedTime(startedAt);
                    provider.Health.ObserveLatency(latency);
                    if (request.Stream && relay.FirstToken is { } ttft)
                    {
                        provider.Health.ObserveFirstToken(ttft);
                    }

                    metrics.Request(provider.Name, request.Model, relay.StatusCode, latency, request.Stream ? relay.FirstToken : null);
                    metrics.Tokens(provider.Name, request.Model, relay.InputTokens, relay.OutputTokens);
                    Complete(activity, relay, null);
                    return attemptOutcome = Outcome.Of(relay, relay.StatusCode) with { Complete = true };
                }
                catch (OperationCanceledException) when (aborted.IsCancellationRequested)
                {
                    // The client went away; the upstream request was cancelled with it. Not the provider's fault.
                    metrics.Request(provider.Name, request.Model, StatusCodes.Status499ClientClosedRequest, time.GetElapsedTime(startedAt), relay.FirstToken);
                    Complete(activity, relay, "client_closed");
                    return attemptOutcome = Outcome.Of(relay, StatusCodes.Status499ClientClosedRequest);
                }
                catch (Exception ex) when (ex is UpstreamException or BrokenCircuitException or TimeoutRejectedException)
                {
                    var failure = ex switch
                    {
                        UpstreamException upstream => upstream,
                        BrokenCircuitException => new UpstreamException(FailureReasons.CircuitOpen, "circuit open", inner: ex),
                        _ => new UpstreamException(FailureReasons.Timeout, $"no complete answer within {provider.Options.Timeout.TotalSeconds:0.###} s", inner: ex),
                    };
                    metrics.ProviderError(provider.Name, failure.Reason);
                    Complete(activity, relay, failure.Reason);
                    if (failure.Reason != FailureReasons.CircuitOpen)
                    {
                        provider.Health.RecordError($"{failure.Reason}: {failure.Message}");
                    }

                    if (failure.RetryAfter is { } retryAfter)
                    {
                        provider.Health.CoolDown(retryAfter < _options.Routing.MaxCooldown ? retryAfter : _options.Routing.MaxCooldown);
                    }

                    if (relay.Committed)
                    {
                        GatewayLog.StreamBroken(logger, provider.Name, failure.Reason);
                        metrics.Request(provider.Name, request.Model, relay.StatusCode, time.GetElapsedTime(startedAt), relay.FirstToken);
                        await EndStreamWithErrorAsync(http, failure);
                        return attemptOutcome = Outcome.Of(relay, relay.StatusCode);
                    }

                    GatewayLog.AttemptFailed(logger, relay.Attempt, provider.Name, request.Model, failure.Reason, failure.Message);
                    failures.Add(failure);
                }
            }
            finally
            {
                if (providerLease is not null)
                {
                    _ = limiter.ReleaseAsync(providerLease, attemptOutcome?.Tokens, 0);
                }
            }
        }

        var final = FinalError(request.Model, plan.Candidates, failures, out var finalRetryAfter);
        metrics.Request("none", request.Model, final.StatusCode, time.GetElapsedTime(startedAt), null);
        http.Response.Headers["x-goblin-attempts"] = failures.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await final.WriteAsync(http.Response, finalRetryAfter);
        return new Outcome("none", final.StatusCode, null, null, 0, null);
    }

    private async Task AttemptAsync(HttpClient client, RelayContext relay, CancellationToken cancellationToken)
    {
        var provider = relay.Deployment.Provider;
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (relay.Request.Stream)
        {
            // A non-streaming answer arrives whole; only the attempt timeout applies to it.
            attempt.CancelAfter(provider.Options.FirstTokenTimeout);
            relay.ArmFirstTokenTimer(attempt);
        }
        try
        {
            using var message = provider.Protocol.CreateRequest(relay.Deployment, relay.Request);
            HttpResponseMessage upstream;
            try
            {
                upstream = await client.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, attempt.Token);
            }
            catch (HttpRequestException ex)
            {
                throw new UpstreamException(
                    ex.InnerException is SocketException or IOException ? FailureReasons.Connect : FailureReasons.Reset,
                    ex.HttpRequestError == HttpRequestError.ConnectionError ? "could not connect to the provider" : "the request to the provider failed",
                    inner: ex);
            }

            using (upstream)
            {
                var status = (int)upstream.StatusCode;
                if (status == StatusCodes.Status429TooManyRequests)
                {
                    throw new UpstreamException(FailureReasons.RateLimited, "HTTP 429 from the provider", status, Protocols.UpstreamBody.RetryAfter(upstream, time));
                }

                if (status >= 500)
                {
                    throw new UpstreamException(FailureReasons.ServerError, $"HTTP {status} from the provider", status, Protocols.UpstreamBody.RetryAfter(upstream, time));
                }

                if (status >= 400)
                {
                    await provider.Protocol.RelayClientErrorAsync(upstream, relay, attempt.Token);
                    return;
                }

                try
                {
                    await provider.Protocol.RelayAsync(upstream, relay, attempt.Token);
                }
                catch (Exception ex) when (relay.Committed && ex is not UpstreamException && !cancellationToken.IsCancellationRequested)
                {
                    throw new UpstreamException(FailureReasons.StreamInterrupted, "the answer broke off", inner: ex);
                }
                catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
                {
                    // A translated answer missing a field its protocol promises: the provider is at fault.
                    throw new UpstreamException(FailureReasons.Protocol, "the provider's answer is not in its protocol's shape", inner: ex);
                }
            }
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested && attempt.IsCancellationRequested)
        {
            throw new UpstreamException(FailureReasons.FirstTokenTimeout, $"no answer within the first-token timeout of {provider.Options.FirstTokenTimeout.TotalSeconds:0.###} s", inner: ex);
        }
    }

    private static OpenAiError FinalError(string model, IReadOnlyList<Deployment> candidates, List<UpstreamException> failures, out TimeSpan? retryAfter)
    {
        retryAfter = null;
        if (failures.All(f => f.Reason == FailureReasons.RateLimited))
        {
            retryAfter = candidates.Select(c => c.Provider.Health.CooldownRemaining).Where(t => t > TimeSpan.Zero).DefaultIfEmpty(TimeSpan.FromSeconds(1)).Min();
            return new OpenAiError(StatusCodes.Status429TooManyRequests, $"Every provider of model `{model}` is rate limited; retry after the Retry-After delay.", "requests", null, OpenAiError.RateLimit);
        }

        var summary = string.Join("; ", failures.Select((f, i) => $"{candidates[i].Provider.Name}: {f.Reason}{(f.StatusCode is { } s ? $" (HTTP {s})" : "")}"));
        if (failures.All(f => f.Reason == FailureReasons.CircuitOpen))
        {
            retryAfter = TimeSpan.FromSeconds(1);
            return new OpenAiError(StatusCodes.Status503ServiceUnavailable, $"No provider of model `{model}` is available right now: {summary}.", OpenAiError.ServerError, null, "service_unavailable");
        }

        if (failures[^1].Reason is FailureReasons.Timeout or FailureReasons.FirstTokenTimeout)
        {
            return new OpenAiError(StatusCodes.Status504GatewayTimeout, $"Every provider of model `{model}` failed; the last timed out: {summary}.", OpenAiError.ServerError, null, "upstream_timeout");
        }

        return new OpenAiError(StatusCodes.Status502BadGateway, $"Every provider of model `{model}` failed: {summary}.", OpenAiError.ServerError, null, "upstream_error");
    }

    /// <summary>An OpenAI-style error event, which OpenAI's SDKs raise as an APIError mid-stream.</summary>
    private static async Task EndStreamWithErrorAsync(HttpContext http, UpstreamException failure)
    {
        if (!http.Response.ContentType?.StartsWith("text/event-stream", StringComparison.Ordinal) ?? true)
        {
            // A non-streaming answer that broke after its headers cannot be repaired; abort so the client sees it.
            http.Abort();
            return;
        }

        var error = new OpenAiError(StatusCodes.Status502BadGateway, $"The provider failed during the answer ({failure.Reason}).", OpenAiError.ServerError, null, "upstream_stream_error");
        try
        {
            await http.Response.BodyWriter.WriteAsync("data: "u8.ToArray());
            await http.Response.BodyWriter.WriteAsync(error.ToJsonBytes());
            await http.Response.BodyWriter.WriteAsync("\n\n"u8.ToArray());
            await http.Response.BodyWriter.FlushAsync();
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            // The client is gone as well; nothing left to tell.
        }
    }

    private Activity? StartActivity(Deployment deployment, InferenceRequest request, int attempt)
    {
        var activity = GatewayActivity.Source.StartActivity($"{request.Operation.OperationName()} {request.Model}", ActivityKind.Client);
        if (activity is null)
        {
            return null;
        }

        activity.SetTag("gen_ai.system", deployment.Provider.Protocol.System);
        activity.SetTag("gen_ai.operation.name", request.Operation.OperationName());
        activity.SetTag("gen_ai.request.model", request.Model);
        activity.SetTag("goblin.provider", deployment.Provider.Name);
        activity.SetTag("goblin.attempt", attempt);
        if (request.MaxTokens is { } maxTokens)
        {
            activity.SetTag("gen_ai.request.max_tokens", maxTokens);
        }

        if (request.Temperature is { } temperature)
        {
            activity.SetTag("gen_ai.request.temperature", temperature);
        }

        if (_options.CaptureMessageContent)
        {
            activity.SetTag("gen_ai.input.messages", System.Text.Encoding.UTF8.GetString(request.Body.Span));
        }

        return activity;
    }

    private static void Complete(Activity? activity, RelayContext relay, string? error)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag("gen_ai.response.model", relay.ResponseModel ?? relay.Deployment.UpstreamModel);
        if (relay.InputTokens is { } input)
        {
            activity.SetTag("gen_ai.usage.input_tokens", input);
        }

        if (relay.OutputTokens is { } output)
        {
            activity.SetTag("gen_ai.usage.output_tokens", output);
        }

        if (error is not null)
        {
            activity.SetTag("error.type", error);
            activity.SetStatus(ActivityStatusCode.Error);
        }
    }
}
