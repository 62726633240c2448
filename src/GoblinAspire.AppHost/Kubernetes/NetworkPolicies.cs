using k8s.Models;

namespace GoblinAspire.AppHost.Kubernetes;

/// <summary>
/// Ingress as the app model's references allow it: denied to every platform pod, then opened to each workload from
/// the workloads that reference it (on its own ports), to the gateway from anywhere, and to every service's port from
/// the <c>monitoring</c> namespace, whose Prometheus scrapes <c>/metrics</c> there. A network policy cannot tell
/// paths apart, so that port is the service's one port. Egress stays open: the gateway calls cloud APIs and RunPod,
/// the worker rents machines, vLLM's init container downloads the model.
/// </summary>
internal static class NetworkPolicies
{
    public const string MonitoringNamespace = "monitoring";

    public static IEnumerable<V1NetworkPolicy> For(IReadOnlyList<Workload> workloads)
    {
        yield return new V1NetworkPolicy
        {
            ApiVersion = "networking.k8s.io/v1",
            Kind = "NetworkPolicy",
            Metadata = new V1ObjectMeta { Name = "default-deny-ingress", Labels = new Dictionary<string, string>(StringComparer.Ordinal) { ["app.kubernetes.io/part-of"] = KubernetesOutput.PartOf } },
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string>(StringComparer.Ordinal) { ["app.kubernetes.io/part-of"] = KubernetesOutput.PartOf } },
                PolicyTypes = ["Ingress"],
            },
        };

        foreach (var workload in workloads)
        {
            var ports = workload.Ports.Select(p => new V1NetworkPolicyPort { Port = p, Protocol = "TCP" }).ToList();
            var callers = workloads.Where(w => w != workload && References(w, workload.Resource)).Select(w => w.Name).Order(StringComparer.Ordinal).ToList();
            var rules = new List<V1NetworkPolicyIngressRule>();
            if (callers.Count > 0)
            {
                rules.Add(new V1NetworkPolicyIngressRule
                {
                    FromProperty = [.. callers.Select(c => new V1NetworkPolicyPeer { PodSelector = new V1LabelSelector { MatchLabels = Workload.Selector(c) } })],
                    Ports = ports,
                });
            }

            if (workload.IsExternal)
            {
                // No "from": any source, inside the cluster or through its load balancer.
                rules.Add(new V1NetworkPolicyIngressRule { Ports = ports });
            }

            if (workload.IsService)
            {
                rules.Add(new V1NetworkPolicyIngressRule
                {
                    FromProperty =
                    [
                        new V1NetworkPolicyPeer
                        {
                            NamespaceSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string>(StringComparer.Ordinal) { ["kubernetes.io/metadata.name"] = MonitoringNamespace } },
                        },
                    ],
                    Ports = ports,
                });
            }

            if (rules.Count == 0)
            {
                continue;
            }

            yield return new V1NetworkPolicy
            {
                ApiVersion = "networking.k8s.io/v1",
                Kind = "NetworkPolicy",
                Metadata = Workloads.Metadata($"{workload.Name}-ingress", workload.IsService ? "service" : "datastore", workload.Name),
                Spec = new V1NetworkPolicySpec
                {
                    PodSelector = new V1LabelSelector { MatchLabels = Workload.Selector(workload.Name) },
                    PolicyTypes = ["Ingress"],
                    Ingress = rules,
                },
            };
        }
    }

    /// <summary>
    /// Whether <paramref name="caller"/> references <paramref name="target"/>: through <c>WithReference</c> (the
    /// model's relationship annotations, a database counting as its server) or through a value its pod is given.
    /// </summary>
    private static bool References(Workload caller, IResource target) =>
        caller.Targets.Contains(target)
        || caller.Resource.Annotations.OfType<ResourceRelationshipAnnotation>().Any(r => r.Type == "Reference" && r.Resource is not ParameterResource && PodValues.Root(r.Resource) == target);
}
