namespace GoblinAspire.AppHost.Kubernetes;

/// <summary>
/// What the Kubernetes output takes from the operator, as AppHost parameters: where the service images are
/// (<c>image-registry</c>, <c>image-tag</c>), the namespace of the production overlay and the gateway's most replicas.
/// </summary>
internal sealed record KubernetesSettings(string ImageRegistry, string ImageTag, string Namespace, int MaxReplicas)
{
    public const string ImageRegistryParameter = "image-registry";
    public const string ImageTagParameter = "image-tag";
    public const string NamespaceParameter = "kubernetes-namespace";
    public const string MaxReplicasParameter = "max-replicas";

    public static async Task<KubernetesSettings> ReadAsync(IEnumerable<ParameterResource> parameters, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var parameter in parameters)
        {
            values[parameter.Name] = await parameter.GetValueAsync(cancellationToken);
        }

        var registry = values.GetValueOrDefault(ImageRegistryParameter)?.TrimEnd('/');
        var tag = values.GetValueOrDefault(ImageTagParameter);
        var ns = values.GetValueOrDefault(NamespaceParameter);
        if (string.IsNullOrWhiteSpace(registry) || string.IsNullOrWhiteSpace(tag) || string.IsNullOrWhiteSpace(ns))
        {
            throw new DistributedApplicationException($"The Kubernetes output needs Parameters:{ImageRegistryParameter}, Parameters:{ImageTagParameter} and Parameters:{NamespaceParameter}.");
        }

        if (tag == "latest")
        {
            throw new DistributedApplicationException($"Parameters:{ImageTagParameter} must name a released tag, never 'latest': a rollout must know which image it runs.");
        }

        if (!int.TryParse(values.GetValueOrDefault(MaxReplicasParameter), out var maxReplicas) || maxReplicas < 1)
        {
            throw new DistributedApplicationException($"Parameters:{MaxReplicasParameter} must be a whole number of at least 1.");
        }

        return new KubernetesSettings(registry, tag, ns, maxReplicas);
    }
}
