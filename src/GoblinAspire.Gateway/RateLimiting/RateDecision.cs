namespace GoblinAspire.Gateway.RateLimiting;

/// <summary>Which limit refused a request.</summary>
public enum RateLimitKind
{
    None,
    Requests,
    Tokens,
    Parallel,
    Budget,
}

/// <summary>
/// The outcome of one admission: allowed or refused by which limit, with the counters after the decision, for the
/// <c>x-ratelimit-*</c> headers.
/// </summary>
public sealed record RateDecision(RateLimitKind RefusedBy, long Requests, long Tokens, long Parallel, TimeSpan ResetIn, decimal Spent = 0)
{
    public bool Allowed => RefusedBy == RateLimitKind.None;
}

/// <summary>The limits of one key; null means unlimited. <see cref="BudgetPeriod"/> is the id of the current period.</summary>
public sealed record RateLimits(string Subject, int? Rpm, int? Tpm, int? MaxParallel, decimal? BudgetUsd = null, string? BudgetPeriod = null)
{
    public bool Any => Rpm is not null || Tpm is not null || MaxParallel is not null || BudgetUsd is not null;
}
