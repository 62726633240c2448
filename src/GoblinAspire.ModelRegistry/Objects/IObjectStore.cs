namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>
/// Buckets and objects with GCS's semantics (generations, metagenerations, preconditions, prefix listing). Every
/// write is atomic: readers see the previous object or the whole new one, never a part.
/// </summary>
public interface IObjectStore
{
    Task<BucketRecord> CreateBucketAsync(string name, bool encrypted, Dictionary<string, string>? labels, CancellationToken cancellationToken);

    Task<BucketRecord?> GetBucketAsync(string name, CancellationToken cancellationToken);

    Task<IReadOnlyList<BucketRecord>> ListBucketsAsync(CancellationToken cancellationToken);

    /// <summary>Deletes an empty bucket; 409 when it still holds objects.</summary>
    Task DeleteBucketAsync(string name, CancellationToken cancellationToken);

    Task<ObjectRecord?> GetObjectAsync(string bucket, string name, CancellationToken cancellationToken);

    Task<ObjectListing> ListObjectsAsync(string bucket, ObjectListQuery query, CancellationToken cancellationToken);

    /// <summary>Starts a write into <paramref name="bucket"/>; the bytes become an object only at <see cref="CommitAsync"/>.</summary>
    Task<PendingObject> BeginWriteAsync(string bucket, CancellationToken cancellationToken);

    Task<ObjectRecord> CommitAsync(PendingObject pending, string name, ObjectAttributes attributes, Preconditions preconditions, DeclaredHashes? declared, CancellationToken cancellationToken);

    /// <summary>Opens <paramref name="length"/> bytes of the object's plaintext from <paramref name="offset"/>.</summary>
    Task<(ObjectRecord Record, Stream Content)?> OpenReadAsync(string bucket, string name, long offset, long? length, CancellationToken cancellationToken);

    Task<ObjectRecord> PatchObjectAsync(string bucket, string name, ObjectAttributes patch, Preconditions preconditions, CancellationToken cancellationToken);

    /// <summary>Deletes the object; false when there was none.</summary>
    Task<bool> DeleteObjectAsync(string bucket, string name, Preconditions preconditions, CancellationToken cancellationToken);

    /// <summary>
    /// Copies an object. <paramref name="attributes"/> replaces the source's attributes when given;
    /// <paramref name="preconditions"/> apply to the destination, <paramref name="source"/>'s to the source.
    /// </summary>
    Task<ObjectRecord> CopyObjectAsync(string sourceBucket, string sourceName, Preconditions source, string bucket, string name, ObjectAttributes? attributes, Preconditions preconditions, CancellationToken cancellationToken);

    /// <summary>Renames within a bucket without copying bytes (the artifact store's folder moves).</summary>
    Task<ObjectRecord> RenameObjectAsync(string bucket, string from, string to, CancellationToken cancellationToken);
}

/// <summary>Bytes being written, not yet an object; disposing it without a commit discards them.</summary>
public sealed class PendingObject : IAsyncDisposable
{
    internal PendingObject(string bucket, StagingFile file, string? keyId, byte[]? key)
    {
        Bucket = bucket;
        File = file;
        KeyId = keyId;
        Writer = new FrameWriter(file, key);
    }

    public string Bucket { get; }

    public FrameWriter Writer { get; }

    internal string Path => File.Path;

    internal StagingFile File { get; }

    internal string? KeyId { get; }

    internal bool Committed { get; set; }

    /// <summary>Finishes the bytes (flushed to disk) and checks them against what the client declared; 400 if they differ.</summary>
    public async Task<ObjectDigests> CompleteAsync(DeclaredHashes? declared, CancellationToken cancellationToken)
    {
        var digests = await Writer.CompleteAsync(cancellationToken);
        declared?.Verify(digests);
        return digests;
    }

    public async ValueTask DisposeAsync()
    {
        Writer.Dispose();
        await File.DisposeAsync();
        if (!Committed)
        {
            System.IO.File.Delete(Path);
        }
    }
}
