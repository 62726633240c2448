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

    /// <summary>
    /// Changes a bucket's labels (a null value removes one) and bumps its metageneration; 412 unless the given
    /// metageneration preconditions hold.
    /// </summary>
    Task<BucketRecord> PatchBucketAsync(string name, IReadOnlyDictionary<string, string?> labels, Preconditions preconditions, CancellationToken cancellationToken);

    /// <summary>Deletes an empty bucket; 409 when it still holds objects.</summary>
    Task DeleteBucketAsync(string name, CancellationToken cancellationToken);

    Task<ObjectRecord?> GetObjectAsync(string bucket, string name, CancellationToken cancellationToken);

    Task<ObjectListing> ListObjectsAsync(string bucket, ObjectListQuery query, CancellationToken cancellationToken);

    /// <summary>Starts a write into <paramref name="bucket"/>; the bytes become an object only at <see cref="CommitAsync"/>.</summary>
    Task<PendingObject> BeginWriteAsync(string bucket, CancellationToken cancellationToken);

    /// <summary>
    /// As <see cref="BeginWriteAsync"/>, but the bytes are kept at <paramref name="path"/> (a resumable session's own
    /// file, which a restart does not clear) instead of in the staging folder.
    /// </summary>
    Task<PendingObject> BeginWriteAtAsync(string bucket, string path, CancellationToken cancellationToken);

    Task<ObjectRecord> CommitAsync(PendingObject pending, string name, ObjectAttributes attributes, Preconditions preconditions, DeclaredHashes? declared, CancellationToken cancellationToken);

    /// <summary>
    /// Writes <paramref name="content"/> as the object <paramref name="name"/> in one call. A store that can stream to
    /// its backend does so without a local copy; by default the bytes are staged and committed.
    /// </summary>
    async Task<ObjectRecord> WriteObjectAsync(string bucket, string name, Stream content, CancellationToken cancellationToken)
    {
        await using var pending = await BeginWriteAsync(bucket, cancellationToken);
        await pending.Writer.WriteFromAsync(content, null, cancellationToken);
        return await CommitAsync(pending, name, new ObjectAttributes(), Preconditions.None, null, cancellationToken);
    }

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

    /// <summary>
    /// Concatenates <paramref name="sources"/> (objects of <paramref name="bucket"/>, in order) into the object
    /// <paramref name="name"/>: a composite, with a CRC-32C but, as in GCS, no MD5.
    /// </summary>
    Task<ObjectRecord> ComposeObjectAsync(string bucket, IReadOnlyList<ComposeSource> sources, string name, ObjectAttributes attributes, Preconditions preconditions, CancellationToken cancellationToken);

    /// <summary>
    /// Renames within a bucket without copying bytes (GCS's <c>objects.move</c>; the artifact store's moves), if the
    /// source meets <paramref name="source"/> and the destination <paramref name="destination"/>.
    /// </summary>
    Task<ObjectRecord> RenameObjectAsync(string bucket, string from, string to, CancellationToken cancellationToken, Preconditions? source = null, Preconditions? destination = null);
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

    /// <summary>Whether the file outlives this object uncommitted: a resumable session takes it up again.</summary>
    internal bool KeepFile { get; set; }

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
        if (!Committed && !KeepFile)
        {
            System.IO.File.Delete(Path);
        }
    }
}
