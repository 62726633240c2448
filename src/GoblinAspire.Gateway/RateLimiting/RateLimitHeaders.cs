using System.Globalization;

namespace GoblinAspire.Gateway.RateLimiting;

/// <summary>OpenAI's rate-limit headers: limit, remaining and reset (as "1m30s"-style durations) for requests and tokens.</summary>
public static class RateLimitHeaders
{
    public static void Write(HttpResponse response, RateLimits limits, RateDecision decision)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(decision);
        var reset = Duration(decision.ResetIn);
        if (limits.Rpm is { } rpm)
        {
            response.Headers["x-ratelimit-limit-requests"] = Number(rpm);
            response.Headers["x-ratelimit-remaining-requests"] = Number(Math.Max(0, rpm - decision.Requests));
            response.Headers["x-ratelimit-reset-requests"] = reset;
        }

        if (limits.Tpm is { } tpm)
        {
            response.Headers["x-ratelimit-limit-tokens"] = Number(tpm);
            response.Headers["x-ratelimit-remaining-tokens"] = Number(Math.Max(0, tpm - decision.Tokens));
            response.Headers["x-ratelimit-reset-tokens"] = reset;
        }
    }

    public static string Message(RateLimits limits, RateDecision decision)
    {
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(decision);
        return decision.RefusedBy switch
        {
            RateLimitKind.Requests => $"Rate limit reached for requests per minute: limit {limits.Rpm}, used {decision.Requests}. Retry in {Duration(decision.ResetIn)}.",
            RateLimitKind.Tokens => $"Rate limit reached for tokens per minute: limit {limits.Tpm}, used {decision.Tokens} (including reservations for requests in flight). Retry in {Duration(decision.ResetIn)}.",
            _ => $"Too many requests in flight for this key: limit {limits.MaxParallel}.",
        };
    }

    /// <summary>OpenAI's format: <c>6m0s</c>, <c>1s</c>, <c>120ms</c>.</summary>
    public static string Duration(TimeSpan value)
    {
        if (value < TimeSpan.FromSeconds(1))
        {
            return Number((long)Math.Ceiling(value.TotalMilliseconds)) + "ms";
        }

        var seconds = (long)Math.Ceiling(value.TotalSeconds);
        return seconds >= 60 ? $"{Number(seconds / 60)}m{Number(seconds % 60)}s" : $"{Number(seconds)}s";
    }

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
}
