#pragma warning disable ASPIREPROBES001 // Probes are evaluation API in Aspire 13.1; the Kubernetes publisher turns them into pod probes.

using Aspire.Hosting.Kubernetes;
using Aspire.Hosting.Kubernetes.Resources;

/// <summary>
/// What production needs from the published chart and Aspire's defaults do not give: pods that run as a non-root
/// user on a read-only root filesystem with a writable /tmp, no capabilities and no privilege escalation; requests and
/// limits; liveness on /alive and readiness on /health; persistent storage where a service keeps data; an autoscaler
/// for the gateway. Only publishing sees any of it: F5 runs unchanged.
/// </summary>
internal static class KubernetesPublishing
{
    /// <summary>The non-root user of the .NET container images (<c>APP_UID</c>).</summary>
    private const long AppUser = 1654;
    private const string Tmp = "tmp";

    public static IResourceBuilder<ProjectResource> PublishAsHardenedService(
        this IResourceBuilder<ProjectResource> project,
        string cpu,
        string memory,
        (string Setting, string Folder, string Size)? persistentFolder = null,
        string? scratchFolder = null,
        int? autoscaleTo = null)
    {
        project
            .WithHttpProbe(ProbeType.Liveness, ServiceDefaultsPaths.Alive)
            .WithHttpProbe(ProbeType.Readiness, ServiceDefaultsPaths.Health);

        var name = project.Resource.Name;
        if (project.ApplicationBuilder.ExecutionContext.IsPublishMode)
        {
            // Inside the container, folders the service writes must be mounts: the root filesystem is read-only.
            if (persistentFolder is { } persistent)
            {
                project.WithEnvironment(persistent.Setting, $"/var/lib/goblin/{persistent.Folder}");
            }

            if (scratchFolder is not null)
            {
                project.WithEnvironment(scratchFolder, "/tmp/goblin");
            }
        }

        return project.PublishAsKubernetesService(service =>
        {
            var pod = service.Workload!.PodTemplate.Spec;
            pod.SecurityContext = new PodSecurityContextV1
            {
                RunAsNonRoot = true,
                RunAsUser = AppUser,
                RunAsGroup = AppUser,
                FsGroup = AppUser,
                SeccompProfile = new SeccompProfileV1 { Type = "RuntimeDefault" },
            };
            pod.Volumes.Add(new VolumeV1 { Name = Tmp, EmptyDir = new EmptyDirVolumeSourceV1 { SizeLimit = "2Gi" } });
            if (persistentFolder is { } persistent)
            {
                var claim = new PersistentVolumeClaim();
                claim.Metadata.Name = $"{name}-{persistent.Folder}";
                claim.Spec.AccessModes.Add("ReadWriteOnce");
                claim.Spec.Resources.Requests["storage"] = persistent.Size;
                // Unset members stay out of the YAML (the publisher omits nulls): an empty data source would be invalid.
                claim.Spec.DataSource = null!;
                claim.Spec.DataSourceRef = null!;
                claim.Spec.Selector = null!;
                service.AdditionalResources.Add(claim);
                pod.Volumes.Add(new VolumeV1 { Name = persistent.Folder, PersistentVolumeClaim = new PersistentVolumeClaimVolumeSourceV1 { ClaimName = claim.Metadata.Name } });
            }

            foreach (var container in pod.Containers)
            {
                container.SecurityContext = new SecurityContextV1
                {
                    RunAsNonRoot = true,
                    ReadOnlyRootFilesystem = true,
                    AllowPrivilegeEscalation = false,
                    Capabilities = new CapabilitiesV1 { Drop = { "ALL" } },
                };
                container.VolumeMounts.Add(new VolumeMountV1 { Name = Tmp, MountPath = "/tmp" });
                if (persistentFolder is { } mounted)
                {
                    container.VolumeMounts.Add(new VolumeMountV1 { Name = mounted.Folder, MountPath = $"/var/lib/goblin/{mounted.Folder}" });
                }

                container.Resources = Resources(cpu, memory);
            }

            if (autoscaleTo is { } maximum)
            {
                service.AdditionalResources.Add(Autoscaler(service, maximum));
            }
        });
    }

    /// <summary>
    /// Redis and PostgreSQL keep their images' own users (their entrypoints drop root themselves); they get requests,
    /// limits, no privilege escalation and the runtime's seccomp profile. Their data volumes become claims.
    /// </summary>
    public static IResourceBuilder<T> PublishAsHardenedDataStore<T>(this IResourceBuilder<T> store, string memory)
        where T : ContainerResource =>
        store.PublishAsKubernetesService(service =>
        {
            var pod = service.Workload!.PodTemplate.Spec;
            pod.SecurityContext = new PodSecurityContextV1 { SeccompProfile = new SeccompProfileV1 { Type = "RuntimeDefault" } };
            foreach (var container in pod.Containers)
            {
                container.SecurityContext = new SecurityContextV1 { AllowPrivilegeEscalation = false };
                container.Resources = Resources("250m", memory);
            }
        });

    /// <summary>
    /// The GPU the vLLM pod needs (one <c>nvidia.com/gpu</c>, a GPU node, its taint tolerated), and the model download
    /// as an init container on the same cache volume: a one-shot step a Deployment could not run on its own.
    /// </summary>
    public static IResourceBuilder<ContainerResource> PublishOnGpuNode(this IResourceBuilder<ContainerResource> vllm, string[] download) =>
        vllm.PublishAsKubernetesService(service =>
        {
            var pod = service.Workload!.PodTemplate.Spec;
            var fetch = new ContainerV1 { Name = "download", Image = $"{Vllm.Image}:{Vllm.Tag}" };
            fetch.Command.AddRange(download);
            fetch.VolumeMounts.Add(new VolumeMountV1 { Name = Vllm.CacheVolume, MountPath = Vllm.Cache });
            fetch.SecurityContext = new SecurityContextV1 { AllowPrivilegeEscalation = false };
            pod.InitContainers.Add(fetch);
            pod.NodeSelector["nvidia.com/gpu.present"] = "true";
            pod.Tolerations.Add(new TolerationV1 { Key = "nvidia.com/gpu", Operator = "Exists", Effect = "NoSchedule" });
            foreach (var container in pod.Containers)
            {
                container.SecurityContext = new SecurityContextV1 { AllowPrivilegeEscalation = false, Capabilities = new CapabilitiesV1 { Drop = { "ALL" } } };
                var resources = Resources("4", "32Gi");
                resources.Limits["nvidia.com/gpu"] = "1";
                container.Resources = resources;
            }
        });

    private static ResourceRequirementsV1 Resources(string cpu, string memory)
    {
        // Requests are what the service needs at rest; limits leave room for bursts: memory twice, CPU four times.
        var resources = new ResourceRequirementsV1();
        resources.Requests["cpu"] = cpu;
        resources.Requests["memory"] = memory;
        resources.Limits["memory"] = Twice(memory);
        resources.Limits["cpu"] = cpu.EndsWith('m') ? $"{int.Parse(cpu[..^1], System.Globalization.CultureInfo.InvariantCulture) * 4}m" : $"{int.Parse(cpu, System.Globalization.CultureInfo.InvariantCulture) * 4}";
        return resources;
    }

    private static string Twice(string quantity)
    {
        var unit = quantity[^2..];
        return $"{int.Parse(quantity[..^2], System.Globalization.CultureInfo.InvariantCulture) * 2}{unit}";
    }

    /// <summary>CPU-driven scaling of the gateway's deployment between its AppHost replica count and <paramref name="maximum"/>.</summary>
    private static HorizontalPodAutoscalerV2 Autoscaler(KubernetesResource service, int maximum)
    {
        var autoscaler = new HorizontalPodAutoscalerV2();
        autoscaler.Metadata.Name = $"{service.Workload!.Metadata.Name}-autoscaler";
        autoscaler.Spec.MinReplicas = (service.Workload as Deployment)?.Spec.Replicas ?? 2;
        autoscaler.Spec.MaxReplicas = maximum;
        autoscaler.Spec.Behavior = null!;
        autoscaler.Spec.ScaleTargetRef = new CrossVersionObjectReferenceV2 { ApiVersion = "apps/v1", Kind = "Deployment", Name = service.Workload.Metadata.Name, Metadata = null! };
        var cpu = new MetricSpecV2 { Type = "Resource", ContainerResource = null!, External = null!, Pods = null!, Object = null! };
        cpu.Resource.Name = "cpu";
        cpu.Resource.Target.Type = "Utilization";
        cpu.Resource.Target.AverageUtilization = 70;
        autoscaler.Spec.Metrics.Add(cpu);
        return autoscaler;
    }
}
