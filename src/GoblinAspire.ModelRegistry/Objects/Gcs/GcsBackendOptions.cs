using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Objects.Gcs;

/// <summary>
/// The real-GCS backend: <c>ModelRegistry:Storage:Gcs</c>, used when <c>ModelRegistry:Storage:Backend</c> is
/// <c>gcs</c>. Buckets and objects live in Google Cloud Storage as ordinary objects any GCS tool can read; the
/// registry keeps nothing but uploads in flight, staged under its artifact root.
/// </summary>
public sealed class GcsBackendOptions
{
    public const string SectionName = "ModelRegistry:Storage:Gcs";

    /// <summary>The JSON API's root; an emulator's (or the registry's own API) for tests and air-gapped sites.</summary>
    [Required]
    public Uri Endpoint { get; set; } = new("https://storage.googleapis.com/");

    /// <summary>The project new buckets are created in (GCS's <c>?project=</c>).</summary>
    [Required]
    [RegularExpression("^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[0-9]{1,20}$")]
    public string Project { get; set; } = "";

    /// <summary>
    /// How requests are authorised: <c>service-account</c> (a JSON key file, <see cref="CredentialsFile"/> or
    /// <c>GOOGLE_APPLICATION_CREDENTIALS</c>), <c>metadata</c> (the GCE/GKE metadata server: workload identity), or
    /// <c>none</c> (emulators).
    /// </summary>
    [Required]
    [RegularExpression("^(service-account|metadata|none)$")]
    public string Auth { get; set; } = "metadata";

    /// <summary>A service-account key file (a secret). Unset, <c>GOOGLE_APPLICATION_CREDENTIALS</c> names it.</summary>
    public string? CredentialsFile { get; set; }

    /// <summary>The metadata server (GKE's workload identity answers there); overridable for tests.</summary>
    [Required]
    public Uri MetadataEndpoint { get; set; } = new("http://metadata.google.internal/");

    /// <summary>OAuth scope of the tokens asked for.</summary>
    [Required]
    public string Scope { get; set; } = "https://www.googleapis.com/auth/devstorage.read_write";

    /// <summary>How long one JSON API call may take before it fails; uploads and downloads are bounded per read instead.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How many times an upload resumes after its connection broke, as GCS's resumable protocol allows.</summary>
    [Range(0, 20)]
    public int UploadResumes { get; set; } = 5;
}

[OptionsValidator]
public sealed partial class GcsBackendOptionsValidator : IValidateOptions<GcsBackendOptions>;
