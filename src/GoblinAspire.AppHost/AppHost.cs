using GoblinAspire.ServiceDefaults;

var builder = DistributedApplication.CreateBuilder(args);

// `aspire publish` writes a Helm chart for this environment; the services' pods are hardened in KubernetesPublishing.
builder.AddKubernetesEnvironment("k8s")
    .WithProperties(k8s =>
    {
        k8s.HelmChartName = "goblinaspire";
        k8s.DefaultStorageType = "pvc";
        k8s.DefaultStorageSize = "10Gi";
    });

var redis = builder.AddRedis(PlatformResources.Redis)
    .WithDataVolume()
    .PublishAsHardenedDataStore(memory: "512Mi");

var postgresPassword = builder.AddParameter("postgres-password", secret: true);
var postgres = builder.AddPostgres(PlatformResources.Postgres, password: postgresPassword)
    .WithDataVolume()
    .PublishAsHardenedDataStore(memory: "1Gi");
var gatewayDb = postgres.AddDatabase(PlatformResources.GatewayDatabase);
var registryDb = postgres.AddDatabase(PlatformResources.RegistryDatabase);
var trainingDb = postgres.AddDatabase(PlatformResources.TrainingDatabase);

var modelRegistry = builder.AddProject<Projects.GoblinAspire_ModelRegistry>(PlatformResources.ModelRegistry)
    .WithReference(registryDb).WaitFor(registryDb)
    .WithTopologySecrets()
    .WithHttpHealthCheck(ServiceDefaultsPaths.Health)
    .PublishAsHardenedService(cpu: "250m", memory: "512Mi", persistentFolder: ("ModelRegistry__ArtifactRoot", "artifacts", "50Gi"));

var chatFallback = builder.AddProject<Projects.GoblinAspire_ChatFallback>(PlatformResources.ChatFallback)
    .WithReference(modelRegistry).WaitFor(modelRegistry)
    .WithTopologySettings()
    .WithHttpHealthCheck(ServiceDefaultsPaths.Health)
    .PublishAsHardenedService(cpu: "2", memory: "2Gi", scratchFolder: "ChatFallback__CacheDirectory");

builder.AddProject<Projects.GoblinAspire_TrainingWorker>(PlatformResources.TrainingWorker)
    .WithReference(trainingDb).WaitFor(trainingDb)
    .WithReference(modelRegistry).WaitFor(modelRegistry)
    .WithTopologySecrets()
    .WithHttpHealthCheck(ServiceDefaultsPaths.Health)
    .PublishAsHardenedService(cpu: "500m", memory: "512Mi", scratchFolder: "TrainingWorker__WorkDirectory");

var gateway = builder.AddProject<Projects.GoblinAspire_Gateway>(PlatformResources.Gateway)
    .WithReference(redis).WaitFor(redis)
    .WithReference(gatewayDb).WaitFor(gatewayDb)
    .WithReference(chatFallback).WaitFor(chatFallback)
    .WithTopologySecrets()
    .WithHttpHealthCheck(ServiceDefaultsPaths.Health)
    .WithExternalHttpEndpoints()
    .WithReplicas(PlatformTopology.For(PlatformResources.Gateway).Replicas)
    .PublishAsHardenedService(cpu: "500m", memory: "512Mi", autoscaleTo: 10);

// vLLM only where a GPU is: `Parameters:gpu=true` (user secrets, environment or the publish command). Without it the
// gateway answers goblin-chat from the ChatFallback alone, so F5 works on a laptop.
if (builder.AddVllmWhenGpuPresent() is { } vllm)
{
    gateway.WithVllmProvider(vllm);
}

builder.Build().Run();

internal static class ServiceDefaultsPaths
{
    public const string Health = "/health";
    public const string Alive = "/alive";
}

internal static class TopologyResourceBuilderExtensions
{
    /// <summary>
    /// The secret parameters <see cref="PlatformTopology"/> gives this project, each as <c>AddParameter(…, secret: true)</c>.
    /// An optional one (a cloud provider's key, a rented-GPU executor's key, the registry's encryption key) is composed,
    /// with the settings that come with it, only where the operator gives it: in run mode when
    /// <c>Parameters:{name}</c> has a value (user secrets or environment), at publish time when
    /// <c>Parameters:{name}</c> is set at all, so a chart carries exactly the features its operator asked for.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithTopologySecrets(this IResourceBuilder<ProjectResource> project)
    {
        var builder = project.ApplicationBuilder;
        foreach (var secret in PlatformTopology.For(project.Resource.Name).SecretParameters)
        {
            var given = builder.Configuration[$"Parameters:{secret.Parameter}"];
            if (secret.Optional && (builder.ExecutionContext.IsRunMode ? string.IsNullOrEmpty(given) : given is null))
            {
                continue;
            }

            project.WithEnvironment(secret.Variable, builder.AddParameter(secret.Parameter, secret: true));
            foreach (var (name, value) in secret.Settings)
            {
                project.WithEnvironment(name, value);
            }
        }

        return project;
    }

    /// <summary>The fixed settings <see cref="PlatformTopology"/> gives this project, e.g. the ChatFallback's registered model.</summary>
    public static IResourceBuilder<ProjectResource> WithTopologySettings(this IResourceBuilder<ProjectResource> project)
    {
        foreach (var (name, value) in PlatformTopology.For(project.Resource.Name).FixedSettings)
        {
            project.WithEnvironment(name, value);
        }

        return project;
    }
}
