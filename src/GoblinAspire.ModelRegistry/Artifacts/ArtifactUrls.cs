using GoblinAspire.ModelRegistry.Api.Gcs;
using GoblinAspire.ModelRegistry.Objects;

namespace GoblinAspire.ModelRegistry.Artifacts;

/// <summary>Signed download URLs for artifacts, as the registry's model calls hand them out.</summary>
public sealed class ArtifactUrls(BucketArtifactStore artifacts, UrlSigner signer)
{
    /// <summary>A signed GET URL for the artifact at <paramref name="storePath"/>, or null when no file is there (a folder or nothing).</summary>
    public async Task<Uri?> SignedDownloadAsync(HttpContext http, string storePath, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(http);
        return await artifacts.GetAsync(storePath, cancellationToken) is { IsDirectory: false }
            ? signer.Sign(HttpMethods.Get, GcsRequest.BaseUri(http), artifacts.Bucket, storePath)
            : null;
    }
}
