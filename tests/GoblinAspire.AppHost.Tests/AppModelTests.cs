using GoblinAspire.AppHost.DataStores;
using GoblinAspire.AppHost.Kubernetes;
using GoblinAspire.AppHost.Tests.Platform;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace GoblinAspire.AppHost.Tests;

/// <summary>
/// The AppHost's app model, read without starting anything: what each service is wired to, which secrets it gets, how
/// Redis and PostgreSQL run, and that the network policies the Kubernetes output writes follow the model's references.
/// </summary>
public sealed class AppModelTests
{
    [Fact]
    public async Task Each_service_gets_its_databases_redis_and_the_services_it_calls_in_aspires_formats()
    {
        using var app = await BuildAsync(publish: true);
        var expected = new Dictionary<string, string[]>
        {
            [PlatformResources.ModelRegistry] = ["ConnectionStrings__registrydb"],
            [PlatformResources.ChatFallback] = ["services__modelregistry__http__0", "ChatFallback__RegisteredModel"],
            [PlatformResources.TrainingWorker] = ["ConnectionStrings__trainingdb", "services__modelregistry__http__0"],
            [PlatformResources.Gateway] = ["ConnectionStrings__redis", "ConnectionStrings__gatewaydb", "services__chatfallback__http__0"],
        };
        foreach (var (service, variables) in expected)
        {
            var environment = await EnvironmentAsync(app, service);
            Assert.All(variables, v => Assert.Contains(v, environment.Keys));
        }

        Assert.Equal(2, Project(app, PlatformResources.Gateway).Annotations.OfType<ReplicaAnnotation>().Single().Replicas);
        Assert.Contains(Project(app, PlatformResources.Gateway).Annotations.OfType<EndpointAnnotation>(), e => e.IsExternal);
        Assert.DoesNotContain(app.Services.GetRequiredService<DistributedApplicationModel>().Resources.OfType<ProjectResource>().Where(p => p.Name != PlatformResources.Gateway).SelectMany(p => p.Annotations.OfType<EndpointAnnotation>()), e => e.IsExternal);
    }

    [Fact]
    public async Task Required_secrets_are_secret_parameters_and_optional_ones_come_only_when_given_with_their_settings()
    {
        using (var bare = await BuildAsync(publish: true))
        {
            var model = bare.Services.GetRequiredService<DistributedApplicationModel>();
            foreach (var secret in PlatformSecrets.All.Where(s => !s.Optional))
            {
                Assert.True(model.Resources.OfType<ParameterResource>().Single(p => p.Name == secret.Parameter).Secret, secret.Parameter);
            }

            Assert.DoesNotContain(model.Resources.OfType<ParameterResource>(), p => PlatformSecrets.All.Any(s => s.Optional && s.Parameter == p.Name));
            Assert.DoesNotContain((await EnvironmentAsync(bare, PlatformResources.Gateway)).Keys, k => k.StartsWith("Gateway__Providers__", StringComparison.Ordinal));
        }

        // Every optional secret named, as an operator who wants every feature publishes.
        using var full = await BuildAsync(publish: true, [.. PlatformSecrets.All.Where(s => s.Optional).Select(s => $"--Parameters:{s.Parameter}=")]);
        var owners = new Dictionary<string, string>
        {
            [PlatformSecrets.RegistryEncryptionKey.Parameter] = PlatformResources.ModelRegistry,
            [PlatformSecrets.RegistryRetiredEncryptionKeys.Parameter] = PlatformResources.ModelRegistry,
            [PlatformSecrets.VastAiApiKey.Parameter] = PlatformResources.TrainingWorker,
            [PlatformSecrets.RunPodApiKey.Parameter] = PlatformResources.TrainingWorker,
            [PlatformSecrets.OpenAiApiKey.Parameter] = PlatformResources.Gateway,
        };
        foreach (var secret in PlatformSecrets.All.Where(s => s.Optional))
        {
            var environment = await EnvironmentAsync(full, owners[secret.Parameter]);
            Assert.Equal($"{{{secret.Parameter}.value}}", environment[secret.Variable]);
            foreach (var (name, value) in secret.Settings)
            {
                Assert.Equal(value, environment[name]);
            }
        }
    }

    [Fact]
    public async Task Without_a_container_runtime_redis_and_postgres_are_the_machines_own_servers_and_publishing_describes_containers()
    {
        using (var processes = await BuildAsync(publish: false))
        {
            var model = processes.Services.GetRequiredService<DistributedApplicationModel>();
            Assert.IsType<RedisProcessResource>(model.Resources.Single(r => r.Name == PlatformResources.Redis));
            var postgres = Assert.IsType<PostgresProcessResource>(model.Resources.Single(r => r.Name == PlatformResources.Postgres));
            Assert.Equal([PlatformResources.GatewayDatabase, PlatformResources.RegistryDatabase, PlatformResources.TrainingDatabase], postgres.Databases.Select(d => d.Name).Order());
            // Aspire's PostgreSQL container formats: the server's, then the database's on top of it.
            Assert.Equal("Host={postgres.bindings.tcp.host};Port={postgres.bindings.tcp.port};Username=postgres;Password={postgres-password.value}", postgres.ConnectionStringExpression.ValueExpression);
            Assert.Equal(
                "{postgres.connectionString};Database=gatewaydb",
                model.Resources.OfType<PostgresProcessDatabaseResource>().Single(d => d.Name == PlatformResources.GatewayDatabase).ConnectionStringExpression.ValueExpression);
            Assert.Equal("{redis.bindings.tcp.host}:{redis.bindings.tcp.port},password={redis-password.value}",
                model.Resources.OfType<RedisProcessResource>().Single().ConnectionStringExpression.ValueExpression.Replace("{redis.bindings.tcp.hostAndPort}", "{redis.bindings.tcp.host}:{redis.bindings.tcp.port}", StringComparison.Ordinal));
        }

        using var published = await BuildAsync(publish: true, ["--DataStores:Mode=processes"]);
        var publishedModel = published.Services.GetRequiredService<DistributedApplicationModel>();
        Assert.IsType<Aspire.Hosting.ApplicationModel.RedisResource>(publishedModel.Resources.Single(r => r.Name == PlatformResources.Redis));
        Assert.IsType<Aspire.Hosting.ApplicationModel.PostgresServerResource>(publishedModel.Resources.Single(r => r.Name == PlatformResources.Postgres));
    }

    [Fact]
    public async Task Vllm_is_composed_exactly_when_the_gpu_parameter_is_set_and_the_gateway_tries_it_first()
    {
        using (var cpu = await BuildAsync(publish: true))
        {
            Assert.DoesNotContain(cpu.Services.GetRequiredService<DistributedApplicationModel>().Resources, r => r.Name == PlatformResources.Vllm);
        }

        using var gpu = await BuildAsync(publish: true, ["--Parameters:gpu=true", $"--Parameters:vllm-revision={new string('a', 40)}"]);
        var vllm = Assert.IsType<ContainerResource>(gpu.Services.GetRequiredService<DistributedApplicationModel>().Resources.Single(r => r.Name == PlatformResources.Vllm));
        Assert.NotEqual("latest", vllm.Annotations.OfType<ContainerImageAnnotation>().Single().Tag);
        var environment = await EnvironmentAsync(gpu, PlatformResources.Gateway);
        Assert.Equal(PlatformResources.Vllm, environment["Gateway__Providers__vllm__Name"]);
        Assert.Equal("0", environment["Gateway__Providers__vllm__Priority"]);
        Assert.Equal("true", environment["Gateway__Providers__vllm__NativeResponses"]);
    }

    [Fact]
    public async Task The_network_policies_open_ingress_exactly_along_the_app_models_references()
    {
        using var app = await BuildAsync(publish: true, ["--Parameters:gpu=true", $"--Parameters:vllm-revision={new string('a', 40)}"]);
        var model = app.Services.GetRequiredService<DistributedApplicationModel>();
        var expected = new Dictionary<string, HashSet<string>>();
        foreach (var project in model.Resources.OfType<ProjectResource>())
        {
            foreach (var reference in project.Annotations.OfType<ResourceRelationshipAnnotation>().Where(r => r.Type == "Reference" && r.Resource is not ParameterResource).Select(r => r.Resource))
            {
                // A database is reached through its server's pod.
                var target = reference is IResourceWithParent child ? child.Parent.Name : reference.Name;
                (expected.TryGetValue(target, out var sources) ? sources : expected[target] = []).Add(project.Name);
            }
        }

        var output = await KubernetesOutput.RenderAsync(model, app.Services.GetRequiredService<DistributedApplicationExecutionContext>(), new KubernetesSettings("registry.test", "1.0.0", "goblinaspire", 10), NullLogger.Instance, CancellationToken.None);
        var allowed = new Dictionary<string, HashSet<string>>();
        foreach (var policy in output.Policies.Where(p => p.Spec.Ingress is not null))
        {
            var callers = policy.Spec.Ingress.Where(r => r.FromProperty is not null).SelectMany(r => r.FromProperty).Where(f => f.PodSelector is not null).Select(f => f.PodSelector.MatchLabels[Name]).ToHashSet();
            if (callers.Count > 0)
            {
                allowed[policy.Spec.PodSelector.MatchLabels[Name]] = callers;
            }
        }

        Assert.Equal(expected.Keys.Order(), allowed.Keys.Order());
        foreach (var (target, sources) in expected)
        {
            Assert.True(sources.SetEquals(allowed[target]), $"{target}: the policy allows {string.Join(", ", allowed[target])}, the app model references it from {string.Join(", ", sources)}");
        }

        var deny = Assert.Single(output.Policies, p => p.Metadata.Name == "default-deny-ingress");
        Assert.Null(deny.Spec.Ingress);
        Assert.Equal(["Ingress"], deny.Spec.PolicyTypes);
        var open = output.Policies.Where(p => p.Spec.Ingress?.Any(r => r.FromProperty is null) == true).ToList();
        Assert.Equal(PlatformResources.Gateway, Assert.Single(open).Spec.PodSelector.MatchLabels[Name]);
    }

    private const string Name = "app.kubernetes.io/name";

    /// <summary>In run mode a developer's training jobs cannot see the servers' data or the services' folders.</summary>
    [Fact]
    public async Task In_run_mode_training_jobs_are_kept_out_of_the_platforms_data_folders()
    {
        await using var app = await BuildAsync(publish: false);
        var result = await ExecutionConfigurationBuilder.Create(Project(app, PlatformResources.TrainingWorker))
            .WithEnvironmentVariablesConfig()
            .BuildAsync(new DistributedApplicationExecutionContext(DistributedApplicationOperation.Run), NullLogger.Instance, CancellationToken.None);
        var environment = result.EnvironmentVariables.ToDictionary(StringComparer.Ordinal);
        var data = Path.GetDirectoryName(environment["TrainingWorker__WorkDirectory"])!;
        var hidden = environment.Where(e => e.Key.StartsWith("TrainingWorker__Isolation__HiddenPaths__", StringComparison.Ordinal)).Select(e => e.Value).ToList();
        foreach (var folder in new[] { PlatformResources.Postgres, PlatformResources.Redis, "artifacts", "model-cache" })
        {
            Assert.Contains(Path.Combine(data, folder), hidden);
        }
    }

    private static ProjectResource Project(DistributedApplication app, string name) =>
        app.Services.GetRequiredService<DistributedApplicationModel>().Resources.OfType<ProjectResource>().Single(p => p.Name == name);

    private static async Task<DistributedApplication> BuildAsync(bool publish, string[]? extra = null)
    {
        string[] mode = publish ? ["--publisher", "manifest", "--output-path", Path.Combine(Path.GetTempPath(), $"goblin-manifest-{Guid.NewGuid():N}")] : [];
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.GoblinAspire_AppHost>(
            [.. mode, .. TestParameters.Arguments(TestParameters.DataDirectory(), TestParameters.All()), .. extra ?? []]);
        return await appHost.BuildAsync();
    }

    /// <summary>A project's environment as a manifest describes it: <c>{resource.connectionString}</c>-style expressions.</summary>
    private static async Task<IReadOnlyDictionary<string, string>> EnvironmentAsync(DistributedApplication app, string service)
    {
        var result = await ExecutionConfigurationBuilder.Create(Project(app, service))
            .WithEnvironmentVariablesConfig()
            .BuildAsync(new DistributedApplicationExecutionContext(DistributedApplicationOperation.Publish), NullLogger.Instance, CancellationToken.None);
        return result.EnvironmentVariables.ToDictionary(StringComparer.Ordinal);
    }

}
