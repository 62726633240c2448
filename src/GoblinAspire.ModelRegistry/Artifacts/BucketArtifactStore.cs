using GoblinAspire.ModelRegistry.Objects;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Artifacts;

/// <summary>
/// MLflow's artifact tree as objects in one bucket of the object store (<see cref="StorageOptions.ArtifactBucket"/>),
/// folders being name prefixes as in GCS; so artifacts get the store's atomic writes, integrity checks, encryption
/// and signed URLs, and the GCS API sees the same files.
/// </summary>
public sealed class BucketArtifactStore : IArtifactStore
{
    private readonly IObjectStore _store;
    private readonly string _bucket;
    private readonly bool _encrypted;
    private readonly Lock _setupLock = new();
    private Task? _setup;

    public BucketArtifactStore(IObjectStore store, IOptions<StorageOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _store = store;
        _bucket = options.Value.ArtifactBucket;
        _encrypted = options.Value.EncryptedBuckets.Contains(_bucket, StringComparer.Ordinal);
    }

    public string Bucket => _bucket;

    /// <summary>
    /// The bucket's one-time setup, shared by concurrent first calls. A failed attempt is not kept: the next call
    /// tries again, so one transient error (the backend briefly unreachable) does not fail every later call.
    /// </summary>
    private Task BucketReadyAsync()
    {
        lock (_setupLock)
        {
            if (_setup is null || _setup.IsFaulted || _setup.IsCanceled)
            {
                _setup = SetUpBucketAsync();
            }

            return _setup;
        }
    }

    private async Task SetUpBucketAsync()
    {
        if (await _store.GetBucketAsync(_bucket, CancellationToken.None) is null)
        {
            try
            {
                await _store.CreateBucketAsync(_bucket, _encrypted, null, CancellationToken.None);
            }
            catch (GcsException ex) when (ex.StatusCode == StatusCodes.Status409Conflict)
            {
                // Created meanwhile: that is all this wanted.
            }
        }
    }

    public async Task<ArtifactEntry?> GetAsync(string path, CancellationToken cancellationToken)
    {
        await BucketReadyAsync();
        if (path.Length > 0 && await _store.GetObjectAsync(_bucket, path, cancellationToken) is { } record)
        {
            return new ArtifactEntry(path, false, record.Size);
        }

        var children = await _store.ListObjectsAsync(_bucket, new ObjectListQuery(Folder(path), null, null, null, null, 1), cancellationToken);
        return path.Length == 0 || children.Items.Count > 0 ? new ArtifactEntry(path, true, null) : null;
    }

    public async Task<Stream?> OpenReadAsync(string path, CancellationToken cancellationToken)
    {
        await BucketReadyAsync();
        return await _store.OpenReadAsync(_bucket, path, 0, null, cancellationToken) is { } opened ? opened.Content : null;
    }

    public async Task<StoredArtifact> WriteAsync(string path, Stream content, CancellationToken cancellationToken)
    {
        await BucketReadyAsync();
        if ((await _store.ListObjectsAsync(_bucket, new ObjectListQuery(Folder(path), null, null, null, null, 1), cancellationToken)).Items.Count > 0)
        {
            throw new IOException($"'{path}' is a folder.");
        }

        var record = await _store.WriteObjectAsync(_bucket, path, content, cancellationToken);
        return new StoredArtifact(path, record.Size, record.Sha256);
    }

    public async Task MoveAsync(string from, string to, CancellationToken cancellationToken)
    {
        await BucketReadyAsync();
        if (await _store.GetObjectAsync(_bucket, from, cancellationToken) is not null)
        {
            await _store.RenameObjectAsync(_bucket, from, to, cancellationToken);
            return;
        }

        foreach (var name in await NamesUnderAsync(from, cancellationToken))
        {
            await _store.RenameObjectAsync(_bucket, name, to + name[from.Length..], cancellationToken);
        }
    }

    public async Task<bool> DeleteAsync(string path, CancellationToken cancellationToken)
    {
        await BucketReadyAsync();
        if (await _store.DeleteObjectAsync(_bucket, path, Preconditions.None, cancellationToken))
        {
            return true;
        }

        var names = await NamesUnderAsync(path, cancellationToken);
        foreach (var name in names)
        {
            await _store.DeleteObjectAsync(_bucket, name, Preconditions.None, cancellationToken);
        }

        return names.Count > 0;
    }

    public async Task<IReadOnlyList<ArtifactEntry>> ListAsync(string path, CancellationToken cancellationToken)
    {
        await BucketReadyAsync();
        var entries = new List<ArtifactEntry>();
        string? token = null;
        do
        {
            var page = await _store.ListObjectsAsync(_bucket, new ObjectListQuery(Folder(path), "/", null, null, token, ObjectListings.MaxPageSize), cancellationToken);
            entries.AddRange(page.Prefixes.Select(p => new ArtifactEntry(p.TrimEnd('/'), true, null)));
            entries.AddRange(page.Items.Select(i => new ArtifactEntry(i.Name, false, i.Size)));
            token = page.NextPageToken;
        }
        while (token is not null);
        return entries.OrderBy(e => e.Path, StringComparer.Ordinal).ToList();
    }

    private async Task<List<string>> NamesUnderAsync(string folder, CancellationToken cancellationToken)
    {
        var names = new List<string>();
        string? token = null;
        do
        {
            var page = await _store.ListObjectsAsync(_bucket, new ObjectListQuery(Folder(folder), null, null, null, token, ObjectListings.MaxPageSize), cancellationToken);
            names.AddRange(page.Items.Select(i => i.Name));
            token = page.NextPageToken;
        }
        while (token is not null);
        return names;
    }

    private static string Folder(string path) => path.Length == 0 ? "" : path + "/";
}
