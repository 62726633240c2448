using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>What a resumable upload will become once all its bytes are in.</summary>
public sealed record UploadTarget(string Bucket, string Name, ObjectAttributes Attributes, Preconditions Preconditions, DeclaredHashes? Declared, long? TotalSize);

/// <summary>A chunk's <c>Content-Range</c>: <c>bytes a-b/total</c>, <c>bytes a-b/*</c>, <c>bytes */total</c> or <c>bytes */*</c>.</summary>
public readonly record struct ChunkRange(long? First, long? Last, long? Total)
{
    public long Length => First is { } first ? Last!.Value - first + 1 : 0;

    public static ChunkRange Parse(string? header, long? bodyLength)
    {
        if (string.IsNullOrEmpty(header))
        {
            // No Content-Range: the body is the whole object.
            return bodyLength is { } length
                ? new ChunkRange(length == 0 ? null : 0, length == 0 ? null : length - 1, length)
                : throw GcsException.Invalid("A chunk of unknown length needs a Content-Range.");
        }

        var slash = header.IndexOf('/', StringComparison.Ordinal);
        if (!header.StartsWith("bytes ", StringComparison.Ordinal) || slash < 6)
        {
            throw GcsException.Invalid($"Invalid Content-Range: '{header}'.");
        }

        var span = header.AsSpan(6, slash - 6);
        var totalText = header.AsSpan(slash + 1);
        long? total = totalText is "*" ? null : long.TryParse(totalText, System.Globalization.NumberStyles.None, null, out var t) ? t : throw GcsException.Invalid($"Invalid Content-Range: '{header}'.");
        if (span is "*")
        {
            return new ChunkRange(null, null, total);
        }

        var dash = span.IndexOf('-');
        if (dash <= 0
            || !long.TryParse(span[..dash], System.Globalization.NumberStyles.None, null, out var first)
            || !long.TryParse(span[(dash + 1)..], System.Globalization.NumberStyles.None, null, out var last)
            || last < first
            || total is { } max && last >= max)
        {
            throw GcsException.Invalid($"Invalid Content-Range: '{header}'.");
        }

        if (bodyLength is { } declared && declared != last - first + 1)
        {
            throw GcsException.Invalid($"Content-Range '{header}' declares {last - first + 1} bytes but the body has {declared}.");
        }

        return new ChunkRange(first, last, total);
    }
}

/// <summary>The outcome of a chunk: the finished object, or how many bytes the session holds.</summary>
public sealed record ChunkResult(ObjectRecord? Object, long Received);

/// <summary>
/// GCS resumable uploads. A session holds its bytes in a pending object's frames as they arrive, so finishing costs
/// no second pass over a multi-gigabyte file. Sessions live in this process: a restart drops them, and a client
/// that asks about one then gets 404 and starts again, as it does for any expired GCS session.
/// </summary>
public sealed class UploadSessions(IObjectStore store, IOptions<StorageOptions> options, TimeProvider time) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Session> _sessions = new(StringComparer.Ordinal);

    public async Task<string> StartAsync(UploadTarget target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        await DropExpiredAsync();
        var pending = await store.BeginWriteAsync(target.Bucket, cancellationToken);
        var id = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).Replace('+', '-').Replace('/', '_');
        _sessions[id] = new Session(target, pending, time.GetUtcNow());
        return id;
    }

    /// <summary>Appends a chunk; the bytes before what the session already holds are skipped, as GCS skips them.</summary>
    public async Task<ChunkResult> AppendAsync(string id, string bucket, ChunkRange range, Stream body, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        var session = Find(id, bucket);
        await session.Lock.WaitAsync(cancellationToken);
        try
        {
            if (session.Result is { } done)
            {
                return new ChunkResult(done, done.Size);
            }

            var total = session.Target.TotalSize;
            if (range.Total is { } declaredTotal)
            {
                if (total is { } known && known != declaredTotal)
                {
                    throw GcsException.Invalid($"The upload's total size was {known} bytes; this chunk says {declaredTotal}.");
                }

                total = declaredTotal;
                session.Target = session.Target with { TotalSize = declaredTotal };
            }

            var writer = session.Pending.Writer;
            if (range.First is { } first)
            {
                if (first > writer.Length)
                {
                    throw GcsException.Invalid($"The chunk starts at byte {first}, but the session holds only {writer.Length} bytes.");
                }

                await SkipAsync(body, writer.Length - first, cancellationToken);
                await writer.WriteFromAsync(body, range.Last!.Value - writer.Length + 1, cancellationToken);
            }

            if (total is { } size && writer.Length == size)
            {
                return new ChunkResult(await FinishAsync(id, session, cancellationToken), size);
            }

            if (total is { } expected && writer.Length > expected)
            {
                throw GcsException.Invalid($"The session holds {writer.Length} bytes, more than the declared {expected}.");
            }

            return new ChunkResult(null, writer.Length);
        }
        finally
        {
            session.Lock.Release();
        }
    }

    /// <summary>Cancels a session; false when there was none.</summary>
    public async Task<bool> CancelAsync(string id, string bucket)
    {
        var session = Find(id, bucket);
        await session.Lock.WaitAsync();
        try
        {
            if (!_sessions.TryRemove(id, out _))
            {
                return false;
            }

            await session.Pending.DisposeAsync();
            return true;
        }
        finally
        {
            session.Lock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var id in _sessions.Keys)
        {
            if (_sessions.TryRemove(id, out var session))
            {
                await session.Pending.DisposeAsync();
            }
        }
    }

    private Session Find(string id, string bucket) =>
        _sessions.TryGetValue(id, out var session) && session.Target.Bucket == bucket
            ? session
            : throw new GcsException(404, "notFound", "No such upload session (it finished, was cancelled, expired, or never existed).");

    private async Task<ObjectRecord> FinishAsync(string id, Session session, CancellationToken cancellationToken)
    {
        try
        {
            var target = session.Target;
            session.Result = await store.CommitAsync(session.Pending, target.Name, target.Attributes, target.Preconditions, target.Declared, cancellationToken);
            return session.Result;
        }
        catch
        {
            // A failed precondition or checksum ends the session, as in GCS: its bytes can never become the object.
            _sessions.TryRemove(id, out _);
            throw;
        }
        finally
        {
            await session.Pending.DisposeAsync();
        }
    }

    private async Task DropExpiredAsync()
    {
        var cutoff = time.GetUtcNow() - options.Value.UploadSessionLifetime;
        foreach (var (id, session) in _sessions)
        {
            if (session.Started < cutoff && _sessions.TryRemove(id, out _))
            {
                await session.Pending.DisposeAsync();
            }
        }
    }

    private static async Task SkipAsync(Stream body, long count, CancellationToken cancellationToken)
    {
        var buffer = new byte[Math.Min(count, 64 * 1024)];
        while (count > 0)
        {
            var read = await body.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, count)), cancellationToken);
            if (read == 0)
            {
                return;
            }

            count -= read;
        }
    }

    private sealed class Session(UploadTarget target, PendingObject pending, DateTimeOffset started)
    {
        public UploadTarget Target { get; set; } = target;

        public PendingObject Pending { get; } = pending;

        public DateTimeOffset Started { get; } = started;

        public SemaphoreSlim Lock { get; } = new(1, 1);

        public ObjectRecord? Result { get; set; }
    }
}
