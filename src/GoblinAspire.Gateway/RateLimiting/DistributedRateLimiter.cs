using System.Collections.Concurrent;
using GoblinAspire.Gateway.Keys;
using GoblinAspire.Gateway.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace GoblinAspire.Gateway.RateLimiting;

/// <summary>
/// RPM, TPM and parallel-request limits shared by every gateway replica through Redis. Admission is one Lua script,
/// one round trip: it checks all three limits and, only if all pass, counts the request and reserves its tokens
/// (prompt estimate + max_tokens) in the current window, atomically. Concurrent long requests therefore cannot
/// overshoot a TPM limit between their start and their end; <see cref="ReleaseAsync"/> later corrects the reservation
/// to the real usage and frees the parallel slot.
/// While Redis cannot answer within <see cref="AccessOptions.RedisTimeout"/>, the configured failure mode applies:
/// a per-replica in-memory limiter with the same rules ("open"), or refusal ("closed"). Recovery needs nothing: the
/// next request that reaches Redis uses it again. Operators see both: every admission's round trip in
/// <c>rate_limit_admission_seconds</c>, every request decided without Redis in <c>rate_limit_fallbacks_total</c>, and
/// one log line when the limits stop being shared and one when they are shared again.
/// </summary>
public sealed class DistributedRateLimiter(
    IConnectionMultiplexer redis,
    IOptions<AccessOptions> options,
    GatewayMetrics metrics,
    TimeProvider time,
    ILogger<DistributedRateLimiter> logger) : IRateGate
{
    // KEYS: requests, tokens, parallel, spend. ARGV: rpm, tpm, parallel, budget (-1 = unlimited), tokens to reserve,
    // window ms. Answers {decision, requests, tokens, parallel, spend}; decision 5 = the period's spend is not in Redis.
    private const string AdmitScript = """
        local rpm, tpm, par, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
        local reserve, window = tonumber(ARGV[5]), tonumber(ARGV[6])
        local req = tonumber(redis.call('GET', KEYS[1]) or '0')
        local tok = tonumber(redis.call('GET', KEYS[2]) or '0')
        local cur = tonumber(redis.call('GET', KEYS[3]) or '0')
        local spent = '0'
        if budget >= 0 then
            spent = redis.call('GET', KEYS[4])
            if not spent then return {5, req, tok, cur, '0'} end
            if tonumber(spent) >= budget then return {4, req, tok, cur, spent} end
        end
        if rpm >= 0 and req + 1 > rpm then return {1, req, tok, cur, spent} end
        if tpm >= 0 and tok + reserve > tpm then return {2, req, tok, cur, spent} end
        if par >= 0 and cur + 1 > par then return {3, req, tok, cur, spent} end
        req = redis.call('INCR', KEYS[1])
        redis.call('PEXPIRE', KEYS[1], window)
        tok = redis.call('INCRBY', KEYS[2], reserve)
        redis.call('PEXPIRE', KEYS[2], window)
        cur = redis.call('INCR', KEYS[3])
        redis.call('PEXPIRE', KEYS[3], 600000)
        return {0, req, tok, cur, spent}
        """;

    // KEYS: tokens, parallel, spend. ARGV: token correction (may be negative), cost in USD.
    private const string ReleaseScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], ARGV[1]) end
        local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
        if cur > 0 then redis.call('DECR', KEYS[2]) end
        if tonumber(ARGV[2]) > 0 and redis.call('EXISTS', KEYS[3]) == 1 then redis.call('INCRBYFLOAT', KEYS[3], ARGV[2]) end
        return 1
        """;

    // A period's spend lives in Redis for the period plus this margin, then is seeded from PostgreSQL again if needed.
    private static readonly TimeSpan SpendRetention = TimeSpan.FromDays(40);

    private readonly AccessOptions _options = options.Value;
    private readonly ConcurrentDictionary<string, LocalCounters> _fallback = new(StringComparer.Ordinal);

    // 1 while admissions are decided without Redis, so an outage is logged once, not once per request.
    private int _degraded;

    /// <param name="spentSoFar">Reads the period's spend from the durable record, when Redis no longer has it.</param>
    public async Task<(RateDecision Decision, RateLease? Lease)> AdmitAsync(RateLimits limits, long reserveTokens, Func<CancellationToken, Task<decimal>> spentSoFar, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(spentSoFar);
        var (window, resetIn) = CurrentWindow();
        string reason = "unreachable";
        if (redis.IsConnected)
        {
            try
            {
                var started = time.GetTimestamp();
                var keys = Keys(limits, window, "req", "tok", "par", "spend");
                RedisValue[] arguments = [limits.Rpm ?? -1, limits.Tpm ?? -1, limits.MaxParallel ?? -1, (limits.BudgetUsd ?? -1m).ToString(System.Globalization.CultureInfo.InvariantCulture), reserveTokens, (long)_options.RateWindow.TotalMilliseconds];
                var database = redis.GetDatabase();
                var result = await EvaluateAsync(database, keys, arguments, cancellationToken);
                metrics.Admission(time.GetElapsedTime(started));
                if ((int)result[0] == 5)
                {
                    // First request of the period since Redis lost (or never had) it: seed from PostgreSQL once.
                    var spent = await spentSoFar(cancellationToken);
                    await database.StringSetAsync(keys[3], spent.ToString(System.Globalization.CultureInfo.InvariantCulture), SpendRetention, When.NotExists).WaitAsync(_options.RedisTimeout, cancellationToken);
                    result = await EvaluateAsync(database, keys, arguments, cancellationToken);
                }

                // Read first: the exchange would contend on one cache line for every request of every core.
                if (Volatile.Read(ref _degraded) == 1 && Interlocked.Exchange(ref _degraded, 0) == 1)
                {
                    RateLimiterLog.Shared(logger);
                }

                var decision = new RateDecision((RateLimitKind)(int)result[0], (long)result[1], (long)result[2], (long)result[3], resetIn, decimal.Parse((string)result[4]!, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture));
                return (decision, decision.Allowed ? new RateLease(limits, window, reserveTokens, Local: false) : null);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // Whatever a dying or restarting Redis throws (a connection reset mid-reply, a disposed socket, a reply
                // cut short) is Redis being away: fall through to the failure mode, never to a 500.
                reason = ex is TimeoutException ? "timeout" : "error";
            }
        }

        metrics.RateLimiterFallback(_options.RedisFailureMode, reason);
        if (Volatile.Read(ref _degraded) == 0 && Interlocked.Exchange(ref _degraded, 1) == 0)
        {
            RateLimiterLog.NotShared(logger, reason, _options.RedisFailureMode);
        }

        if (_options.RedisFailureMode == "closed")
        {
            throw new RateLimiterUnavailableException();
        }

        var local = _fallback.GetOrAdd(limits.Subject, _ => new LocalCounters()).Admit(limits, window, reserveTokens, resetIn);
        return (local, local.Allowed ? new RateLease(limits, window, reserveTokens, Local: true) : null);
    }

    /// <summary>
    /// Corrects the token reservation to <paramref name="actualTokens"/> (when known), adds <paramref name="costUsd"/>
    /// to the period's spend, and frees the parallel slot.
    /// </summary>
    public async Task ReleaseAsync(RateLease lease, long? actualTokens, decimal costUsd)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var correction = actualTokens is { } actual ? actual - lease.Reserved : 0;
        if (lease.Local)
        {
            _fallback.GetOrAdd(lease.Limits.Subject, _ => new LocalCounters()).Release(lease.Window, correction, costUsd);
            return;
        }

        try
        {
            // Nothing waits for the answer, so none is read: fire-and-forget keeps the release off every thread.
            // It still goes down the same connection after the admission, so Redis applies the two in order.
            await redis.GetDatabase().ScriptEvaluateAsync(ReleaseScript, Keys(lease.Limits, lease.Window, "tok", "par", "spend"), [correction, costUsd.ToString(System.Globalization.CultureInfo.InvariantCulture)], CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The parallel counter expires on its own; a lost correction only leaves the reservation standing.
        }
    }

    private (long Window, TimeSpan ResetIn) CurrentWindow()
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var length = (long)_options.RateWindow.TotalMilliseconds;
        var window = now / length;
        return (window, TimeSpan.FromMilliseconds(((window + 1) * length) - now));
    }

    private async Task<RedisResult[]> EvaluateAsync(IDatabase database, RedisKey[] keys, RedisValue[] arguments, CancellationToken cancellationToken) =>
        (RedisResult[])(await database.ScriptEvaluateAsync(AdmitScript, keys, arguments).WaitAsync(_options.RedisTimeout, cancellationToken))!;

    // One hash tag per key so all its counters live in one Redis Cluster slot, as a script requires.
    private static RedisKey[] Keys(RateLimits limits, long window, params string[] counters) =>
        counters.Select(c => (RedisKey)(c switch
        {
            "par" => $"goblin:rl:{{{limits.Subject}}}:par",
            "spend" => $"goblin:rl:{{{limits.Subject}}}:spend:{limits.BudgetPeriod ?? "none"}",
            _ => $"goblin:rl:{{{limits.Subject}}}:{c}:{window}",
        })).ToArray();

    /// <summary>The same rules as the script, for one replica, while Redis is away.</summary>
    private sealed class LocalCounters
    {
        private readonly Lock _lock = new();
        private long _window = -1;
        private long _requests;
        private long _tokens;
        private long _parallel;
        private string? _period;
        private decimal _spent;

        public RateDecision Admit(RateLimits limits, long window, long reserve, TimeSpan resetIn)
        {
            lock (_lock)
            {
                if (window != _window)
                {
                    _window = window;
                    _requests = 0;
                    _tokens = 0;
                }

                if (limits.BudgetPeriod != _period)
                {
                    _period = limits.BudgetPeriod;
                    _spent = 0;
                }

                var refused = limits.BudgetUsd is { } budget && _spent >= budget ? RateLimitKind.Budget
                    : limits.Rpm is { } rpm && _requests + 1 > rpm ? RateLimitKind.Requests
                    : limits.Tpm is { } tpm && _tokens + reserve > tpm ? RateLimitKind.Tokens
                    : limits.MaxParallel is { } max && _parallel + 1 > max ? RateLimitKind.Parallel
                    : RateLimitKind.None;
                if (refused == RateLimitKind.None)
                {
                    _requests++;
                    _tokens += reserve;
                    _parallel++;
                }

                return new RateDecision(refused, _requests, _tokens, _parallel, resetIn, _spent);
            }
        }

        public void Release(long window, long correction, decimal cost)
        {
            lock (_lock)
            {
                _spent += cost;
                if (window == _window)
                {
                    _tokens += correction;
                }

                _parallel = Math.Max(0, _parallel - 1);
            }
        }
    }
}

internal static partial class RateLimiterLog
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "Rate limits are no longer shared through Redis ({Reason}). Failure mode {Mode}: open applies per-replica limits, closed refuses with 503.")]
    public static partial void NotShared(ILogger logger, string reason, string mode);

    [LoggerMessage(Level = LogLevel.Information, Message = "Rate limits are shared through Redis again.")]
    public static partial void Shared(ILogger logger);
}

/// <summary>Redis is unreachable and the failure mode is "closed".</summary>
public sealed class RateLimiterUnavailableException : Exception
{
    public RateLimiterUnavailableException()
        : base("The rate limiter is unavailable.")
    {
    }

    public RateLimiterUnavailableException(string message)
        : base(message)
    {
    }

    public RateLimiterUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
