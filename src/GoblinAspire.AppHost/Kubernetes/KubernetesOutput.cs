using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.AppHost.Kubernetes;

/// <summary>
/// The app model as a kustomize base (every workload, its Service and claims, the network policies) and a production
/// overlay (the namespace, and each service's image from the <c>image-registry</c> and <c>image-tag</c> parameters).
/// Kustomize rather than a Helm chart: <c>kubectl</c> applies it with nothing else installed, the output is plain
/// objects a reviewer can diff, and what differs per cluster is an overlay, not a template language. The
/// kustomizations use only fields that kubectl 1.20's kustomize also reads (<c>bases</c>, <c>resources</c>,
/// <c>namespace</c>, <c>images</c>), so Debian's kubectl builds it as well as a current one.
/// </summary>
internal sealed class KubernetesOutput
{
    public const string PartOf = "goblinaspire";
    public const string BaseFolder = "base";
    public const string OverlayFolder = "overlays/production";

    private KubernetesOutput(IReadOnlyList<Workload> workloads, IReadOnlyList<V1NetworkPolicy> policies, KubernetesSettings settings)
    {
        Workloads = workloads;
        Policies = policies;
        Settings = settings;
    }

    public IReadOnlyList<Workload> Workloads { get; }

    public IReadOnlyList<V1NetworkPolicy> Policies { get; }

    public KubernetesSettings Settings { get; }

    /// <summary>The keys of <see cref="PodValues.SecretName"/> some pod reads.</summary>
    public IReadOnlyList<string> SecretKeys => [.. Workloads.SelectMany(w => w.SecretKeys).Distinct().Order(StringComparer.Ordinal)];

    /// <summary>The image a service's Deployment names in the base; <c>dotnet publish -t:PublishContainer</c> names it the same.</summary>
    public static string ServiceImage(string service) => $"goblinaspire-{service}";

    public static async Task<KubernetesOutput> RenderAsync(DistributedApplicationModel model, DistributedApplicationExecutionContext execution, KubernetesSettings settings, ILogger logger, CancellationToken cancellationToken)
    {
        var workloads = new List<Workload>();
        foreach (var resource in model.Resources.Where(r => !r.IsExcludedFromPublish()))
        {
            switch (resource)
            {
                case ProjectResource project:
                    workloads.Add(await Kubernetes.Workloads.ServiceAsync(project, settings, execution, logger, cancellationToken));
                    break;
                case ContainerResource container:
                    workloads.Add(await Kubernetes.Workloads.ContainerAsync(container, execution, logger, cancellationToken));
                    break;
            }
        }

        return new KubernetesOutput(workloads, [.. NetworkPolicies.For(workloads)], settings);
    }

    /// <summary>Writes <c>base/</c> and <c>overlays/production/</c> under <paramref name="directory"/>, replacing what was there.</summary>
    public async Task WriteAsync(string directory, CancellationToken cancellationToken)
    {
        var baseDirectory = Path.Combine(directory, BaseFolder);
        var overlayDirectory = Path.Combine(directory, OverlayFolder);
        foreach (var folder in new[] { baseDirectory, overlayDirectory })
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }

            Directory.CreateDirectory(folder);
        }

        var files = new List<string>();
        foreach (var workload in Workloads)
        {
            files.Add($"{workload.Name}.yaml");
            await File.WriteAllTextAsync(Path.Combine(baseDirectory, files[^1]), Document(KubernetesYaml.SerializeAll(workload.Objects)), cancellationToken);
        }

        files.Add("network-policies.yaml");
        await File.WriteAllTextAsync(Path.Combine(baseDirectory, files[^1]), Document(KubernetesYaml.SerializeAll(Policies)), cancellationToken);
        await File.WriteAllTextAsync(Path.Combine(baseDirectory, "kustomization.yaml"), Document(KubernetesYaml.Serialize(new Kustomization { Resources = files })), cancellationToken);

        var ns = new V1Namespace
        {
            ApiVersion = "v1",
            Kind = "Namespace",
            Metadata = new V1ObjectMeta { Name = Settings.Namespace, Labels = new Dictionary<string, string>(StringComparer.Ordinal) { ["app.kubernetes.io/part-of"] = PartOf } },
        };
        await File.WriteAllTextAsync(Path.Combine(overlayDirectory, "namespace.yaml"), Document(KubernetesYaml.Serialize(ns)), cancellationToken);
        var overlay = new Kustomization
        {
            Namespace = Settings.Namespace,
            Bases = ["../../base"],
            Resources = ["namespace.yaml"],
            Images = [.. Workloads.Where(w => w.IsService).Select(w => new KustomizationImage
            {
                Name = ServiceImage(w.Name),
                NewName = $"{Settings.ImageRegistry}/{ServiceImage(w.Name)}",
                NewTag = Settings.ImageTag,
            })],
        };
        await File.WriteAllTextAsync(Path.Combine(overlayDirectory, "kustomization.yaml"), Document(KubernetesYaml.Serialize(overlay)), cancellationToken);
    }

    private static string Document(string yaml) => yaml.EndsWith('\n') ? yaml : yaml + "\n";
}

/// <summary>A kustomization file: the fields both kustomize 2 (kubectl 1.20) and kustomize 5 read.</summary>
internal sealed class Kustomization
{
    public string ApiVersion { get; init; } = "kustomize.config.k8s.io/v1beta1";

    public string Kind { get; init; } = "Kustomization";

    public string? Namespace { get; init; }

    public List<string>? Bases { get; init; }

    public List<string>? Resources { get; init; }

    public List<KustomizationImage>? Images { get; init; }
}

internal sealed class KustomizationImage
{
    public required string Name { get; init; }

    public required string NewName { get; init; }

    public required string NewTag { get; init; }
}
