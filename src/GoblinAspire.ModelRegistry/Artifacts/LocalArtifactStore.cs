using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Artifacts;

/// <summary>
/// The default artifact store: a folder. Each write streams into a temporary file beside its target and is renamed
/// into place only once complete, so a crash mid-upload never leaves a partial object visible.
/// </summary>
public sealed class LocalArtifactStore : IArtifactStore
{
    private const string TemporarySuffix = ".goblin-partial";
    private readonly string _root;

    public LocalArtifactStore(IOptions<ModelRegistryOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _root = Path.GetFullPath(options.Value.ArtifactRoot);
        Directory.CreateDirectory(_root);
    }

    public Task<ArtifactEntry?> GetAsync(string path, CancellationToken cancellationToken)
    {
        var full = Resolve(path);
        if (File.Exists(full))
        {
            return Task.FromResult<ArtifactEntry?>(new ArtifactEntry(path, false, new FileInfo(full).Length));
        }

        return Task.FromResult(Directory.Exists(full) ? new ArtifactEntry(path, true, null) : null);
    }

    public Task<Stream?> OpenReadAsync(string path, CancellationToken cancellationToken)
    {
        var full = Resolve(path);
        return Task.FromResult<Stream?>(File.Exists(full)
            ? new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 64 * 1024, FileOptions.Asynchronous | FileOptions.SequentialScan)
            : null);
    }

    public async Task<StoredArtifact> WriteAsync(string path, Stream content, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        var full = Resolve(path);
        if (Directory.Exists(full))
        {
            throw new IOException($"'{path}' is a folder.");
        }

        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temporary = $"{full}.{Guid.NewGuid():N}{TemporarySuffix}";
        try
        {
            using var sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long size = 0;
            await using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 64 * 1024, FileOptions.Asynchronous))
            {
                var buffer = new byte[64 * 1024];
                int read;
                while ((read = await content.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    sha256.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                    size += read;
                }

                await file.FlushAsync(cancellationToken);
                file.Flush(flushToDisk: true);
            }

            File.Move(temporary, full, overwrite: true);
            return new StoredArtifact(path, size, Convert.ToHexStringLower(sha256.GetHashAndReset()));
        }
        finally
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
        }
    }

    public Task MoveAsync(string from, string to, CancellationToken cancellationToken)
    {
        var source = Resolve(from);
        var target = Resolve(to);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        if (Directory.Exists(source))
        {
            Directory.Move(source, target);
        }
        else
        {
            File.Move(source, target, overwrite: true);
        }

        return Task.CompletedTask;
    }

    public Task<bool> DeleteAsync(string path, CancellationToken cancellationToken)
    {
        var full = Resolve(path);
        if (File.Exists(full))
        {
            File.Delete(full);
            return Task.FromResult(true);
        }

        if (Directory.Exists(full))
        {
            Directory.Delete(full, recursive: true);
            return Task.FromResult(true);
        }

        return Task.FromResult(false);
    }

    public Task<IReadOnlyList<ArtifactEntry>> ListAsync(string path, CancellationToken cancellationToken)
    {
        var full = path.Length == 0 ? _root : Resolve(path);
        if (!Directory.Exists(full))
        {
            return Task.FromResult<IReadOnlyList<ArtifactEntry>>([]);
        }

        var entries = new DirectoryInfo(full).EnumerateFileSystemInfos()
            .Where(i => !i.Name.EndsWith(TemporarySuffix, StringComparison.Ordinal))
            .OrderBy(i => i.Name, StringComparer.Ordinal)
            .Select(i => new ArtifactEntry(path.Length == 0 ? i.Name : $"{path}/{i.Name}", i is DirectoryInfo, i is FileInfo file ? file.Length : null))
            .ToList();
        return Task.FromResult<IReadOnlyList<ArtifactEntry>>(entries);
    }

    /// <summary>The full path, checked to stay inside the root even if a caller skipped <see cref="ArtifactPath"/>.</summary>
    private string Resolve(string path)
    {
        var full = Path.GetFullPath(Path.Combine(_root, path));
        if (!full.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal) && full != _root)
        {
            throw new UnauthorizedAccessException("path escapes the artifact root");
        }

        return full;
    }
}
