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

/// <summary>A granted admission to release when the request ends.</summary>
public sealed record RateLease(RateLimits Limits, long Window, long Reserved, bool Local);

/// <summary>
/// Admits requests against shared limits and takes the admission back when they end. Admission may throw
/// <see cref="RateLimiterUnavailableException"/> when limits cannot be checked and the failure mode is closed.
/// </summary>
public interface IRateGate
{
    /// <param name="spentSoFar">Reads the period's spend from the durable record, when the shared store no longer has it.</param>
    Task<(RateDecision Decision, RateLease? Lease)> AdmitAsync(RateLimits limits, long reserveTokens, Func<CancellationToken, Task<decimal>> spentSoFar, CancellationToken cancellationToken);

    /// <summary>Corrects the reservation to the tokens used (when known), adds the cost to the period's spend, frees the parallel slot.</summary>
    Task ReleaseAsync(RateLease lease, long? actualTokens, decimal costUsd);
}
