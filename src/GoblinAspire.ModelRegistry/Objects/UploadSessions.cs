using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>What a resumable upload will become once all its bytes are in.</summary>
public sealed record UploadTarget(string Bucket, string Name, ObjectAttributes Attributes, Preconditions Preconditions, DeclaredHashes? Declared, long? TotalSize);

/// <summary>
/// A chunk's <c>Content-Range</c>, in every form GCS accepts: <c>bytes a-b/total</c>, <c>bytes a-b/*</c>,
/// <c>bytes a-*/total</c> and <c>bytes a-*/*</c> (the body runs to the request's end), <c>bytes */total</c> and
/// <c>bytes */*</c> (status queries; with a total, also the finish of an upload whose bytes are all in).
/// </summary>
public readonly record struct ChunkRange(long? First, long? Last, long? Total, bool ToEnd = false)
{
    public static ChunkRange Parse(string? header, long? bodyLength)
    {
        if (string.IsNullOrEmpty(header))
        {
            // No Content-Range: the body is the whole object.
            return bodyLength is { } length
                ? new ChunkRange(length == 0 ? null : 0, length == 0 ? null : length - 1, length)
                : new ChunkRange(0, null, null, ToEnd: true);
        }

        var text = header.Trim();
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (!text.StartsWith("bytes ", StringComparison.OrdinalIgnoreCase) || slash < 7)
        {
            throw Invalid(header);
        }

        var span = text.AsSpan(6, slash - 6).Trim();
        var totalText = text.AsSpan(slash + 1).Trim();
        long? total = totalText is "*" ? null : Number(totalText) ?? throw Invalid(header);
        if (span is "*")
        {
            if (bodyLength is > 0)
            {
                throw GcsException.Invalid($"Content-Range '{Printable(header)}' names no bytes, but the request has a body.");
            }

            return new ChunkRange(null, null, total);
        }

        var dash = span.IndexOf('-');
        if (dash <= 0 || Number(span[..dash]) is not { } first)
        {
            throw Invalid(header);
        }

        if (span[(dash + 1)..] is "*")
        {
            if (total is { } max && (first > max || bodyLength is { } body && first + body > max))
            {
                throw GcsException.Invalid($"Content-Range '{Printable(header)}' runs past the upload's total size.");
            }

            return new ChunkRange(first, bodyLength is { } known && known > 0 ? first + known - 1 : null, total, ToEnd: true);
        }

        if (Number(span[(dash + 1)..]) is not { } last || last < first || total is { } size && last >= size)
        {
            throw Invalid(header);
        }

        if (bodyLength is { } declared && declared != last - first + 1)
        {
            throw GcsException.Invalid($"Content-Range '{Printable(header)}' declares {last - first + 1} bytes but the body has {declared}.");
        }

        return new ChunkRange(first, last, total);
    }

    private static long? Number(ReadOnlySpan<char> text) =>
        text.Length is > 0 and <= 18 && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;

    private static GcsException Invalid(string header) => GcsException.Invalid($"Invalid Content-Range: '{Printable(header)}'.");

    private static string Printable(string value) => new(value.Take(100).Select(c => char.IsControl(c) ? '?' : c).ToArray());
}

/// <summary>The outcome of a chunk: the finished object, or how many bytes the session holds for certain.</summary>
public sealed record ChunkResult(ObjectRecord? Object, long Received);

/// <summary>A resumable session as kept on disk: rewritten (atomically) only once the bytes it counts are durable.</summary>
internal sealed record UploadSessionRecord
{
    public required string Id { get; init; }

    public required UploadTarget Target { get; init; }

    public required DateTimeOffset Started { get; init; }

    /// <summary>The frames file in the uploads folder; null until the first bytes arrive.</summary>
    public string? DataFile { get; init; }

    /// <summary>Plaintext bytes at the start of <see cref="DataFile"/> that are on disk for certain.</summary>
    public long Durable { get; init; }

    public string? KeyId { get; init; }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(UploadSessionRecord))]
internal sealed partial class UploadSessionJson : JsonSerializerContext;

/// <summary>
/// GCS resumable uploads. A session's bytes go straight into a pending object's frames as they arrive, so finishing
/// costs no second pass over a multi-gigabyte file. Sessions survive a restart: each lives in the uploads folder
/// under the artifact root as a record (<c>{id}.json</c>) and its frames, and at the end of every chunk the whole
/// frames received are made durable before the record is rewritten to count them. A crash therefore loses at most
/// the last partial frame, which the client is told it must resend: a session never claims bytes it does not have.
/// After a restart the first chunk copies the durable frames into a fresh pending object (verifying them on the way).
/// </summary>
public sealed partial class UploadSessions : IAsyncDisposable
{
    public const string FolderName = ".uploads";

    private static readonly Regex s_id = IdPattern();

    private readonly ConcurrentDictionary<string, Session> _sessions = new(StringComparer.Ordinal);
    private readonly IObjectStore _store;
    private readonly IOptions<StorageOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger<UploadSessions> _logger;

    public UploadSessions(IObjectStore store, IOptions<StorageOptions> options, IOptions<ModelRegistryOptions> registry, TimeProvider time, ILogger<UploadSessions> logger)
    {
        ArgumentNullException.ThrowIfNull(registry);
        _store = store;
        _options = options;
        _time = time;
        _logger = logger;
        Folder = Path.Combine(Path.GetFullPath(registry.Value.ArtifactRoot), FolderName);
        Directory.CreateDirectory(Folder);
        Load();
    }

    /// <summary>Where the sessions' records and frames are kept.</summary>
    public string Folder { get; }

    public async Task<string> StartAsync(UploadTarget target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var id = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).Replace('+', '-').Replace('/', '_');
        var record = new UploadSessionRecord { Id = id, Target = target, Started = _time.GetUtcNow() };
        await WriteRecordAsync(record, cancellationToken);
        _sessions[id] = new Session(record);
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

            if (Expired(session))
            {
                throw NoSuchSession();
            }

            var total = session.Record.Target.TotalSize;
            if (range.Total is { } declaredTotal)
            {
                if (total is { } known && known != declaredTotal)
                {
                    throw GcsException.Invalid($"The upload's total size was {known} bytes; this chunk says {declaredTotal}.");
                }

                total = declaredTotal;
            }

            if (range.First is null)
            {
                // A status query, or the finish of an upload whose bytes are all in.
                var held = session.Pending?.Writer.Length ?? session.Record.Durable;
                if (total is { } size && held == size)
                {
                    if (session.Pending is null)
                    {
                        await ReviveAsync(session, cancellationToken);
                    }

                    return new ChunkResult(await FinishAsync(session, total, cancellationToken), size);
                }

                if (total is { } smaller && held > smaller)
                {
                    throw GcsException.Invalid($"The session holds {held} bytes, more than the declared {smaller}.");
                }

                await RememberTotalAsync(session, total, cancellationToken);
                return new ChunkResult(null, session.Record.Durable);
            }

            var writer = (session.Pending ?? await ReviveAsync(session, cancellationToken)).Writer;
            var first = range.First.Value;
            if (first > writer.Length)
            {
                throw GcsException.Invalid($"The chunk starts at byte {first}, but the session holds only {session.Record.Durable} bytes.");
            }

            try
            {
                var end = range.Last is { } last ? last + 1 : total;
                await SkipAsync(body, writer.Length - first, cancellationToken);
                if (end is not { } stop || stop > writer.Length)
                {
                    // Not cancelled with the request: a half-written frame must not be left behind; a broken body
                    // ends the read on its own.
                    await writer.WriteFromAsync(body, end - writer.Length, CancellationToken.None);
                }
            }
            catch
            {
                // The connection broke, the body overran its range or the disk failed: keep what is durable, drop the
                // rest; the client asks where to go on from.
                await CheckpointAsync(session, abandon: true);
                throw;
            }

            if (range.ToEnd && total is null)
            {
                // The request's end was the upload's end.
                total = writer.Length;
            }

            if (total is { } expected && writer.Length > expected)
            {
                throw GcsException.Invalid($"The session holds {writer.Length} bytes, more than the declared {expected}.");
            }

            if (total is { } complete && writer.Length == complete)
            {
                return new ChunkResult(await FinishAsync(session, total, cancellationToken), complete);
            }

            await RememberTotalAsync(session, total, CancellationToken.None);
            await CheckpointAsync(session, abandon: false);
            return new ChunkResult(null, session.Record.Durable);
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

            await DeleteAsync(session);
            return true;
        }
        finally
        {
            session.Lock.Release();
        }
    }

    /// <summary>Ends sessions older than <see cref="StorageOptions.UploadSessionLifetime"/> and removes their files.</summary>
    /// <returns>How many were ended.</returns>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var ended = 0;
        foreach (var (id, session) in _sessions)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // A session busy with a chunk is left for the next sweep.
            if (!Expired(session) || !await session.Lock.WaitAsync(0, cancellationToken))
            {
                continue;
            }

            try
            {
                if (_sessions.TryRemove(id, out _))
                {
                    await DeleteAsync(session);
                    ended += session.Result is null ? 1 : 0;
                }
            }
            finally
            {
                session.Lock.Release();
            }
        }

        if (ended > 0)
        {
            LogSwept(_logger, ended);
        }

        return ended;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var session in _sessions.Values)
        {
            if (session.Pending is { } pending)
            {
                // The files stay: the next process takes the sessions up from their records.
                session.Pending = null;
                await pending.DisposeAsync();
            }
        }

        _sessions.Clear();
    }

    private Session Find(string id, string bucket) =>
        s_id.IsMatch(id) && _sessions.TryGetValue(id, out var session) && session.Record.Target.Bucket == bucket
            ? session
            : throw NoSuchSession();

    private static GcsException NoSuchSession() =>
        new(404, "notFound", "No such upload session (it finished, was cancelled, expired, or never existed).");

    private bool Expired(Session session) => session.Record.Started + _options.Value.UploadSessionLifetime < _time.GetUtcNow();

    /// <summary>The session's live pending object, made from its durable frames (after a restart or a broken chunk).</summary>
    private async Task<PendingObject> ReviveAsync(Session session, CancellationToken cancellationToken)
    {
        var record = session.Record;
        var dataFile = $"{record.Id}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}.frames";
        var pending = await _store.BeginWriteAtAsync(record.Target.Bucket, Path.Combine(Folder, dataFile), cancellationToken);
        pending.KeepFile = true;
        try
        {
            if (record.Durable > 0 && record.DataFile is { } previous)
            {
                var file = new FileStream(Path.Combine(Folder, previous), FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
                await using var plaintext = new FrameReadStream(file, record.Durable, _options.Value.Key(record.KeyId), record.KeyId is not null, 0, record.Durable);
                await pending.Writer.WriteFromAsync(plaintext, record.Durable, cancellationToken);
                if (pending.Writer.Length != record.Durable)
                {
                    throw new ObjectCorruptedException("the session's frames file is shorter than its record says");
                }
            }

            var durable = await pending.Writer.CheckpointAsync(cancellationToken);
            await WriteRecordAsync(record with { DataFile = dataFile, Durable = durable, KeyId = pending.KeyId }, cancellationToken);
        }
        catch (Exception ex) when (ex is ObjectCorruptedException or FileNotFoundException)
        {
            LogUnreadable(_logger, record.Id, ex);
            pending.KeepFile = false;
            await pending.DisposeAsync();
            _sessions.TryRemove(record.Id, out _);
            await DeleteAsync(session);
            throw new GcsException(404, "notFound", "The upload session's stored bytes could not be read back; start a new upload.");
        }
        catch
        {
            pending.KeepFile = false;
            await pending.DisposeAsync();
            throw;
        }

        DeleteData(record.DataFile);
        session.Record = session.Record with { DataFile = dataFile, KeyId = pending.KeyId };
        session.Pending = pending;
        return pending;
    }

    /// <summary>Makes the whole frames received durable and counts them in the record; <paramref name="abandon"/> drops the live writer after.</summary>
    private async Task CheckpointAsync(Session session, bool abandon)
    {
        if (session.Pending is not { } pending)
        {
            return;
        }

        try
        {
            var durable = await pending.Writer.CheckpointAsync(CancellationToken.None);
            if (durable != session.Record.Durable)
            {
                await WriteRecordAsync(session.Record with { Durable = durable }, CancellationToken.None);
            }
        }
        catch (IOException ex)
        {
            LogCheckpointFailed(_logger, session.Record.Id, ex);
            abandon = true;
        }

        if (abandon)
        {
            // Bytes past the durable ones may be half-framed: the next chunk starts again from the file.
            session.Pending = null;
            await pending.DisposeAsync();
        }
    }

    private async Task RememberTotalAsync(Session session, long? total, CancellationToken cancellationToken)
    {
        if (total is not null && session.Record.Target.TotalSize != total)
        {
            await WriteRecordAsync(session.Record with { Target = session.Record.Target with { TotalSize = total } }, cancellationToken);
        }
    }

    private async Task<ObjectRecord> FinishAsync(Session session, long? total, CancellationToken cancellationToken)
    {
        var pending = session.Pending!;
        var target = session.Record.Target with { TotalSize = total };
        try
        {
            session.Result = await _store.CommitAsync(pending, target.Name, target.Attributes, target.Preconditions, target.Declared, cancellationToken);
            return session.Result;
        }
        catch
        {
            // A failed precondition or checksum ends the session, as in GCS: its bytes can never become the object.
            _sessions.TryRemove(session.Record.Id, out _);
            throw;
        }
        finally
        {
            session.Pending = null;
            pending.KeepFile = false;
            await pending.DisposeAsync();
            DeleteData(session.Record.DataFile);
            File.Delete(RecordPath(session.Record.Id));
        }
    }

    private async Task DeleteAsync(Session session)
    {
        if (session.Pending is { } pending)
        {
            session.Pending = null;
            pending.KeepFile = false;
            await pending.DisposeAsync();
        }

        DeleteData(session.Record.DataFile);
        File.Delete(RecordPath(session.Record.Id));
    }

    private void DeleteData(string? dataFile)
    {
        if (dataFile is not null)
        {
            File.Delete(Path.Combine(Folder, dataFile));
        }
    }

    private string RecordPath(string id) => Path.Combine(Folder, id + ".json");

    private async Task WriteRecordAsync(UploadSessionRecord record, CancellationToken cancellationToken)
    {
        var temporary = Path.Combine(Folder, $"{record.Id}.{Guid.NewGuid():N}.tmp");
        await using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous))
        {
            await file.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(record, UploadSessionJson.Default.UploadSessionRecord), CancellationToken.None);
            file.Flush(flushToDisk: true);
        }

        cancellationToken.ThrowIfCancellationRequested();
        File.Move(temporary, RecordPath(record.Id), overwrite: true);
        if (_sessions.TryGetValue(record.Id, out var session))
        {
            session.Record = record;
        }
    }

    /// <summary>Takes up the sessions a previous process left; files no record counts (a crash's leftovers) go.</summary>
    private void Load()
    {
        var kept = new HashSet<string>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFiles(Folder, "*.json"))
        {
            try
            {
                var record = JsonSerializer.Deserialize(File.ReadAllBytes(path), UploadSessionJson.Default.UploadSessionRecord);
                if (record is null || !s_id.IsMatch(record.Id) || Path.GetFileNameWithoutExtension(path) != record.Id)
                {
                    throw new JsonException("not a session record");
                }

                _sessions[record.Id] = new Session(record);
                kept.Add(Path.GetFileName(path));
                if (record.DataFile is { } data)
                {
                    kept.Add(data);
                }
            }
            catch (JsonException ex)
            {
                LogUnreadable(_logger, Path.GetFileName(path), ex);
            }
        }

        foreach (var path in Directory.EnumerateFiles(Folder))
        {
            if (!kept.Contains(Path.GetFileName(path)))
            {
                File.Delete(path);
            }
        }

        if (!_sessions.IsEmpty)
        {
            LogTakenUp(_logger, _sessions.Count);
        }
    }

    private static async Task SkipAsync(Stream body, long count, CancellationToken cancellationToken)
    {
        if (count <= 0)
        {
            return;
        }

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

    [GeneratedRegex("^[A-Za-z0-9_-]{32}$")]
    private static partial Regex IdPattern();

    [LoggerMessage(Level = LogLevel.Information, Message = "Took up {Count} resumable upload sessions left by the previous process")]
    private static partial void LogTakenUp(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Ended {Count} resumable upload sessions that outlived their lifetime")]
    private static partial void LogSwept(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Resumable upload session {Session} could not be read back and was dropped")]
    private static partial void LogUnreadable(ILogger logger, string session, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Resumable upload session {Session}: its received bytes could not be made durable; it goes on from its last checkpoint")]
    private static partial void LogCheckpointFailed(ILogger logger, string session, Exception exception);

    private sealed class Session(UploadSessionRecord record)
    {
        public UploadSessionRecord Record { get; set; } = record;

        public PendingObject? Pending { get; set; }

        public SemaphoreSlim Lock { get; } = new(1, 1);

        public ObjectRecord? Result { get; set; }
    }
}

/// <summary>Runs <see cref="UploadSessions.SweepAsync"/> at start and every <see cref="StorageOptions.UploadSessionSweepInterval"/>.</summary>
public sealed partial class UploadSessionSweeper(UploadSessions sessions, IOptions<StorageOptions> options, TimeProvider time, ILogger<UploadSessionSweeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.UploadSessionSweepInterval, time);
        do
        {
            try
            {
                await sessions.SweepAsync(stoppingToken);
            }
            catch (IOException ex)
            {
                LogSweepFailed(logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sweeping expired upload sessions failed; the next sweep tries again")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}
