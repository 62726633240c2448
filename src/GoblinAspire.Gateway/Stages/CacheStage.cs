using GoblinAspire.Gateway.Caching;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.Telemetry;

namespace GoblinAspire.Gateway.Stages;

/// <summary>The cache stage's answer: no key (not cacheable), a key and a hit to replay, or a key to fill on a miss.</summary>
public readonly record struct CacheLookup(string? Key, CachedAnswer? Hit);

/// <summary>
/// Exact repeats of deterministic requests: looks a request up before it is routed, and keeps a whole, successful
/// answer afterwards. Which requests are cacheable and for whom is <see cref="IAnswerCache.KeyFor"/>'s to say.
/// </summary>
public sealed class CacheStage(IAnswerCache cache, GatewayMetrics metrics)
{
    public long MaxEntryBytes => cache.MaxEntryBytes;

    /// <param name="storedResponse">
    /// A Responses API request whose answer is stored: it has an identity its caller owns, and a replay would hand
    /// out another caller's id, so it is never cached.
    /// </param>
    public async ValueTask<CacheLookup> LookupAsync(InferenceRequest request, bool storedResponse, string? cacheHeader, string? team, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var key = storedResponse ? null : cache.KeyFor(request, cacheHeader, team);
        if (key is null)
        {
            return default;
        }

        var hit = await cache.GetAsync(key, cancellationToken);
        metrics.Cache(hit: hit is not null);
        return new CacheLookup(key, hit);
    }

    /// <summary>Only a whole, successful answer that fitted the capture is kept: never an error, never a stream that broke off.</summary>
    public static bool Keeps(RequestOutcome? outcome, bool overflowed) =>
        !overflowed && outcome is { Complete: true, Status: StatusCodes.Status200OK };

    public Task KeepAsync(string key, string contentType, byte[] body) => cache.SetAsync(key, new CachedAnswer(contentType, body));
}
