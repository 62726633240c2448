namespace GoblinAspire.ModelRegistry.Artifacts;

/// <summary>A file or folder in the artifact store; <see cref="Path"/> is relative to the listed folder.</summary>
public sealed record ArtifactEntry(string Path, bool IsDirectory, long? Size);

/// <summary>The result of a write: size and digests of the bytes stored.</summary>
public sealed record StoredArtifact(string Path, long Size, string Sha256Hex);

/// <summary>
/// Where model weights, checkpoints and run artifacts live. Writes are atomic: a reader sees the whole new object or
/// the old one, never a partial one. Paths are '/'-separated and already checked by <see cref="ArtifactPath"/>.
/// </summary>
public interface IArtifactStore
{
    Task<ArtifactEntry?> GetAsync(string path, CancellationToken cancellationToken);

    Task<Stream?> OpenReadAsync(string path, CancellationToken cancellationToken);

    Task<StoredArtifact> WriteAsync(string path, Stream content, CancellationToken cancellationToken);

    Task MoveAsync(string from, string to, CancellationToken cancellationToken);

    /// <summary>Deletes a file, or a folder with everything in it; false when nothing was there.</summary>
    Task<bool> DeleteAsync(string path, CancellationToken cancellationToken);

    /// <summary>The direct children of a folder (empty when it does not exist).</summary>
    Task<IReadOnlyList<ArtifactEntry>> ListAsync(string path, CancellationToken cancellationToken);
}
