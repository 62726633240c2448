using System.Diagnostics;
using System.Runtime.ExceptionServices;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.Protocols;
using GoblinAspire.Gateway.RateLimiting;
using GoblinAspire.Gateway.Responses;
using GoblinAspire.Gateway.Routing;
using GoblinAspire.Gateway.Telemetry;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace GoblinAspire.Gateway.Stages;

/// <summary>How forwarding ended.</summary>
public enum ForwardingEnd
{
    /// <summary>A provider's answer reached the client whole.</summary>
    Answered,

    /// <summary>The client went away during an attempt.</summary>
    ClientClosed,

    /// <summary>A provider failed after its answer had started: the answer cannot move to another provider.</summary>
    StreamBroken,

    /// <summary>Every candidate failed or was skipped before answering.</summary>
    Exhausted,
}

/// <summary>A candidate that did not answer, and why.</summary>
public readonly record struct AttemptFailure(Deployment Deployment, UpstreamFailure Failure);

/// <summary>What forwarding came to: the attempt that ended it (if any), the failure that broke a stream, and every earlier failure.</summary>
public sealed record Forwarded(ForwardingEnd End, ClientAnswer? Answer, UpstreamFailure? BrokenBy, IReadOnlyList<AttemptFailure> Failures)
{
    /// <summary>
    /// The error for a request no candidate answered: 429 when every one was rate limited (Retry-After the shortest
    /// cool-down), 503 when every circuit was open, 504 when the last timed out, 502 otherwise; the message names
    /// each provider's failure.
    /// </summary>
    public OpenAiError FinalError(string model)
    {
        if (Failures.All(f => f.Failure.Reason == FailureReasons.RateLimited))
        {
            var retryAfter = Failures.Select(f => f.Deployment.Provider.Health.CooldownRemaining).Where(t => t > TimeSpan.Zero).DefaultIfEmpty(TimeSpan.FromSeconds(1)).Min();
            return new OpenAiError(StatusCodes.Status429TooManyRequests, $"Every provider of model `{model}` is rate limited; retry after the Retry-After delay.", "requests", null, OpenAiError.RateLimit) { RetryAfter = retryAfter };
        }

        var summary = string.Join("; ", Failures.Select(f => $"{f.Deployment.Provider.Name}: {f.Failure.Reason}{(f.Failure.StatusCode is { } s ? $" (HTTP {s})" : "")}"));
        if (Failures.All(f => f.Failure.Reason == FailureReasons.CircuitOpen))
        {
            return new OpenAiError(StatusCodes.Status503ServiceUnavailable, $"No provider of model `{model}` is available right now: {summary}.", OpenAiError.ServerError, null, "service_unavailable") { RetryAfter = TimeSpan.FromSeconds(1) };
        }

        if (Failures[^1].Failure.Reason is FailureReasons.Timeout or FailureReasons.FirstTokenTimeout)
        {
            return new OpenAiError(StatusCodes.Status504GatewayTimeout, $"Every provider of model `{model}` failed; the last timed out: {summary}.", OpenAiError.ServerError, null, "upstream_timeout");
        }

        return new OpenAiError(StatusCodes.Status502BadGateway, $"Every provider of model `{model}` failed: {summary}.", OpenAiError.ServerError, null, "upstream_error");
    }
}

/// <summary>
/// Plans the candidates for a request, then tries them in order. Before the first byte reaches the client, a failed
/// attempt (connect error, 429, 5xx, timeout, open circuit, the gateway's own limit for that provider) moves on to
/// the next candidate; after it, forwarding ends with the failure and the stream is never retried. Each attempt runs
/// inside its provider's circuit breaker and timeout, and comes back as a value: only cancellation is an exception.
/// </summary>
public sealed class ForwardingStage(
    ProviderRouter router,
    IHttpClientFactory httpClients,
    IRateGate limiter,
    IAttemptObserver observer,
    IOptions<GatewayOptions> options,
    TimeProvider time)
{
    private readonly bool _captureMessageContent = options.Value.CaptureMessageContent;

    public RoutePlan Plan(InferenceRequest request, string? requestedStrategy) => router.Plan(request, requestedStrategy);

    /// <param name="client">The client's response, which the answering attempt writes.</param>
    /// <param name="turn">A Responses API turn: each provider gets the request in the shape it speaks.</param>
    /// <param name="reservation">Tokens held against a provider's own TPM limit during its attempt.</param>
    public async Task<Forwarded> ForwardAsync(
        HttpResponse client,
        IReadOnlyList<Deployment> candidates,
        InferenceRequest request,
        ResponsesTurn? turn,
        long reservation,
        long startedAt,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(request);
        var failures = new List<AttemptFailure>();
        var http = httpClients.CreateClient(ProviderCatalog.UpstreamClientName);
        for (var attempt = 0; attempt < candidates.Count; attempt++)
        {
            var deployment = candidates[attempt];
            var provider = deployment.Provider;
            var (lease, refusal) = await AdmitAtProviderAsync(provider, reservation, cancellationToken);
            if (refusal is not null)
            {
                observer.Skipped(deployment);
                failures.Add(new AttemptFailure(deployment, refusal));
                continue;
            }

            var answer = new ClientAnswer(client, deployment, turn?.RequestFor(provider.Options.NativeResponses) ?? request, time, startedAt, attempt + 1);
            Forwarded? end = null;
            try
            {
                using var activity = StartActivity(answer);
                var (failure, clientClosed) = await AttemptAsync(http, answer, cancellationToken);
                var elapsed = time.GetElapsedTime(startedAt);
                Complete(activity, answer, clientClosed ? "client_closed" : failure?.Reason);
                if (clientClosed)
                {
                    observer.ClientClosed(answer, elapsed);
                    return end = new Forwarded(ForwardingEnd.ClientClosed, answer, null, failures);
                }

                if (failure is null)
                {
                    observer.Succeeded(answer, elapsed);
                    return end = new Forwarded(ForwardingEnd.Answered, answer, null, failures);
                }

                observer.Failed(answer, failure, elapsed);
                if (answer.Committed)
                {
                    return end = new Forwarded(ForwardingEnd.StreamBroken, answer, failure, failures);
                }

                failures.Add(new AttemptFailure(deployment, failure));
            }
            finally
            {
                if (lease is not null)
                {
                    _ = limiter.ReleaseAsync(lease, end is null ? null : RequestOutcome.Total(answer.InputTokens, answer.OutputTokens), 0);
                }
            }
        }

        return new Forwarded(ForwardingEnd.Exhausted, null, null, failures);
    }

    /// <summary>The gateway's own RPM/TPM limit for a provider protects it: a refusal is a 429 the provider never had to send.</summary>
    private async ValueTask<(RateLease? Lease, UpstreamFailure? Refusal)> AdmitAtProviderAsync(Provider provider, long reservation, CancellationToken cancellationToken)
    {
        if (provider.Options.Rpm is null && provider.Options.Tpm is null)
        {
            return (null, null);
        }

        RateDecision decision;
        RateLease? lease;
        try
        {
            (decision, lease) = await limiter.AdmitAsync(new RateLimits("provider:" + provider.Name, provider.Options.Rpm, provider.Options.Tpm, null), reservation, static _ => Task.FromResult(0m), cancellationToken);
        }
        catch (RateLimiterUnavailableException)
        {
            return (null, new UpstreamFailure(FailureReasons.RateLimited, "the gateway's limit for this provider cannot be checked", RetryAfter: TimeSpan.FromSeconds(1)));
        }

        return decision.Allowed
            ? (lease, null)
            : (null, new UpstreamFailure(FailureReasons.RateLimited, "the gateway's limit for this provider is reached", RetryAfter: decision.ResetIn));
    }

    /// <summary>One attempt inside the provider's circuit breaker and timeout, which see its failure as a result.</summary>
    private async Task<(UpstreamFailure? Failure, bool ClientClosed)> AttemptAsync(HttpClient http, ClientAnswer answer, CancellationToken cancellationToken)
    {
        var provider = answer.Deployment.Provider;
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        Outcome<UpstreamFailure?> outcome;
        try
        {
            outcome = await provider.Pipeline.ExecuteOutcomeAsync<UpstreamFailure?, (ForwardingStage Self, HttpClient Http, ClientAnswer Answer)>(
                static async (context, state) =>
                {
                    try
                    {
                        return Outcome.FromResult<UpstreamFailure?>(await state.Self.ExchangeAsync(state.Http, state.Answer, context.CancellationToken));
                    }
                    catch (Exception ex)
                    {
                        // Polly's outcome callbacks return rather than throw; the timeout strategy reads its own
                        // cancellation from here.
                        return Outcome.FromException<UpstreamFailure?>(ex);
                    }
                },
                context,
                (Self: this, Http: http, Answer: answer));
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }

        // Gone mid-attempt: whatever failed after that failed because the attempt was cancelled with the client.
        if (cancellationToken.IsCancellationRequested && (outcome.Exception is not null || outcome.Result is not null))
        {
            return (null, true);
        }

        return outcome.Exception switch
        {
            null => (outcome.Result, false),
            BrokenCircuitException => (new UpstreamFailure(FailureReasons.CircuitOpen, "circuit open"), false),
            TimeoutRejectedException => (new UpstreamFailure(FailureReasons.Timeout, $"no complete answer within {provider.Options.Timeout.TotalSeconds:0.###} s"), false),
            var unexpected => Rethrow(unexpected),
        };
    }

    private static (UpstreamFailure?, bool) Rethrow(Exception exception)
    {
        ExceptionDispatchInfo.Throw(exception);
        return default;
    }

    private async Task<UpstreamFailure?> ExchangeAsync(HttpClient http, ClientAnswer answer, CancellationToken cancellationToken)
    {
        var provider = answer.Deployment.Provider;
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (answer.Request.Stream)
        {
            // A non-streaming answer arrives whole; only the attempt timeout applies to it.
            attempt.CancelAfter(provider.Options.FirstTokenTimeout);
            answer.ArmFirstTokenTimer(attempt);
        }

        using var message = provider.Protocol.CreateRequest(provider.Options, answer.Deployment.UpstreamModel, answer.Request);
        try
        {
            return await UpstreamExchange.SendAsync(http, provider.Protocol, message, answer, time, attempt.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && attempt.IsCancellationRequested)
        {
            return new UpstreamFailure(FailureReasons.FirstTokenTimeout, $"no answer within the first-token timeout of {provider.Options.FirstTokenTimeout.TotalSeconds:0.###} s");
        }
    }

    private Activity? StartActivity(ClientAnswer answer)
    {
        var request = answer.Request;
        var activity = GatewayActivity.Source.StartActivity($"{request.Operation.OperationName()} {request.Model}", ActivityKind.Client);
        if (activity is null)
        {
            return null;
        }

        activity.SetTag("gen_ai.system", answer.Deployment.Provider.Protocol.System);
        activity.SetTag("gen_ai.operation.name", request.Operation.OperationName());
        activity.SetTag("gen_ai.request.model", request.Model);
        activity.SetTag("goblin.provider", answer.Deployment.Provider.Name);
        activity.SetTag("goblin.attempt", answer.Attempt);
        if (request.MaxTokens is { } maxTokens)
        {
            activity.SetTag("gen_ai.request.max_tokens", maxTokens);
        }

        if (request.Temperature is { } temperature)
        {
            activity.SetTag("gen_ai.request.temperature", temperature);
        }

        if (_captureMessageContent)
        {
            activity.SetTag("gen_ai.input.messages", System.Text.Encoding.UTF8.GetString(request.Body.Span));
        }

        return activity;
    }

    private static void Complete(Activity? activity, ClientAnswer answer, string? error)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag("gen_ai.response.model", answer.ResponseModel ?? answer.Deployment.UpstreamModel);
        if (answer.InputTokens is { } input)
        {
            activity.SetTag("gen_ai.usage.input_tokens", input);
        }

        if (answer.OutputTokens is { } output)
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
