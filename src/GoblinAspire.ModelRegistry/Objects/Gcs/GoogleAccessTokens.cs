using Google.Apis.Auth.OAuth2;
using Google.Apis.Auth.OAuth2.Responses;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Objects.Gcs;

/// <summary>
/// Bearer tokens for Cloud Storage, from Google.Apis.Auth: a service account's key file (the JWT-bearer grant at the
/// file's <c>token_uri</c>) or the metadata server (GKE workload identity). The library caches each token and renews it
/// before it expires; the key file is only ever read as a service account's, never as any credential type it claims.
/// </summary>
public sealed class GoogleAccessTokens(IOptions<GcsBackendOptions> options)
{
    private readonly GcsBackendOptions _options = options.Value;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ITokenAccess? _credential;

    /// <summary>A token for the next request, or null when the backend is configured without authorisation.</summary>
    public async Task<string?> GetAsync(CancellationToken cancellationToken)
    {
        if (_options.Auth == "none")
        {
            return null;
        }

        var credential = _credential ?? await CreateAsync(cancellationToken);
        try
        {
            return await credential.GetAccessTokenForRequestAsync(null, cancellationToken);
        }
        catch (Exception ex) when (ex is TokenResponseException or HttpRequestException or InvalidOperationException)
        {
            // The library's message may quote the token endpoint's answer; only the kind of failure is passed on.
            throw new GcsException(503, "backendError", $"No Cloud Storage access token could be obtained ({ex.GetType().Name}).");
        }
    }

    private async Task<ITokenAccess> CreateAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            _credential ??= _options.Auth == "service-account"
                ? (await CredentialFactory.FromFileAsync<ServiceAccountCredential>(GcsBackendOptionsChecks.CredentialsPath(_options)!, cancellationToken)).ToGoogleCredential().CreateScoped(_options.Scope)
                : GoogleCredential.FromComputeCredential(new ComputeCredential(new ComputeCredential.Initializer(new Uri(_options.MetadataEndpoint, "computeMetadata/v1/instance/service-accounts/default/token").AbsoluteUri))).CreateScoped(_options.Scope);
            return _credential;
        }
        finally
        {
            _gate.Release();
        }
    }
}

/// <summary>Checks at start what the backend needs: a readable key file for a service account, and no registry-side encryption.</summary>
public sealed class GcsBackendOptionsChecks(IOptions<StorageOptions> storage) : IValidateOptions<GcsBackendOptions>
{
    public static string? CredentialsPath(GcsBackendOptions options) =>
        options.CredentialsFile is { Length: > 0 } file ? file : Environment.GetEnvironmentVariable("GOOGLE_APPLICATION_CREDENTIALS");

    public ValidateOptionsResult Validate(string? name, GcsBackendOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.Auth == "service-account" && (CredentialsPath(options) is not { } path || !File.Exists(path)))
        {
            failures.Add("ModelRegistry:Storage:Gcs:Auth is service-account, but neither CredentialsFile nor GOOGLE_APPLICATION_CREDENTIALS names a readable key file.");
        }

        if (storage.Value.EncryptedBuckets.Length > 0)
        {
            failures.Add("ModelRegistry:Storage:EncryptedBuckets is for the local backend; with the gcs backend, give the buckets a default KMS key in Google Cloud.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
