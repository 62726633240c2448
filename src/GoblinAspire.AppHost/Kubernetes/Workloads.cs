using System.Globalization;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.AppHost.Kubernetes;

/// <summary>
/// Builds each resource's objects: a Deployment (a StatefulSet for a container with data volumes) and its Service,
/// with hardened pods, probes, requests and limits; for a service with replicas, a HorizontalPodAutoscaler and a
/// PodDisruptionBudget.
/// </summary>
internal static class Workloads
{
    private const string HttpPort = "http";

    public static async Task<Workload> ServiceAsync(ProjectResource project, KubernetesSettings settings, DistributedApplicationExecutionContext execution, ILogger logger, CancellationToken cancellationToken)
    {
        var pod = project.KubernetesPodOf();
        var values = new PodValues(cancellationToken);
        var environment = await EnvironmentAsync(project, values, execution, logger, cancellationToken);
        environment.AddRange(pod.Folders.Where(f => f.Variable is not null).Select(f => new V1EnvVar { Name = f.Variable, Value = f.MountPath }));
        var endpoints = project.Annotations.OfType<EndpointAnnotation>().ToList();
        var ports = endpoints.Select(e => PodValues.ServicePort(project, e)).Distinct().ToList();
        var container = new V1Container
        {
            Name = project.Name,
            Image = KubernetesOutput.ServiceImage(project.Name),
            Env = environment,
            Ports = endpoints.Select(e => new V1ContainerPort { Name = e.Name, ContainerPort = PodValues.ServicePort(project, e), Protocol = "TCP" }).ToList(),
            StartupProbe = HttpProbe("/alive", period: 2, failures: Failures(pod.StartupAllowance, 2)),
            LivenessProbe = HttpProbe("/alive", period: 10, failures: 3),
            // /health fails only when the service cannot serve; a dependency it can work without is Degraded with 200.
            ReadinessProbe = HttpProbe("/health", period: 5, failures: 3),
        };
        var replicas = project.GetReplicaCount();
        var template = PodTemplate(project.Name, "service", pod, container, []);
        List<IKubernetesObject<V1ObjectMeta>> objects =
        [
            new V1Deployment
            {
                ApiVersion = "apps/v1",
                Kind = "Deployment",
                Metadata = Metadata(project.Name, "service"),
                Spec = new V1DeploymentSpec
                {
                    Replicas = replicas,
                    Selector = new V1LabelSelector { MatchLabels = Workload.Selector(project.Name) },
                    // A claim is ReadWriteOnce: the old pod lets go of it before the new one starts.
                    Strategy = pod.Folders.Any(f => f.IsClaim) ? new V1DeploymentStrategy { Type = "Recreate" } : null,
                    Template = template,
                },
            },
        ];
        objects.AddRange(Services(project.Name, "service", ports, endpoints.Any(e => e.IsExternal)));
        objects.AddRange(pod.Folders.Where(f => f.IsClaim).Select(f => Claim($"{project.Name}-{f.Name}", project.Name, "service", f.ClaimSize!)));
        if (replicas > 1)
        {
            objects.Add(new V2HorizontalPodAutoscaler
            {
                ApiVersion = "autoscaling/v2",
                Kind = "HorizontalPodAutoscaler",
                Metadata = Metadata(project.Name, "service"),
                Spec = new V2HorizontalPodAutoscalerSpec
                {
                    ScaleTargetRef = new V2CrossVersionObjectReference { ApiVersion = "apps/v1", Kind = "Deployment", Name = project.Name },
                    MinReplicas = replicas,
                    MaxReplicas = Math.Max(replicas, settings.MaxReplicas),
                    Metrics =
                    [
                        new V2MetricSpec
                        {
                            Type = "Resource",
                            Resource = new V2ResourceMetricSource { Name = "cpu", Target = new V2MetricTarget { Type = "Utilization", AverageUtilization = 70 } },
                        },
                    ],
                },
            });
            objects.Add(new V1PodDisruptionBudget
            {
                ApiVersion = "policy/v1",
                Kind = "PodDisruptionBudget",
                Metadata = Metadata(project.Name, "service"),
                Spec = new V1PodDisruptionBudgetSpec
                {
                    // A drain takes one replica at a time: the rest keep serving.
                    MinAvailable = replicas - 1,
                    Selector = new V1LabelSelector { MatchLabels = Workload.Selector(project.Name) },
                },
            });
        }

        return new Workload(project, objects, values.Targets, values.SecretKeys, ports);
    }

    public static async Task<Workload> ContainerAsync(ContainerResource resource, DistributedApplicationExecutionContext execution, ILogger logger, CancellationToken cancellationToken)
    {
        var pod = resource.KubernetesPodOf();
        var component = pod.Gpus > 0 ? "inference" : "datastore";
        var values = new PodValues(cancellationToken);
        var environment = await EnvironmentAsync(resource, values, execution, logger, cancellationToken);
        var arguments = new List<string>();
        var gathered = new List<object>();
        var argumentContext = new CommandLineArgsCallbackContext(gathered, resource, cancellationToken) { ExecutionContext = execution, Logger = logger };
        foreach (var callback in resource.Annotations.OfType<CommandLineArgsCallbackAnnotation>())
        {
            await callback.Callback(argumentContext);
        }

        foreach (var argument in gathered)
        {
            arguments.Add(await values.RenderAsync(argument));
        }

        // Secrets spliced into arguments come from variables too; those go first so $(VAR) can see them.
        environment = [.. values.SecretVariables.Where(v => environment.All(e => e.Name != v.Name)), .. environment.Where(e => values.SecretVariables.All(v => v.Name != e.Name))];
        var image = resource.Annotations.OfType<ContainerImageAnnotation>().Last();
        var imageName = $"{(image.Registry is { Length: > 0 } registry ? registry + "/" : "")}{image.Image}:{image.Tag}";
        var endpoints = resource.Annotations.OfType<EndpointAnnotation>().ToList();
        var ports = endpoints.Select(e => PodValues.ServicePort(resource, e)).Distinct().ToList();
        var volumes = resource.Annotations.OfType<ContainerMountAnnotation>().Where(m => m.Type == ContainerMountType.Volume).Select((m, i) => (Name: i == 0 ? "data" : $"data-{i}", m.Target, m.IsReadOnly)).ToList();
        var mounts = volumes.Select(v => new V1VolumeMount { Name = v.Name, MountPath = v.Target, ReadOnlyProperty = v.IsReadOnly ? true : null }).ToList();
        var container = new V1Container
        {
            Name = resource.Name,
            Image = imageName,
            Command = resource.Entrypoint is { Length: > 0 } entrypoint ? [entrypoint] : null,
            Args = arguments.Count > 0 ? arguments : null,
            Env = environment.Count > 0 ? environment : null,
            Ports = endpoints.Select(e => new V1ContainerPort { Name = e.Name, ContainerPort = PodValues.ServicePort(resource, e), Protocol = "TCP" }).ToList(),
            VolumeMounts = mounts,
        };
        var port = endpoints[0].Name;
        if (pod.HealthPath is { } health)
        {
            container.StartupProbe = HttpProbe(health, period: 10, failures: Failures(pod.StartupAllowance, 10), port);
            container.LivenessProbe = HttpProbe(health, period: 10, failures: 3, port);
            container.ReadinessProbe = HttpProbe(health, period: 5, failures: 3, port);
        }
        else
        {
            container.StartupProbe = TcpProbe(port, period: 2, failures: Failures(pod.StartupAllowance, 2));
            container.LivenessProbe = TcpProbe(port, period: 10, failures: 3);
            container.ReadinessProbe = TcpProbe(port, period: 5, failures: 3);
        }

        List<V1Container> initContainers = [];
        if (pod.Init is { } init)
        {
            initContainers.Add(new V1Container
            {
                Name = init.Name,
                Image = imageName,
                Command = [init.Command[0]],
                Args = [.. init.Command.Skip(1)],
                Env = [.. environment.Where(e => e.Name != "HF_HUB_OFFLINE"), .. init.OptionalSecrets.Select(s => PodValues.SecretVariable(s.Key, s.Value.Name, optional: true))],
                VolumeMounts = mounts,
            });
            foreach (var secret in init.OptionalSecrets.Values)
            {
                values.SecretKeys.Add(secret.Name);
            }
        }

        var template = PodTemplate(resource.Name, component, pod, container, initContainers);
        var claims = volumes.Select(v => Claim(v.Name, resource.Name, component, pod.VolumeSize)).ToList();
        List<IKubernetesObject<V1ObjectMeta>> objects =
        [
            new V1StatefulSet
            {
                ApiVersion = "apps/v1",
                Kind = "StatefulSet",
                Metadata = Metadata(resource.Name, component),
                Spec = new V1StatefulSetSpec
                {
                    ServiceName = resource.Name,
                    Replicas = 1,
                    Selector = new V1LabelSelector { MatchLabels = Workload.Selector(resource.Name) },
                    Template = template,
                    VolumeClaimTemplates = claims.Count > 0 ? claims : null,
                },
            },
        ];
        objects.AddRange(Services(resource.Name, component, ports, external: false));
        return new Workload(resource, objects, values.Targets, values.SecretKeys, ports);
    }

    private static async Task<List<V1EnvVar>> EnvironmentAsync(IResource resource, PodValues values, DistributedApplicationExecutionContext execution, ILogger logger, CancellationToken cancellationToken)
    {
        var variables = new List<V1EnvVar>();
        var gathered = new Dictionary<string, object>(StringComparer.Ordinal);
        var context = new EnvironmentCallbackContext(execution, resource, gathered, cancellationToken) { Logger = logger };
        foreach (var callback in resource.Annotations.OfType<EnvironmentCallbackAnnotation>())
        {
            await callback.Callback(context);
        }

        foreach (var (name, value) in gathered)
        {
            variables.Add(await values.VariableAsync(name, value));
        }

        // Kubernetes expands $(VAR) only from variables defined earlier in the list.
        return [.. values.SecretVariables, .. variables];
    }

    private static V1PodTemplateSpec PodTemplate(string name, string component, KubernetesPod pod, V1Container container, List<V1Container> initContainers)
    {
        var scratch = new List<(string Name, string Path, string? Medium)> { ("tmp", "/tmp", null) };
        scratch.AddRange(pod.Folders.Where(f => !f.IsClaim).Select(f => (f.Name, f.MountPath, (string?)null)));
        if (pod.Gpus > 0)
        {
            // NCCL and PyTorch's workers share tensors through /dev/shm, which a container's default 64 MiB starves.
            scratch.Add(("dshm", "/dev/shm", "Memory"));
        }

        var volumes = scratch.Select(s => new V1Volume { Name = s.Name, EmptyDir = new V1EmptyDirVolumeSource { Medium = s.Medium } })
            .Concat(pod.Folders.Where(f => f.IsClaim).Select(f => new V1Volume { Name = f.Name, PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = $"{name}-{f.Name}" } }))
            .ToList();
        var mounts = scratch.Select(s => new V1VolumeMount { Name = s.Name, MountPath = s.Path })
            .Concat(pod.Folders.Where(f => f.IsClaim).Select(f => new V1VolumeMount { Name = f.Name, MountPath = f.MountPath }));
        foreach (var each in initContainers.Prepend(container))
        {
            each.VolumeMounts = [.. each.VolumeMounts ?? [], .. mounts];
            each.SecurityContext = new V1SecurityContext
            {
                AllowPrivilegeEscalation = false,
                ReadOnlyRootFilesystem = true,
                RunAsNonRoot = true,
                Capabilities = new V1Capabilities { Drop = ["ALL"] },
            };
            each.Resources = new V1ResourceRequirements
            {
                Requests = new Dictionary<string, ResourceQuantity>(StringComparer.Ordinal) { ["cpu"] = new(pod.CpuRequest), ["memory"] = new(pod.MemoryRequest) },
                Limits = new Dictionary<string, ResourceQuantity>(StringComparer.Ordinal) { ["cpu"] = new(pod.CpuLimit), ["memory"] = new(pod.MemoryLimit) },
            };
            if (pod.Gpus > 0 && each == container)
            {
                var gpus = new ResourceQuantity(pod.Gpus.ToString(CultureInfo.InvariantCulture));
                each.Resources.Requests["nvidia.com/gpu"] = gpus;
                each.Resources.Limits["nvidia.com/gpu"] = gpus;
            }
        }

        return new V1PodTemplateSpec
        {
            Metadata = new V1ObjectMeta { Labels = Workload.Labels(name, component) },
            Spec = new V1PodSpec
            {
                AutomountServiceAccountToken = false,
                EnableServiceLinks = false,
                SecurityContext = new V1PodSecurityContext
                {
                    RunAsNonRoot = true,
                    RunAsUser = pod.RunAsUser,
                    RunAsGroup = pod.RunAsUser,
                    FsGroup = pod.RunAsUser,
                    SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
                },
                InitContainers = initContainers.Count > 0 ? initContainers : null,
                Containers = [container],
                Volumes = volumes,
                NodeSelector = pod.Gpus > 0 ? new Dictionary<string, string>(StringComparer.Ordinal) { ["nvidia.com/gpu.present"] = "true" } : null,
                Tolerations = pod.Gpus > 0 ? [new V1Toleration { Key = "nvidia.com/gpu", OperatorProperty = "Exists", Effect = "NoSchedule" }] : null,
            },
        };
    }

    private static IEnumerable<V1Service> Services(string name, string component, List<int> ports, bool external)
    {
        var servicePorts = ports.Select(p => new V1ServicePort { Name = ports.Count == 1 ? HttpPort : $"port-{p}", Port = p, TargetPort = p, Protocol = "TCP" }).ToList();
        yield return new V1Service
        {
            ApiVersion = "v1",
            Kind = "Service",
            Metadata = Metadata(name, component),
            Spec = new V1ServiceSpec { Type = "ClusterIP", Selector = Workload.Selector(name), Ports = servicePorts },
        };
        if (external)
        {
            // The entry point for clients outside the cluster; inside it, the ClusterIP service above.
            yield return new V1Service
            {
                ApiVersion = "v1",
                Kind = "Service",
                Metadata = Metadata($"{name}-public", component, name),
                Spec = new V1ServiceSpec
                {
                    Type = "LoadBalancer",
                    Selector = Workload.Selector(name),
                    Ports = [.. ports.Select(p => new V1ServicePort { Name = ports.Count == 1 ? HttpPort : $"port-{p}", Port = 80, TargetPort = p, Protocol = "TCP" })],
                },
            };
        }
    }

    private static V1PersistentVolumeClaim Claim(string name, string owner, string component, string size) => new()
    {
        ApiVersion = "v1",
        Kind = "PersistentVolumeClaim",
        Metadata = Metadata(name, component, owner),
        Spec = new V1PersistentVolumeClaimSpec
        {
            AccessModes = ["ReadWriteOnce"],
            Resources = new V1VolumeResourceRequirements { Requests = new Dictionary<string, ResourceQuantity>(StringComparer.Ordinal) { ["storage"] = new(size) } },
        },
    };

    public static V1ObjectMeta Metadata(string name, string component, string? owner = null) => new()
    {
        Name = name,
        Labels = Workload.Labels(owner ?? name, component),
    };

    private static V1Probe HttpProbe(string path, int period, int failures, string port = HttpPort) => new()
    {
        HttpGet = new V1HTTPGetAction { Path = path, Port = port },
        PeriodSeconds = period,
        FailureThreshold = failures,
        TimeoutSeconds = 3,
    };

    private static V1Probe TcpProbe(string port, int period, int failures) => new()
    {
        TcpSocket = new V1TCPSocketAction { Port = port },
        PeriodSeconds = period,
        FailureThreshold = failures,
        TimeoutSeconds = 3,
    };

    private static int Failures(TimeSpan allowance, int period) => Math.Max(3, (int)Math.Ceiling(allowance.TotalSeconds / period));
}
