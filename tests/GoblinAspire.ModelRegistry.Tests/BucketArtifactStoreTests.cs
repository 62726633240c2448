using GoblinAspire.ModelRegistry.Artifacts;
using GoblinAspire.ModelRegistry.Objects;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Tests;

public sealed class BucketArtifactStoreTests
{
    [Fact]
    public async Task A_failed_first_bucket_setup_is_tried_again_on_the_next_call()
    {
        var root = Directory.CreateTempSubdirectory("goblin-artifact-store-").FullName;
        var storage = Options.Create(new StorageOptions { SigningSecret = RegistryHost.SigningSecret });
        var local = new LocalObjectStore(Options.Create(new ModelRegistryOptions { ArtifactRoot = root }), storage, TimeProvider.System);
        var flaky = new StoreThatFailsOnce(local);
        var artifacts = new BucketArtifactStore(flaky, storage);

        var failure = await Assert.ThrowsAsync<GcsException>(() => artifacts.WriteAsync("run/model.bin", new MemoryStream([1, 2, 3]), CancellationToken.None));
        Assert.Equal(503, failure.StatusCode);

        var stored = await artifacts.WriteAsync("run/model.bin", new MemoryStream([1, 2, 3]), CancellationToken.None);
        Assert.Equal(3, stored.Size);
        Assert.NotNull(await local.GetBucketAsync(artifacts.Bucket, CancellationToken.None));
        Assert.Equal(new ArtifactEntry("run/model.bin", false, 3), await artifacts.GetAsync("run/model.bin", CancellationToken.None));
    }

    /// <summary>The object store as a backend that is briefly unreachable: its first bucket lookup fails.</summary>
    private sealed class StoreThatFailsOnce(IObjectStore inner) : IObjectStore
    {
        private int _calls;

        public Task<BucketRecord?> GetBucketAsync(string name, CancellationToken cancellationToken) =>
            Interlocked.Increment(ref _calls) == 1
                ? Task.FromException<BucketRecord?>(new GcsException(503, "backendError", "Cloud Storage could not be reached."))
                : inner.GetBucketAsync(name, cancellationToken);

        public Task<BucketRecord> CreateBucketAsync(string name, bool encrypted, Dictionary<string, string>? labels, CancellationToken cancellationToken) => inner.CreateBucketAsync(name, encrypted, labels, cancellationToken);

        public Task<IReadOnlyList<BucketRecord>> ListBucketsAsync(CancellationToken cancellationToken) => inner.ListBucketsAsync(cancellationToken);

        public Task<BucketRecord> PatchBucketAsync(string name, IReadOnlyDictionary<string, string?> labels, Preconditions preconditions, CancellationToken cancellationToken) => inner.PatchBucketAsync(name, labels, preconditions, cancellationToken);

        public Task DeleteBucketAsync(string name, CancellationToken cancellationToken) => inner.DeleteBucketAsync(name, cancellationToken);

        public Task<ObjectRecord?> GetObjectAsync(string bucket, string name, CancellationToken cancellationToken) => inner.GetObjectAsync(bucket, name, cancellationToken);

        public Task<ObjectListing> ListObjectsAsync(string bucket, ObjectListQuery query, CancellationToken cancellationToken) => inner.ListObjectsAsync(bucket, query, cancellationToken);

        public Task<PendingObject> BeginWriteAsync(string bucket, CancellationToken cancellationToken) => inner.BeginWriteAsync(bucket, cancellationToken);

        public Task<PendingObject> BeginWriteAtAsync(string bucket, string path, CancellationToken cancellationToken) => inner.BeginWriteAtAsync(bucket, path, cancellationToken);

        public Task<ObjectRecord> CommitAsync(PendingObject pending, string name, ObjectAttributes attributes, Preconditions preconditions, DeclaredHashes? declared, CancellationToken cancellationToken) => inner.CommitAsync(pending, name, attributes, preconditions, declared, cancellationToken);

        public Task<(ObjectRecord Record, Stream Content)?> OpenReadAsync(string bucket, string name, long offset, long? length, CancellationToken cancellationToken) => inner.OpenReadAsync(bucket, name, offset, length, cancellationToken);

        public Task<ObjectRecord> PatchObjectAsync(string bucket, string name, ObjectAttributes patch, Preconditions preconditions, CancellationToken cancellationToken) => inner.PatchObjectAsync(bucket, name, patch, preconditions, cancellationToken);

        public Task<bool> DeleteObjectAsync(string bucket, string name, Preconditions preconditions, CancellationToken cancellationToken) => inner.DeleteObjectAsync(bucket, name, preconditions, cancellationToken);

        public Task<ObjectRecord> CopyObjectAsync(string sourceBucket, string sourceName, Preconditions source, string bucket, string name, ObjectAttributes? attributes, Preconditions preconditions, CancellationToken cancellationToken) => inner.CopyObjectAsync(sourceBucket, sourceName, source, bucket, name, attributes, preconditions, cancellationToken);

        public Task<ObjectRecord> ComposeObjectAsync(string bucket, IReadOnlyList<ComposeSource> sources, string name, ObjectAttributes attributes, Preconditions preconditions, CancellationToken cancellationToken) => inner.ComposeObjectAsync(bucket, sources, name, attributes, preconditions, cancellationToken);

        public Task<ObjectRecord> RenameObjectAsync(string bucket, string from, string to, CancellationToken cancellationToken, Preconditions? source = null, Preconditions? destination = null) => inner.RenameObjectAsync(bucket, from, to, cancellationToken, source, destination);
    }
}
