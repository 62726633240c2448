using GoblinAspire.Gateway.Keys;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.RateLimiting;
using GoblinAspire.Gateway.Spend;
using GoblinAspire.Gateway.Telemetry;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Stages;

/// <summary>
/// The admission stage's verdict: admitted (with the lease to release when the request ends, if the key has limits),
/// or refused with the error to send. <see cref="Limits"/> and <see cref="Decision"/> feed the <c>x-ratelimit-*</c>
/// headers whenever limits were checked, refused or not.
/// </summary>
public sealed record Admission(RateLease? Lease, OpenAiError? Refusal, RateLimits? Limits = null, RateDecision? Decision = null)
{
    public static readonly Admission Unlimited = new(null, null);
}

/// <summary>
/// Who is asking and whether they may: the key (checked before the body is read, as OpenAI does), the models it may
/// use, and its request, token, parallel and budget limits, in one shared admission.
/// </summary>
public sealed class AdmissionStage(KeyAuthenticator keys, IRateGate limiter, ISpendHistory spend, IOptions<AccessOptions> access, GatewayMetrics metrics, TimeProvider time)
{
    private readonly AccessOptions _access = access.Value;

    /// <param name="authorization">The request's <c>Authorization</c> header, empty when it has none.</param>
    /// <returns>The key, or null for an anonymous request where keys are optional; or the error to answer.</returns>
    public Task<(VirtualKey? Key, OpenAiError? Error)> IdentifyAsync(string authorization, CancellationToken cancellationToken) =>
        keys.AuthenticateAsync(authorization, cancellationToken);

    /// <summary>Tokens held against a TPM limit until the real usage is known: the prompt estimate plus the completion allowed.</summary>
    public long Reservation(InferenceRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return request.EstimatedPromptTokens + (request.MaxTokens ?? _access.DefaultReservedCompletionTokens);
    }

    public async ValueTask<Admission> AdmitAsync(VirtualKey? key, InferenceRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (key is null)
        {
            return Admission.Unlimited;
        }

        if (!key.AllowsModel(request.Model))
        {
            return new Admission(null, KeyAuthenticator.ModelNotAllowed(request.Model));
        }

        var period = key.BudgetPeriod ?? "month";
        var now = time.GetUtcNow();
        var limits = new RateLimits(key.Id.ToString("N"), key.Rpm, key.Tpm, key.MaxParallel, key.BudgetUsd, key.BudgetUsd is null ? null : BudgetPeriods.Id(period, now));
        if (!limits.Any)
        {
            return Admission.Unlimited;
        }

        RateDecision decision;
        RateLease? lease;
        try
        {
            (decision, lease) = await limiter.AdmitAsync(limits, Reservation(request), ct => spend.SpentSinceAsync(key.Id, BudgetPeriods.Start(period, now), ct), cancellationToken);
        }
        catch (RateLimiterUnavailableException)
        {
            return new Admission(null, new OpenAiError(StatusCodes.Status503ServiceUnavailable, "Rate limits cannot be checked right now; retry shortly.", OpenAiError.ServerError, null, "rate_limiter_unavailable") { RetryAfter = TimeSpan.FromSeconds(1) });
        }

        if (decision.RefusedBy == RateLimitKind.Budget)
        {
            metrics.RateLimited("budget");
            return new Admission(null, new OpenAiError(
                StatusCodes.Status429TooManyRequests,
                $"You exceeded your current quota: this key's budget is {key.BudgetUsd} USD per {period} and {decision.Spent:0.####} USD is spent.",
                "insufficient_quota",
                null,
                "insufficient_quota") { RetryAfter = BudgetPeriods.End(period, now) - now }, limits, decision);
        }

        if (!decision.Allowed)
        {
            metrics.RateLimited(decision.RefusedBy == RateLimitKind.Tokens ? "tokens" : decision.RefusedBy == RateLimitKind.Parallel ? "parallel" : "requests");
            var retryAfter = decision.RefusedBy == RateLimitKind.Parallel ? TimeSpan.FromSeconds(1) : decision.ResetIn;
            return new Admission(null, new OpenAiError(StatusCodes.Status429TooManyRequests, RateLimitHeaders.Message(limits, decision), decision.RefusedBy == RateLimitKind.Tokens ? "tokens" : "requests", null, OpenAiError.RateLimit) { RetryAfter = retryAfter }, limits, decision);
        }

        return new Admission(lease, null, limits, decision);
    }
}
