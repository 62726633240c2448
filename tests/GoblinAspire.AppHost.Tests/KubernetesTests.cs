using System.Text.Json;
using System.Text.RegularExpressions;
using GoblinAspire.AppHost.Kubernetes;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;
using k8s;
using k8s.Models;

namespace GoblinAspire.AppHost.Tests;

/// <summary>
/// The Kubernetes output as an operator makes it, with the one documented command (<c>--operation publish --step
/// publish</c>), for the default parameters and for <c>gpu=true</c>: every object valid against the Kubernetes
/// schema, the overlay built by <c>kubectl kustomize</c>, and each point of the publishing issue checked on the
/// objects themselves.
/// </summary>
public sealed class KubernetesTests(PublishedPlatform published) : IClassFixture<PublishedPlatform>
{
    private const string Name = "app.kubernetes.io/name";

    private static readonly string[] Services = [PlatformResources.Gateway, PlatformResources.ModelRegistry, PlatformResources.TrainingWorker, PlatformResources.ChatFallback];

    [Fact]
    public void One_command_writes_the_manifest_and_the_kustomize_base_and_overlay()
    {
        foreach (var output in new[] { published.Default, published.Gpu })
        {
            Assert.True(File.Exists(Path.Combine(output.Directory, "aspire-manifest.json")));
            Assert.True(File.Exists(Path.Combine(output.Kubernetes, "base", "kustomization.yaml")));
            Assert.True(File.Exists(Path.Combine(output.Kubernetes, "overlays", "production", "kustomization.yaml")));
        }
    }

    [Fact]
    public async Task Every_object_is_valid_against_the_kubernetes_schema()
    {
        foreach (var output in new[] { published.Default, published.Gpu })
        {
            var files = Directory.GetFiles(output.Kubernetes, "*.yaml", SearchOption.AllDirectories).Where(f => Path.GetFileName(f) != "kustomization.yaml").Order().ToList();
            var built = Path.Combine(output.Directory, "built.yaml");
            await File.WriteAllTextAsync(built, output.Built);
            var report = await ChildProcess.RunAsync("node", [Path.Combine(ServiceProcess.RepositoryRoot(), "tests", "kubernetes-schema", "validate.mjs"), .. files, built], TimeSpan.FromMinutes(2));
            Assert.DoesNotContain("invalid", report, StringComparison.Ordinal);
            Assert.Equal(output.BaseObjects.Count + 1 + output.BuiltObjects.Count, Regex.Matches(report, "^ok ", RegexOptions.Multiline).Count);
        }
    }

    [Fact]
    public void Kubectl_kustomize_builds_the_overlay_into_the_namespace_with_each_services_image()
    {
        foreach (var output in new[] { published.Default, published.Gpu })
        {
            Assert.Equal(output.BaseObjects.Count + 1, output.BuiltObjects.Count);
            var ns = Assert.Single(output.BuiltObjects.OfType<V1Namespace>());
            Assert.Equal(PublishedPlatform.Namespace, ns.Metadata.Name);
            Assert.All(output.BuiltObjects.Where(o => o is not V1Namespace), o => Assert.Equal(PublishedPlatform.Namespace, ((IMetadata<V1ObjectMeta>)o).Metadata.NamespaceProperty));
            foreach (var service in Services)
            {
                var image = Assert.Single(Deployment(output.BuiltObjects, service).Spec.Template.Spec.Containers).Image;
                Assert.Equal($"{PublishedPlatform.Registry}/goblinaspire-{service}:{PublishedPlatform.Tag}", image);
            }
        }
    }

    [Fact]
    public void Each_service_is_a_deployment_and_service_and_the_gateway_has_its_replicas_an_autoscaler_and_a_disruption_budget()
    {
        var objects = published.Default.BaseObjects;
        foreach (var service in Services)
        {
            var deployment = Deployment(objects, service);
            Assert.Equal(service == PlatformResources.Gateway ? 2 : 1, deployment.Spec.Replicas);
            var clusterService = Assert.Single(objects.OfType<V1Service>(), s => s.Metadata.Name == service);
            Assert.Equal("ClusterIP", clusterService.Spec.Type);
            Assert.Equal(deployment.Spec.Selector.MatchLabels, clusterService.Spec.Selector);
            Assert.Equal(8080, Assert.Single(clusterService.Spec.Ports).TargetPort.ToInt());
        }

        var autoscaler = Assert.Single(objects.OfType<V2HorizontalPodAutoscaler>());
        Assert.Equal(("Deployment", PlatformResources.Gateway), (autoscaler.Spec.ScaleTargetRef.Kind, autoscaler.Spec.ScaleTargetRef.Name));
        Assert.Equal(2, autoscaler.Spec.MinReplicas);
        Assert.Equal(PublishedPlatform.MaxReplicas, autoscaler.Spec.MaxReplicas);
        var budget = Assert.Single(objects.OfType<V1PodDisruptionBudget>());
        Assert.Equal(1, budget.Spec.MinAvailable.ToInt());
        Assert.Equal(Deployment(objects, PlatformResources.Gateway).Spec.Selector.MatchLabels, budget.Spec.Selector.MatchLabels);
        var entry = Assert.Single(objects.OfType<V1Service>(), s => s.Spec.Type == "LoadBalancer");
        Assert.Equal(PlatformResources.Gateway, entry.Spec.Selector[Name]);
    }

    [Fact]
    public void Every_pod_is_hardened_with_requests_limits_and_a_writable_tmp()
    {
        foreach (var (name, pod) in Pods(published.Gpu.BaseObjects))
        {
            Assert.True(pod.Spec.SecurityContext.RunAsNonRoot, name);
            Assert.NotEqual(0, pod.Spec.SecurityContext.RunAsUser);
            Assert.Equal("RuntimeDefault", pod.Spec.SecurityContext.SeccompProfile.Type);
            Assert.False(pod.Spec.AutomountServiceAccountToken, name);
            var tmp = Assert.Single(pod.Spec.Volumes, v => v.Name == "tmp");
            Assert.NotNull(tmp.EmptyDir);
            foreach (var container in pod.Spec.Containers.Concat(pod.Spec.InitContainers ?? []))
            {
                var security = container.SecurityContext;
                Assert.True(security.ReadOnlyRootFilesystem, $"{name}/{container.Name}");
                Assert.False(security.AllowPrivilegeEscalation, $"{name}/{container.Name}");
                Assert.True(security.RunAsNonRoot, $"{name}/{container.Name}");
                Assert.Equal(["ALL"], security.Capabilities.Drop);
                Assert.Null(security.Capabilities.Add);
                Assert.Null(security.Privileged);
                foreach (var resource in new[] { "cpu", "memory" })
                {
                    Assert.True(container.Resources.Requests.ContainsKey(resource), $"{name}/{container.Name} requests {resource}");
                    Assert.True(container.Resources.Limits.ContainsKey(resource), $"{name}/{container.Name} limits {resource}");
                }

                Assert.Contains(container.VolumeMounts, m => m.Name == "tmp" && m.MountPath == "/tmp");
            }
        }
    }

    [Fact]
    public void Services_start_on_alive_stay_live_on_alive_and_are_ready_on_health()
    {
        foreach (var service in Services)
        {
            var container = Assert.Single(Deployment(published.Default.BaseObjects, service).Spec.Template.Spec.Containers);
            Assert.Equal(Microsoft.Extensions.Hosting.ServiceDefaultsExtensions.AlivenessEndpointPath, container.StartupProbe.HttpGet.Path);
            Assert.Equal(Microsoft.Extensions.Hosting.ServiceDefaultsExtensions.AlivenessEndpointPath, container.LivenessProbe.HttpGet.Path);
            Assert.Equal(Microsoft.Extensions.Hosting.ServiceDefaultsExtensions.HealthEndpointPath, container.ReadinessProbe.HttpGet.Path);
            Assert.All(new[] { container.StartupProbe, container.LivenessProbe, container.ReadinessProbe }, p => Assert.Equal("http", p.HttpGet.Port.Value));
        }
    }

    [Fact]
    public void Postgres_and_redis_are_statefulsets_with_claims_and_the_registrys_artifacts_have_a_claim()
    {
        var objects = published.Default.BaseObjects;
        foreach (var (store, mount) in new[] { (PlatformResources.Postgres, "/var/lib/postgresql"), (PlatformResources.Redis, "/data") })
        {
            var set = Assert.Single(objects.OfType<V1StatefulSet>(), s => s.Metadata.Name == store);
            var claim = Assert.Single(set.Spec.VolumeClaimTemplates);
            Assert.Equal(["ReadWriteOnce"], claim.Spec.AccessModes);
            Assert.Contains(Assert.Single(set.Spec.Template.Spec.Containers).VolumeMounts, m => m.Name == claim.Metadata.Name && m.MountPath == mount);
            Assert.Single(objects.OfType<V1Service>(), s => s.Metadata.Name == store);
        }

        var registry = Deployment(objects, PlatformResources.ModelRegistry);
        var artifacts = Assert.Single(registry.Spec.Template.Spec.Volumes, v => v.PersistentVolumeClaim is not null);
        Assert.Single(objects.OfType<V1PersistentVolumeClaim>(), c => c.Metadata.Name == artifacts.PersistentVolumeClaim.ClaimName);
        var container = Assert.Single(registry.Spec.Template.Spec.Containers);
        var root = Assert.Single(container.VolumeMounts, m => m.Name == artifacts.Name).MountPath;
        Assert.Equal(root, Assert.Single(container.Env, e => e.Name == "ModelRegistry__ArtifactRoot").Value);
        Assert.Equal("Recreate", registry.Spec.Strategy.Type);
    }

    [Fact]
    public async Task Secrets_are_referenced_by_name_never_written_and_the_docs_create_exactly_those_keys()
    {
        // The GPU output was published with every secret given a value: none of them appears in anything written.
        foreach (var file in Directory.GetFiles(published.Gpu.Directory, "*", SearchOption.AllDirectories))
        {
            var text = await File.ReadAllTextAsync(file);
            Assert.DoesNotContain(PublishedPlatform.SecretMarker, text, StringComparison.Ordinal);
        }

        using var manifest = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(published.Gpu.Directory, "aspire-manifest.json")));
        var secretParameters = manifest.RootElement.GetProperty("resources").EnumerateObject()
            .Where(r => r.Value.GetProperty("type").GetString() == "parameter.v0" && r.Value.GetProperty("inputs").GetProperty("value").TryGetProperty("secret", out var secret) && secret.GetBoolean())
            .Select(r => r.Name).ToHashSet();
        var keys = new HashSet<string>();
        foreach (var (name, pod) in Pods(published.Gpu.BaseObjects))
        {
            foreach (var variable in pod.Spec.Containers.Concat(pod.Spec.InitContainers ?? []).SelectMany(c => c.Env ?? []))
            {
                if (variable.ValueFrom?.SecretKeyRef is { } reference)
                {
                    Assert.Equal(PodValues.SecretName, reference.Name);
                    Assert.Contains(reference.Key, secretParameters);
                    keys.Add(reference.Key);
                }
                else if (Regex.IsMatch(variable.Name, "(PASSWORD|Secret|Token|Key|ApiKey|Keys)$", RegexOptions.IgnoreCase))
                {
                    Assert.Matches(@"^\$\(SECRET_[A-Z_]+\)$", variable.Value);
                }
            }
        }

        Assert.Empty(published.Gpu.BaseObjects.OfType<V1Secret>());
        Assert.Equal(secretParameters.Order(), keys.Order());

        // The docs print the command that creates them: the default output's keys, each once.
        var readme = await File.ReadAllTextAsync(Path.Combine(ServiceProcess.RepositoryRoot(), "deploy", "kubernetes", "README.md"));
        var command = Regex.Match(readme, @"kubectl create secret generic goblinaspire-secrets[^`]*?(?=\n\n|```)", RegexOptions.Singleline).Value;
        var documented = Regex.Matches(command, "--from-literal=([a-z0-9-]+)=").Select(m => m.Groups[1].Value).ToList();
        var required = Pods(published.Default.BaseObjects).SelectMany(p => p.Pod.Spec.Containers).SelectMany(c => c.Env ?? []).Select(v => v.ValueFrom?.SecretKeyRef?.Key).OfType<string>().Distinct().Order();
        Assert.Equal(required, documented.Order());
    }

    [Fact]
    public void Vllm_runs_exactly_when_gpu_is_set_on_one_gpu_with_a_pinned_image_and_model_downloaded_first()
    {
        Assert.DoesNotContain(published.Default.BaseObjects, o => o is IMetadata<V1ObjectMeta> { Metadata.Name: PlatformResources.Vllm });
        Assert.False(File.Exists(Path.Combine(published.Default.Kubernetes, "base", "vllm.yaml")));

        var vllm = Assert.Single(published.Gpu.BaseObjects.OfType<V1StatefulSet>(), s => s.Metadata.Name == PlatformResources.Vllm);
        var pod = vllm.Spec.Template.Spec;
        var server = Assert.Single(pod.Containers);
        Assert.Equal("1", server.Resources.Limits["nvidia.com/gpu"].ToString());
        Assert.Equal("true", pod.NodeSelector["nvidia.com/gpu.present"]);
        Assert.Contains(pod.Tolerations, t => t.Key == "nvidia.com/gpu" && t.Effect == "NoSchedule");
        var shm = Assert.Single(pod.Volumes, v => v.EmptyDir?.Medium == "Memory");
        Assert.Contains(server.VolumeMounts, m => m.Name == shm.Name && m.MountPath == "/dev/shm");

        var tag = server.Image.Split(':')[^1];
        Assert.Matches(@"^v\d+\.\d+\.\d+$", tag);
        var revision = server.Args[server.Args.IndexOf("--revision") + 1];
        Assert.Equal(PublishedPlatform.ModelRevision, revision);
        Assert.Equal("1", Assert.Single(server.Env, e => e.Name == "HF_HUB_OFFLINE").Value);
        foreach (var (flag, value) in new[] { ("--gpu-memory-utilization", "0.65"), ("--max-model-len", "32768"), ("--max-num-seqs", "3"), ("--kv-cache-dtype", "fp8") })
        {
            Assert.Equal(value, server.Args[server.Args.IndexOf(flag) + 1]);
        }

        var download = Assert.Single(pod.InitContainers);
        Assert.Equal(server.Image, download.Image);
        Assert.Equal(["huggingface-cli"], download.Command);
        Assert.Equal(revision, download.Args[download.Args.IndexOf("--revision") + 1]);
        Assert.DoesNotContain(download.Env, e => e.Name == "HF_HUB_OFFLINE");
        Assert.True(Assert.Single(download.Env, e => e.Name == "HF_TOKEN").ValueFrom.SecretKeyRef.Optional);
        var cache = Assert.Single(vllm.Spec.VolumeClaimTemplates).Metadata.Name;
        var home = Assert.Single(server.Env, e => e.Name == "HF_HOME").Value;
        Assert.Contains(server.VolumeMounts, m => m.Name == cache && m.MountPath == home);
        Assert.Contains(download.VolumeMounts, m => m.Name == cache && m.MountPath == home);

        var gateway = Assert.Single(Deployment(published.Gpu.BaseObjects, PlatformResources.Gateway).Spec.Template.Spec.Containers);
        Assert.Equal("http://vllm:8000", Assert.Single(gateway.Env, e => e.Name == "services__vllm__http__0").Value);
    }

    [Fact]
    public void Network_policies_deny_by_default_open_the_gateway_and_let_monitoring_scrape_every_service()
    {
        var policies = published.Gpu.BaseObjects.OfType<V1NetworkPolicy>().ToList();
        var deny = Assert.Single(policies, p => p.Spec.Ingress is null);
        Assert.Equal(["app.kubernetes.io/part-of"], deny.Spec.PodSelector.MatchLabels.Keys);
        foreach (var service in Services)
        {
            var policy = Assert.Single(policies, p => p.Spec.PodSelector.MatchLabels.TryGetValue(Name, out var name) && name == service);
            Assert.Contains(policy.Spec.Ingress, r => r.FromProperty?.Any(f => f.NamespaceSelector?.MatchLabels["kubernetes.io/metadata.name"] == NetworkPolicies.MonitoringNamespace) == true);
            Assert.Equal(service == PlatformResources.Gateway, policy.Spec.Ingress.Any(r => r.FromProperty is null));
        }

        // Every pod of the platform is under the default deny.
        Assert.All(Pods(published.Gpu.BaseObjects), p => Assert.Equal(KubernetesOutput.PartOf, p.Pod.Metadata.Labels["app.kubernetes.io/part-of"]));
    }

    private static V1Deployment Deployment(IEnumerable<object> objects, string name) =>
        Assert.Single(objects.OfType<V1Deployment>(), d => d.Metadata.Name == name);

    private static IEnumerable<(string Name, V1PodTemplateSpec Pod)> Pods(IEnumerable<object> objects) =>
        objects.OfType<V1Deployment>().Select(d => (d.Metadata.Name, d.Spec.Template))
            .Concat(objects.OfType<V1StatefulSet>().Select(s => (s.Metadata.Name, s.Spec.Template)));
}

/// <summary>The platform published twice by the documented command: default parameters, and gpu=true with every secret given.</summary>
public sealed class PublishedPlatform : IAsyncLifetime
{
    public const string Registry = "registry.test/platform";
    public const string Tag = "2026.12.1";
    public const string Namespace = "goblin-test";
    public const int MaxReplicas = 7;
    public const string ModelRevision = "0123456789abcdef0123456789abcdef01234567";
    public const string SecretMarker = "never-in-the-output";

    private static string Configuration => Path.GetFileName(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)))!;

    public PublishedOutput Default { get; private set; } = null!;

    public PublishedOutput Gpu { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        string[] common = [$"--Parameters:image-registry={Registry}", $"--Parameters:image-tag={Tag}", $"--Parameters:kubernetes-namespace={Namespace}", $"--Parameters:max-replicas={MaxReplicas}"];
        Default = await PublishAsync(common);
        string[] secrets = [.. PlatformSecrets.All.Select(s => s.Parameter).Concat(["postgres-password", "redis-password", "hf-token"]).Distinct().Select(p => $"--Parameters:{p}={SecretMarker}-{p}")];
        Gpu = await PublishAsync([.. common, "--Parameters:gpu=true", $"--Parameters:vllm-revision={ModelRevision}", .. secrets]);
    }

    public Task DisposeAsync()
    {
        foreach (var output in new[] { Default, Gpu })
        {
            if (output is not null && Directory.Exists(output.Directory))
            {
                Directory.Delete(output.Directory, recursive: true);
            }
        }

        return Task.CompletedTask;
    }

    private static async Task<PublishedOutput> PublishAsync(string[] parameters)
    {
        var directory = Directory.CreateTempSubdirectory("goblin-publish-").FullName;
        var root = ServiceProcess.RepositoryRoot();
        await ChildProcess.RunAsync(
            "dotnet",
            ["run", "--project", Path.Combine(root, "src", "GoblinAspire.AppHost"), "--no-build", "-c", Configuration, "--", "--operation", "publish", "--step", "publish", "--output-path", directory, .. parameters],
            TimeSpan.FromMinutes(3),
            workingDirectory: root,
            environment: new Dictionary<string, string?> { ["NO_COLOR"] = "1" });
        var kubernetes = Path.Combine(directory, "kubernetes");
        var baseObjects = new List<object>();
        foreach (var file in Directory.GetFiles(Path.Combine(kubernetes, "base"), "*.yaml").Where(f => Path.GetFileName(f) != "kustomization.yaml"))
        {
            baseObjects.AddRange(KubernetesYaml.LoadAllFromString(await File.ReadAllTextAsync(file)));
        }

        var built = await ChildProcess.RunAsync("kubectl", ["kustomize", Path.Combine(kubernetes, "overlays", "production")], TimeSpan.FromMinutes(1));
        // kubectl 1.2x prints a deprecation warning for `bases` on stderr, which RunAsync folds in: keep the YAML.
        built = string.Join('\n', built.Split('\n').Where(line => !line.StartsWith("# Warning:", StringComparison.Ordinal)));
        return new PublishedOutput(directory, kubernetes, baseObjects, KubernetesYaml.LoadAllFromString(built), built);
    }
}

public sealed record PublishedOutput(string Directory, string Kubernetes, IReadOnlyList<object> BaseObjects, IReadOnlyList<object> BuiltObjects, string Built);
