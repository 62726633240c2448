using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using GoblinAspire.ServiceDefaults.Access;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Access;

/// <summary>
/// Tokens a training job gets instead of the registry's own: valid for one MLflow run, until an expiry. A token is
/// <c>grt_{run}.{expiry}.{mac}</c>, an HMAC-SHA256 under a key derived from the registry token, so the registry checks
/// it without storing anything and every replica agrees; rotating the registry token revokes every run token.
/// </summary>
public sealed class RunTokens(IOptions<ServiceAccessOptions> options, TimeProvider time)
{
    public const string Prefix = "grt_";
    public static readonly TimeSpan MaxLifetime = TimeSpan.FromDays(7);

    // Derived on first use: the options are validated when the host starts, after the pipeline is built.
    private readonly Lazy<byte[]?> _derived = new(() => options.Value.Token is { Length: > 0 } token
        ? HMACSHA256.HashData(Encoding.UTF8.GetBytes(token), "goblin-run-token"u8)
        : null);

    private byte[]? Key => _derived.Value;

    public bool CanMint => Key is not null;

    public (string Token, DateTimeOffset ExpiresAt) Mint(string runId, TimeSpan lifetime)
    {
        ArgumentException.ThrowIfNullOrEmpty(runId);
        var key = Key ?? throw new InvalidOperationException("Run tokens need the registry token.");
        var expires = time.GetUtcNow() + (lifetime > MaxLifetime ? MaxLifetime : lifetime);
        var payload = $"{runId}.{expires.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)}";
        return ($"{Prefix}{payload}.{Mac(key, payload)}", DateTimeOffset.FromUnixTimeSeconds(expires.ToUnixTimeSeconds()));
    }

    /// <returns>The run the token is for, or null when it is not a valid, unexpired run token.</returns>
    public string? RunOf(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (Key is null || !token.StartsWith(Prefix, StringComparison.Ordinal) || token.Length > 256)
        {
            return null;
        }

        var parts = token[Prefix.Length..].Split('.');
        if (parts.Length != 3 || parts[0].Length == 0 || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var expires))
        {
            return null;
        }

        var expected = Encoding.ASCII.GetBytes(Mac(Key, $"{parts[0]}.{parts[1]}"));
        return CryptographicOperations.FixedTimeEquals(expected, Encoding.ASCII.GetBytes(parts[2])) && time.GetUtcNow().ToUnixTimeSeconds() < expires
            ? parts[0]
            : null;
    }

    private static string Mac(byte[] key, string payload) =>
        Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(payload))).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
