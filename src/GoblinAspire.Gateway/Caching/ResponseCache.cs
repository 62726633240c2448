using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using GoblinAspire.Gateway.OpenAi;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace GoblinAspire.Gateway.Caching;

/// <summary>A cached answer: its content type and body bytes (a whole JSON answer, or a whole SSE stream).</summary>
public sealed record CachedAnswer(string ContentType, byte[] Body);

/// <summary>Where whole answers are kept for exact repeats of deterministic requests.</summary>
public interface IAnswerCache
{
    /// <summary>The largest answer worth keeping; a longer one is not captured.</summary>
    long MaxEntryBytes { get; }

    /// <summary>The entry key for a request, or null when the request is not to be cached.</summary>
    string? KeyFor(InferenceRequest request, string? requestHeader, string? team);

    Task<CachedAnswer?> GetAsync(string key, CancellationToken cancellationToken);

    Task SetAsync(string key, CachedAnswer answer);
}

/// <summary>
/// Exact-match answers for deterministic requests (temperature 0, or the <c>force</c> header), keyed by a hash of the
/// normalised request and scoped per team. L1 is a bounded in-memory cache per replica; L2 is Redis with a TTL, shared
/// by the replicas. Only complete, successful answers are ever stored.
/// </summary>
public sealed class ResponseCache(IConnectionMultiplexer redis, IOptions<CacheOptions> options, Microsoft.Extensions.Logging.ILogger<ResponseCache> logger) : IAnswerCache, IDisposable
{
    private static readonly TimeSpan RedisTimeout = TimeSpan.FromMilliseconds(200);
    private readonly CacheOptions _options = options.Value;
    private readonly MemoryCache _memory = new(new MemoryCacheOptions { SizeLimit = Math.Max(1, options.Value.MemoryLimitBytes) });

    public long MaxEntryBytes => _options.MaxEntryBytes;

    public string? KeyFor(InferenceRequest request, string? requestHeader, string? team)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!_options.Enabled || string.Equals(requestHeader, "bypass", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var forced = string.Equals(requestHeader, "force", StringComparison.OrdinalIgnoreCase);
        if (!forced && request.Temperature is not 0)
        {
            return null;
        }

        byte[] normalized;
        try
        {
            normalized = Normalize(request.Body.Span);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Nesting deeper than the normaliser goes: served, just not cached.
            return null;
        }

        var scope = _options.ScopePerTeam ? "team:" + (team ?? "") : "global";
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(Encoding.UTF8.GetBytes($"{scope}\n{request.Operation}\n"));
        sha.AppendData(normalized);
        return "goblin:cache:" + Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    public async Task<CachedAnswer?> GetAsync(string key, CancellationToken cancellationToken)
    {
        if (_memory.TryGetValue(key, out CachedAnswer? local))
        {
            return local;
        }

        if (!redis.IsConnected)
        {
            return null;
        }

        try
        {
            var value = (byte[]?)await redis.GetDatabase().StringGetAsync(key).WaitAsync(RedisTimeout, cancellationToken);
            var answer = value is null ? null : Decode(value);
            if (answer is not null)
            {
                Remember(key, answer);
            }

            return answer;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return null;
        }
    }

    public async Task SetAsync(string key, CachedAnswer answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        if (answer.Body.Length > _options.MaxEntryBytes)
        {
            return;
        }

        Remember(key, answer);
        if (!redis.IsConnected)
        {
            return;
        }

        try
        {
            await redis.GetDatabase().StringSetAsync(key, Encode(answer), _options.Ttl).WaitAsync(RedisTimeout);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Microsoft.Extensions.Logging.LoggerExtensions.LogDebug(logger, "Could not store a cache entry in Redis: {Error}", ex.GetType().Name);
        }
    }

    public void Dispose() => _memory.Dispose();

    /// <summary>
    /// The request as JSON with object members sorted and <c>user</c> left out, so requests that differ only in
    /// member order or end-user id share an entry. Array order (messages) is kept: it changes the answer.
    /// </summary>
    public static byte[] Normalize(ReadOnlySpan<byte> body)
    {
        var node = JsonNode.Parse(body);
        if (node is JsonObject root)
        {
            root.Remove("user");
        }

        return Encoding.UTF8.GetBytes(Canonical(node)!.ToJsonString());
    }

    private static JsonNode? Canonical(JsonNode? node) => node switch
    {
        JsonObject obj => new JsonObject(obj.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Canonical(p.Value)))),
        JsonArray array => new JsonArray(array.Select(Canonical).ToArray()),
        null => null,
        _ => JsonNode.Parse(node.ToJsonString()),
    };

    private void Remember(string key, CachedAnswer answer) =>
        _memory.Set(key, answer, new MemoryCacheEntryOptions { Size = answer.Body.Length + answer.ContentType.Length + 64, AbsoluteExpirationRelativeToNow = _options.Ttl });

    private static byte[] Encode(CachedAnswer answer)
    {
        var type = Encoding.UTF8.GetBytes(answer.ContentType);
        var encoded = new byte[2 + type.Length + answer.Body.Length];
        encoded[0] = (byte)(type.Length >> 8);
        encoded[1] = (byte)type.Length;
        type.CopyTo(encoded, 2);
        answer.Body.CopyTo(encoded, 2 + type.Length);
        return encoded;
    }

    private static CachedAnswer? Decode(byte[] value)
    {
        if (value.Length < 2)
        {
            return null;
        }

        var length = (value[0] << 8) | value[1];
        return value.Length < 2 + length ? null : new CachedAnswer(Encoding.UTF8.GetString(value, 2, length), value[(2 + length)..]);
    }
}

/// <summary>Copies what the relay writes to the client, up to a bound, so a complete answer can be cached.</summary>
internal sealed class CapturingStream(Stream inner, long limit) : Stream
{
    private readonly MemoryStream _copy = new();

    public bool Overflowed { get; private set; }

    public byte[] Captured => _copy.ToArray();

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count)
    {
        Keep(buffer.AsSpan(offset, count));
        inner.Write(buffer, offset, count);
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Keep(buffer.Span);
        await inner.WriteAsync(buffer, cancellationToken);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private void Keep(ReadOnlySpan<byte> bytes)
    {
        if (Overflowed || _copy.Length + bytes.Length > limit)
        {
            Overflowed = true;
            return;
        }

        _copy.Write(bytes);
    }
}
