using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>
/// The default backend: a folder. Layout: <c>buckets/{bucket}/bucket.json</c>, one record per object in
/// <c>objects/{sha256(name)}.json</c> (names may be longer than a file name may) and its bytes in
/// <c>data/{id}</c>, written as <see cref="ObjectFrames"/>. Bytes are written to <c>.staging</c> first and renamed into
/// place, then the record is renamed over the old one: a crash at any point leaves either the old object or the new
/// one. Each bucket's records are indexed in memory (loaded on first use); a per-bucket lock orders commits, so
/// preconditions are checked against the object a write really replaces.
/// </summary>
public sealed class LocalObjectStore : IObjectStore
{
    private readonly string _buckets;
    private readonly string _staging;
    private readonly StorageOptions _options;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, BucketState> _state = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _bucketLock = new(1, 1);
    private long _lastGeneration;

    public LocalObjectStore(IOptions<ModelRegistryOptions> registry, IOptions<StorageOptions> options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _time = time;
        var root = Path.GetFullPath(registry.Value.ArtifactRoot);
        _buckets = Path.Combine(root, "buckets");
        _staging = Path.Combine(root, ".staging");
        Directory.CreateDirectory(_buckets);
        if (Directory.Exists(_staging))
        {
            // Leftovers of uploads a previous process never finished; they were never visible.
            Directory.Delete(_staging, recursive: true);
        }

        Directory.CreateDirectory(_staging);
        foreach (var file in Directory.EnumerateFiles(_buckets, "bucket.json", SearchOption.AllDirectories))
        {
            var record = JsonSerializer.Deserialize(File.ReadAllBytes(file), RecordJson.Default.BucketRecord)!;
            _state[record.Name] = new BucketState(record, Path.GetDirectoryName(file)!);
        }
    }

    public async Task<BucketRecord> CreateBucketAsync(string name, bool encrypted, Dictionary<string, string>? labels, CancellationToken cancellationToken)
    {
        await _bucketLock.WaitAsync(cancellationToken);
        try
        {
            if (_state.ContainsKey(name))
            {
                throw GcsException.Conflict("Your previous request to create the named bucket succeeded and you already own it.");
            }

            var now = _time.GetUtcNow();
            var record = new BucketRecord { Name = name, Created = now, Updated = now, Encrypted = encrypted, Labels = labels };
            var folder = Path.Combine(_buckets, name);
            Directory.CreateDirectory(Path.Combine(folder, "objects"));
            Directory.CreateDirectory(Path.Combine(folder, "data"));
            await WriteAtomicallyAsync(Path.Combine(folder, "bucket.json"), JsonSerializer.SerializeToUtf8Bytes(record, RecordJson.Default.BucketRecord), cancellationToken);
            _state[name] = new BucketState(record, folder);
            return record;
        }
        finally
        {
            _bucketLock.Release();
        }
    }

    public Task<BucketRecord?> GetBucketAsync(string name, CancellationToken cancellationToken) =>
        Task.FromResult(_state.TryGetValue(name, out var state) ? state.Record : null);

    public Task<IReadOnlyList<BucketRecord>> ListBucketsAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<BucketRecord>>(_state.Values.Select(s => s.Record).OrderBy(r => r.Name, StringComparer.Ordinal).ToList());

    public async Task<BucketRecord> PatchBucketAsync(string name, IReadOnlyDictionary<string, string?> labels, Preconditions preconditions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(preconditions);
        await _bucketLock.WaitAsync(cancellationToken);
        try
        {
            var state = Bucket(name);
            var current = state.Record;
            preconditions.CheckBucket(current);
            var merged = current.Labels is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(current.Labels, StringComparer.Ordinal);
            foreach (var (key, value) in labels)
            {
                if (value is null)
                {
                    merged.Remove(key);
                }
                else
                {
                    merged[key] = value;
                }
            }

            if (merged.Count > BucketLabels.MaxCount)
            {
                throw GcsException.Invalid($"A bucket has at most {BucketLabels.MaxCount} labels.");
            }

            var record = current with { Labels = merged.Count == 0 ? null : merged, Metageneration = current.Metageneration + 1, Updated = _time.GetUtcNow() };
            await WriteAtomicallyAsync(Path.Combine(state.Folder, "bucket.json"), JsonSerializer.SerializeToUtf8Bytes(record, RecordJson.Default.BucketRecord), cancellationToken);
            state.Record = record;
            return record;
        }
        finally
        {
            _bucketLock.Release();
        }
    }

    public async Task DeleteBucketAsync(string name, CancellationToken cancellationToken)
    {
        await _bucketLock.WaitAsync(cancellationToken);
        try
        {
            var state = Bucket(name);
            await using (await state.LockAsync(cancellationToken))
            {
                if (state.Objects!.Count > 0)
                {
                    throw GcsException.Conflict("The bucket you tried to delete is not empty.");
                }

                // Gone from view first, so no new write starts while the folder is removed.
                _state.TryRemove(name, out _);
                Directory.Delete(state.Folder, recursive: true);
            }
        }
        finally
        {
            _bucketLock.Release();
        }
    }

    public async Task<ObjectRecord?> GetObjectAsync(string bucket, string name, CancellationToken cancellationToken)
    {
        var state = Bucket(bucket);
        await using (await state.LockAsync(cancellationToken))
        {
            return state.Objects!.GetValueOrDefault(name);
        }
    }

    public async Task<ObjectListing> ListObjectsAsync(string bucket, ObjectListQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        var state = Bucket(bucket);
        await using (await state.LockAsync(cancellationToken))
        {
            return ObjectListings.Page(state.Objects!, query);
        }
    }

    public Task<PendingObject> BeginWriteAsync(string bucket, CancellationToken cancellationToken) =>
        BeginWriteAtAsync(bucket, Path.Combine(_staging, Guid.NewGuid().ToString("N")), cancellationToken);

    public Task<PendingObject> BeginWriteAtAsync(string bucket, string path, CancellationToken cancellationToken)
    {
        var state = Bucket(bucket);
        var encrypted = state.Record.Encrypted || _options.EncryptedBuckets.Contains(bucket, StringComparer.Ordinal);
        var keyId = encrypted ? _options.ActiveEncryptionKey : null;
        if (encrypted && keyId is null)
        {
            throw new GcsException(500, "backendError", $"Bucket {bucket} is encrypted but no encryption key is configured.");
        }

        var file = StagingFile.Create(path, FileShare.None, _options.DirectWrites);
        return Task.FromResult(new PendingObject(bucket, file, keyId, _options.Key(keyId)));
    }

    public Task<ObjectRecord> CommitAsync(PendingObject pending, string name, ObjectAttributes attributes, Preconditions preconditions, DeclaredHashes? declared, CancellationToken cancellationToken) =>
        CommitAsync(pending, name, attributes, preconditions, declared, null, cancellationToken);

    public async Task<ObjectRecord> ComposeObjectAsync(string bucket, IReadOnlyList<ComposeSource> sources, string name, ObjectAttributes attributes, Preconditions preconditions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(preconditions);
        preconditions.Check(await GetObjectAsync(bucket, name, cancellationToken));
        await using var pending = await BeginWriteAsync(bucket, cancellationToken);
        var components = 0;
        foreach (var source in sources)
        {
            // Each source is read as the generation opened: a replacement meanwhile cannot mix two objects' bytes.
            var opened = await OpenReadAsync(bucket, source.Name, 0, null, cancellationToken) ?? throw GcsException.ObjectNotFound(bucket, source.Name);
            await using var content = opened.Content;
            source.Check(opened.Record);
            components += opened.Record.ComponentCount ?? 1;
            await pending.Writer.WriteFromAsync(content, opened.Record.Size, cancellationToken);
        }

        if (components > ComposeSource.MaxComponents)
        {
            throw GcsException.Invalid($"A composite may be made of at most {ComposeSource.MaxComponents} components; this one would have {components}.");
        }

        return await CommitAsync(pending, name, attributes, preconditions, null, components, cancellationToken);
    }

    private async Task<ObjectRecord> CommitAsync(PendingObject pending, string name, ObjectAttributes attributes, Preconditions preconditions, DeclaredHashes? declared, int? components, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(pending);
        ArgumentNullException.ThrowIfNull(attributes);
        ArgumentNullException.ThrowIfNull(preconditions);
        var digests = await pending.CompleteAsync(declared, cancellationToken);

        await pending.File.DisposeAsync();
        var state = Bucket(pending.Bucket);
        await using (await state.LockAsync(cancellationToken))
        {
            var current = state.Objects!.GetValueOrDefault(name);
            preconditions.Check(current);
            var dataFile = Guid.NewGuid().ToString("N");
            File.Move(pending.Path, state.DataPath(dataFile));
            pending.Committed = true;
            var now = _time.GetUtcNow();
            var record = new ObjectRecord
            {
                Bucket = pending.Bucket,
                Name = name,
                Generation = NextGeneration(),
                Size = digests.Size,
                ContentType = attributes.ContentType ?? "application/octet-stream",
                ContentEncoding = attributes.ContentEncoding,
                ContentDisposition = attributes.ContentDisposition,
                CacheControl = attributes.CacheControl,
                ContentLanguage = attributes.ContentLanguage,
                Metadata = Merge(null, attributes.Metadata),
                Md5 = components is null ? digests.Md5Base64 : "",
                ComponentCount = components,
                Crc32C = digests.Crc32CBase64,
                Sha256 = digests.Sha256Hex,
                Created = now,
                Updated = now,
                KeyId = pending.KeyId,
                DataFile = dataFile,
            };
            await ReplaceAsync(state, current, record, cancellationToken);
            return record;
        }
    }

    public async Task<(ObjectRecord Record, Stream Content)?> OpenReadAsync(string bucket, string name, long offset, long? length, CancellationToken cancellationToken)
    {
        var state = Bucket(bucket);
        ObjectRecord? record;
        FileStream file;
        // Opened under the lock: a commit may delete the data file of the record it replaces, but only after this.
        await using (await state.LockAsync(cancellationToken))
        {
            record = state.Objects!.GetValueOrDefault(name);
            if (record is null)
            {
                return null;
            }

            file = new FileStream(state.DataPath(record.DataFile), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 0, FileOptions.Asynchronous);
        }

        var start = Math.Clamp(offset, 0, record.Size);
        var count = Math.Min(length ?? record.Size, record.Size - start);
        return (record, new FrameReadStream(file, record.Size, _options.Key(record.KeyId), record.Encrypted, start, count));
    }

    public async Task<ObjectRecord> PatchObjectAsync(string bucket, string name, ObjectAttributes patch, Preconditions preconditions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(patch);
        ArgumentNullException.ThrowIfNull(preconditions);
        var state = Bucket(bucket);
        await using (await state.LockAsync(cancellationToken))
        {
            var current = state.Objects!.GetValueOrDefault(name) ?? throw GcsException.ObjectNotFound(bucket, name);
            preconditions.Check(current);
            var record = current with
            {
                Metageneration = current.Metageneration + 1,
                ContentType = patch.ContentType ?? current.ContentType,
                ContentEncoding = patch.ContentEncoding ?? current.ContentEncoding,
                ContentDisposition = patch.ContentDisposition ?? current.ContentDisposition,
                CacheControl = patch.CacheControl ?? current.CacheControl,
                ContentLanguage = patch.ContentLanguage ?? current.ContentLanguage,
                Metadata = Merge(current.Metadata, patch.Metadata),
                Updated = _time.GetUtcNow(),
            };
            await WriteRecordAsync(state, record, cancellationToken);
            state.Objects![name] = record;
            return record;
        }
    }

    public async Task<bool> DeleteObjectAsync(string bucket, string name, Preconditions preconditions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(preconditions);
        var state = Bucket(bucket);
        await using (await state.LockAsync(cancellationToken))
        {
            var current = state.Objects!.GetValueOrDefault(name);
            if (current is null)
            {
                return false;
            }

            preconditions.Check(current);
            File.Delete(state.RecordPath(name));
            state.Objects!.Remove(name);
            File.Delete(state.DataPath(current.DataFile));
            return true;
        }
    }

    public async Task<ObjectRecord> CopyObjectAsync(string sourceBucket, string sourceName, Preconditions source, string bucket, string name, ObjectAttributes? attributes, Preconditions preconditions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(preconditions);
        var from = Bucket(sourceBucket);
        var to = Bucket(bucket);
        ObjectRecord original;
        var staged = Path.Combine(_staging, Guid.NewGuid().ToString("N"));
        try
        {
            await using (await from.LockAsync(cancellationToken))
            {
                original = from.Objects!.GetValueOrDefault(sourceName) ?? throw GcsException.ObjectNotFound(sourceBucket, sourceName);
                source.Check(original);
                // The stored frames are self-contained (the file id in their header keys them), so a copy is a
                // byte copy of the file: nothing is decrypted or re-hashed. Under the lock, as no commit may delete it meanwhile.
                File.Copy(from.DataPath(original.DataFile), staged);
            }

            await using (await to.LockAsync(cancellationToken))
            {
                var current = to.Objects!.GetValueOrDefault(name);
                preconditions.Check(current);
                var dataFile = Guid.NewGuid().ToString("N");
                File.Move(staged, to.DataPath(dataFile));
                var now = _time.GetUtcNow();
                var record = original with
                {
                    Bucket = bucket,
                    Name = name,
                    Generation = NextGeneration(),
                    Metageneration = 1,
                    Created = now,
                    Updated = now,
                    DataFile = dataFile,
                    ContentType = attributes?.ContentType ?? original.ContentType,
                    ContentEncoding = attributes is null ? original.ContentEncoding : attributes.ContentEncoding,
                    ContentDisposition = attributes is null ? original.ContentDisposition : attributes.ContentDisposition,
                    CacheControl = attributes is null ? original.CacheControl : attributes.CacheControl,
                    ContentLanguage = attributes is null ? original.ContentLanguage : attributes.ContentLanguage,
                    Metadata = attributes is null ? original.Metadata : Merge(null, attributes.Metadata),
                };
                await ReplaceAsync(to, current, record, cancellationToken);
                return record;
            }
        }
        finally
        {
            File.Delete(staged);
        }
    }

    public async Task<ObjectRecord> RenameObjectAsync(string bucket, string from, string to, CancellationToken cancellationToken, Preconditions? source = null, Preconditions? destination = null)
    {
        var state = Bucket(bucket);
        await using (await state.LockAsync(cancellationToken))
        {
            var original = state.Objects!.GetValueOrDefault(from) ?? throw GcsException.ObjectNotFound(bucket, from);
            var current = state.Objects!.GetValueOrDefault(to);
            source?.Check(original);
            destination?.Check(current);
            var record = original with { Name = to, Generation = NextGeneration(), Metageneration = 1, Updated = _time.GetUtcNow() };
            // The renamed record takes over the data file; only then does the old name go.
            await ReplaceAsync(state, current, record, cancellationToken);
            File.Delete(state.RecordPath(from));
            state.Objects!.Remove(from);
            return record;
        }
    }

    private BucketState Bucket(string name) => _state.TryGetValue(name, out var state) ? state : throw GcsException.BucketNotFound(name);

    private long NextGeneration()
    {
        // GCS generations are microsecond timestamps; strictly increasing here even if the clock steps back.
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;
        long last, next;
        do
        {
            last = Interlocked.Read(ref _lastGeneration);
            next = Math.Max(now, last + 1);
        }
        while (Interlocked.CompareExchange(ref _lastGeneration, next, last) != last);
        return next;
    }

    private async Task ReplaceAsync(BucketState state, ObjectRecord? current, ObjectRecord record, CancellationToken cancellationToken)
    {
        await WriteRecordAsync(state, record, cancellationToken);
        state.Objects![record.Name] = record;
        if (current is not null && current.DataFile != record.DataFile)
        {
            File.Delete(state.DataPath(current.DataFile));
        }
    }

    private Task WriteRecordAsync(BucketState state, ObjectRecord record, CancellationToken cancellationToken) =>
        WriteAtomicallyAsync(state.RecordPath(record.Name), JsonSerializer.SerializeToUtf8Bytes(record, RecordJson.Default.ObjectRecord), cancellationToken);

    private async Task WriteAtomicallyAsync(string path, byte[] content, CancellationToken cancellationToken)
    {
        var temporary = Path.Combine(_staging, Guid.NewGuid().ToString("N"));
        await using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous))
        {
            await file.WriteAsync(content, CancellationToken.None);
            file.Flush(flushToDisk: true);
        }

        cancellationToken.ThrowIfCancellationRequested();
        File.Move(temporary, path, overwrite: true);
    }

    private static Dictionary<string, string>? Merge(Dictionary<string, string>? current, Dictionary<string, string?>? patch)
    {
        if (patch is null)
        {
            return current;
        }

        var merged = current is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(current, StringComparer.Ordinal);
        foreach (var (key, value) in patch)
        {
            if (value is null)
            {
                merged.Remove(key);
            }
            else
            {
                merged[key] = value;
            }
        }

        return merged.Count == 0 ? null : merged;
    }

    private sealed class BucketState(BucketRecord record, string folder)
    {
        private readonly SemaphoreSlim _lock = new(1, 1);

        public BucketRecord Record { get; set; } = record;

        public string Folder { get; } = folder;

        public SortedDictionary<string, ObjectRecord>? Objects { get; private set; }

        public string RecordPath(string name) =>
            Path.Combine(Folder, "objects", Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name))) + ".json");

        public string DataPath(string dataFile) => Path.Combine(Folder, "data", dataFile);

        public async Task<Held> LockAsync(CancellationToken cancellationToken)
        {
            await _lock.WaitAsync(cancellationToken);
            if (Objects is null)
            {
                try
                {
                    Load();
                }
                catch
                {
                    _lock.Release();
                    throw;
                }
            }

            return new Held(_lock);
        }

        private void Load()
        {
            var objects = new SortedDictionary<string, ObjectRecord>(StringComparer.Ordinal);
            foreach (var file in Directory.EnumerateFiles(Path.Combine(Folder, "objects"), "*.json"))
            {
                var record = JsonSerializer.Deserialize(File.ReadAllBytes(file), RecordJson.Default.ObjectRecord)!;
                objects[record.Name] = record;
            }

            // Data files no record points at are what a crash between the two renames left behind.
            var referenced = objects.Values.Select(r => r.DataFile).ToHashSet(StringComparer.Ordinal);
            foreach (var data in Directory.EnumerateFiles(Path.Combine(Folder, "data")))
            {
                if (!referenced.Contains(Path.GetFileName(data)))
                {
                    File.Delete(data);
                }
            }

            Objects = objects;
        }
    }

    private readonly struct Held(SemaphoreSlim semaphore) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            semaphore.Release();
            return ValueTask.CompletedTask;
        }
    }
}
