using GoblinAspire.Gateway.OpenAi;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Npgsql;

namespace GoblinAspire.Gateway.Keys;

/// <summary>
/// Checks the <c>Authorization: Bearer sk-goblin-…</c> key of an inference request. Lookups are cached per replica
/// for <see cref="AccessOptions.KeyCacheDuration"/> (by hash, never by the secret), which bounds how long a revoke
/// takes to reach every replica.
/// </summary>
public sealed class KeyAuthenticator(IKeyDirectory store, IMemoryCache cache, IOptions<AccessOptions> options, TimeProvider time)
{
    private readonly AccessOptions _options = options.Value;

    /// <summary>The key presented, or null for an anonymous request where keys are optional; or an error to answer.</summary>
    public Task<(VirtualKey? Key, OpenAiError? Error)> AuthenticateAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return AuthenticateAsync(request.Headers.Authorization.ToString(), cancellationToken);
    }

    /// <param name="header">The request's <c>Authorization</c> header, empty when it has none.</param>
    public async Task<(VirtualKey? Key, OpenAiError? Error)> AuthenticateAsync(string header, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(header);
        var secret = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : null;
        if (string.IsNullOrEmpty(secret) || (!_options.RequireKeys && !secret.StartsWith(KeyStore.KeyPrefix, StringComparison.Ordinal)))
        {
            return _options.RequireKeys
                ? (null, new OpenAiError(StatusCodes.Status401Unauthorized, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", OpenAiError.InvalidRequest))
                : (null, null);
        }

        var hash = Convert.ToHexString(KeyStore.Hash(secret));
        var cacheKey = "goblin-key:" + hash;
        if (!cache.TryGetValue(cacheKey, out VirtualKey? key))
        {
            var lastKnown = "goblin-key-known:" + hash;
            try
            {
                key = secret.StartsWith(KeyStore.KeyPrefix, StringComparison.Ordinal) && secret.Length < 200 ? await store.FindBySecretAsync(secret, cancellationToken) : null;
            }
            catch (NpgsqlException) when (!cancellationToken.IsCancellationRequested)
            {
                // PostgreSQL is away: a key seen before keeps its last known state, for at most KeyStaleness.
                return cache.TryGetValue(lastKnown, out VirtualKey? known) && known is not null
                    ? Usable(known, secret)
                    : (null, KeyStoreUnavailable);
            }

            if (_options.KeyCacheDuration > TimeSpan.Zero)
            {
                cache.Set(cacheKey, key, _options.KeyCacheDuration);
            }

            if (key is not null && _options.KeyStaleness > TimeSpan.Zero)
            {
                cache.Set(lastKnown, key, _options.KeyStaleness);
            }
        }

        return Usable(key, secret);
    }

    /// <summary>OpenAI's shape for a passing outage: 503 with Retry-After, never a 500.</summary>
    private static readonly OpenAiError KeyStoreUnavailable = new(
        StatusCodes.Status503ServiceUnavailable,
        "The key store is unavailable and this API key has not been seen recently; retry shortly.",
        OpenAiError.ServerError,
        null,
        "key_store_unavailable")
    {
        RetryAfter = TimeSpan.FromSeconds(5),
    };

    private (VirtualKey? Key, OpenAiError? Error) Usable(VirtualKey? key, string secret)
    {
        if (key is null || !key.IsUsable(time.GetUtcNow()))
        {
            var why = key is null ? "Incorrect API key provided" : key.RevokedAt is not null ? "This API key has been revoked" : key.Disabled ? "This API key is disabled" : "This API key has expired";
            return (null, new OpenAiError(StatusCodes.Status401Unauthorized, $"{why}: {Mask(secret)}.", OpenAiError.InvalidRequest, null, "invalid_api_key"));
        }

        return (key, null);
    }

    public static OpenAiError ModelNotAllowed(string model) =>
        new(StatusCodes.Status403Forbidden, $"This API key is not allowed to use the model `{model}`.", OpenAiError.InvalidRequest, "model", "model_not_allowed");

    /// <summary>Enough of a key to recognise it in an error, never enough to use it.</summary>
    public static string Mask(string secret) =>
        secret.Length <= 16 ? "****" : $"{secret[..Math.Min(KeyStore.KeyPrefix.Length, secret.Length)]}****{secret[^4..]}";
}
