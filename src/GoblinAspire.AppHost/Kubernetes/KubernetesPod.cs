namespace GoblinAspire.AppHost.Kubernetes;

/// <summary>
/// What a resource's pod needs in Kubernetes that Aspire's model has no word for: the image's non-root user, requests
/// and limits, writable folders under a read-only root, claims, GPUs and a one-shot init step. The AppHost says it
/// beside the rest of a resource's wiring; only the Kubernetes publishing step reads it.
/// </summary>
public sealed record KubernetesPod : IResourceAnnotation
{
    /// <summary>The .NET images' <c>app</c> user (uid 1654), which every service image runs as.</summary>
    public const long DotnetAppUser = 1654;

    public long RunAsUser { get; init; } = DotnetAppUser;

    public string CpuRequest { get; init; } = "100m";

    public string MemoryRequest { get; init; } = "256Mi";

    public string CpuLimit { get; init; } = "1";

    public string MemoryLimit { get; init; } = "1Gi";

    /// <summary>Folders the process writes besides <c>/tmp</c> (which every pod has).</summary>
    public IReadOnlyList<PodFolder> Folders { get; init; } = [];

    /// <summary>The size of the claim behind each of a container's Aspire volumes.</summary>
    public string VolumeSize { get; init; } = "10Gi";

    /// <summary>Whole GPUs (<c>nvidia.com/gpu</c>) the pod needs; with any, it lands on a GPU node.</summary>
    public int Gpus { get; init; }

    /// <summary>The path of an HTTP health endpoint for a container that has one (projects always have /alive and /health).</summary>
    public string? HealthPath { get; init; }

    /// <summary>How long a container may take to become healthy the first time: vLLM loads its model for minutes.</summary>
    public TimeSpan StartupAllowance { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>A one-shot command in the same image before the main container starts, such as a model download.</summary>
    public PodInitStep? Init { get; init; }
}

/// <summary>
/// A writable folder at <paramref name="MountPath"/>: kept across restarts in a claim of <paramref name="ClaimSize"/>,
/// or an <c>emptyDir</c> without one. The service learns where it is from <paramref name="Variable"/>, where given.
/// </summary>
public sealed record PodFolder(string Name, string MountPath, string? Variable = null, string? ClaimSize = null)
{
    public bool IsClaim => ClaimSize is not null;
}

/// <summary>
/// An init container in the main container's image, with the main container's volumes. Its secrets are optional in
/// the pod (a missing key starts it without the variable): a public Hugging Face model needs no token.
/// </summary>
public sealed record PodInitStep(string Name, IReadOnlyList<string> Command, IReadOnlyDictionary<string, ParameterResource> OptionalSecrets);

public static class KubernetesPodExtensions
{
    /// <summary>Sets how the resource's pod looks in Kubernetes, starting from what was said before.</summary>
    public static IResourceBuilder<T> WithKubernetesPod<T>(this IResourceBuilder<T> builder, Func<KubernetesPod, KubernetesPod> shape)
        where T : IResource
    {
        var current = builder.Resource.Annotations.OfType<KubernetesPod>().LastOrDefault();
        if (current is not null)
        {
            builder.Resource.Annotations.Remove(current);
        }

        return builder.WithAnnotation(shape(current ?? new KubernetesPod()));
    }

    public static KubernetesPod KubernetesPodOf(this IResource resource) =>
        resource.Annotations.OfType<KubernetesPod>().LastOrDefault() ?? new KubernetesPod();
}
