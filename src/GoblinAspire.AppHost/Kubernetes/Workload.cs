using k8s;
using k8s.Models;

namespace GoblinAspire.AppHost.Kubernetes;

/// <summary>
/// One resource of the app model as Kubernetes runs it: a service (a project) or a container, with the objects that
/// make it up and the resources its values point at.
/// </summary>
internal sealed record Workload(IResource Resource, IReadOnlyList<IKubernetesObject<V1ObjectMeta>> Objects, IReadOnlySet<IResource> Targets, IReadOnlySet<string> SecretKeys, IReadOnlyList<int> Ports)
{
    public string Name => Resource.Name;

    public bool IsService => Resource is ProjectResource;

    public bool IsExternal => Resource.Annotations.OfType<EndpointAnnotation>().Any(e => e.IsExternal);

    public static Dictionary<string, string> Selector(string name) => new(StringComparer.Ordinal)
    {
        ["app.kubernetes.io/name"] = name,
        ["app.kubernetes.io/part-of"] = KubernetesOutput.PartOf,
    };

    public static Dictionary<string, string> Labels(string name, string component) => new(Selector(name), StringComparer.Ordinal)
    {
        ["app.kubernetes.io/component"] = component,
    };
}
