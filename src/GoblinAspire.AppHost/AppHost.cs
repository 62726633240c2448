using GoblinAspire.ServiceDefaults;

var builder = DistributedApplication.CreateBuilder(args);

var redis = builder.AddRedis(PlatformResources.Redis)
    .WithDataVolume();

var postgresPassword = builder.AddParameter("postgres-password", secret: true);
var postgres = builder.AddPostgres(PlatformResources.Postgres, password: postgresPassword)
    .WithDataVolume();
var gatewayDb = postgres.AddDatabase(PlatformResources.GatewayDatabase);
var registryDb = postgres.AddDatabase(PlatformResources.RegistryDatabase);
var trainingDb = postgres.AddDatabase(PlatformResources.TrainingDatabase);

var registrySigningKey = builder.AddParameter(PlatformSecrets.RegistrySigningKey.Parameter, secret: true);
var modelRegistry = builder.AddProject<Projects.GoblinAspire_ModelRegistry>(PlatformResources.ModelRegistry)
    .WithReference(registryDb).WaitFor(registryDb)
    .WithEnvironment(PlatformSecrets.RegistrySigningKey.Variable, registrySigningKey)
    .WithHttpHealthCheck(ServiceDefaultsPaths.Health);

var chatFallback = builder.AddProject<Projects.GoblinAspire_ChatFallback>(PlatformResources.ChatFallback)
    .WithReference(modelRegistry).WaitFor(modelRegistry)
    .WithTopologySettings()
    .WithHttpHealthCheck(ServiceDefaultsPaths.Health);

builder.AddProject<Projects.GoblinAspire_TrainingWorker>(PlatformResources.TrainingWorker)
    .WithReference(trainingDb).WaitFor(trainingDb)
    .WithReference(modelRegistry).WaitFor(modelRegistry)
    .WithHttpHealthCheck(ServiceDefaultsPaths.Health);

var gatewayAdminKey = builder.AddParameter(PlatformSecrets.GatewayAdminKey.Parameter, secret: true);
builder.AddProject<Projects.GoblinAspire_Gateway>(PlatformResources.Gateway)
    .WithReference(redis).WaitFor(redis)
    .WithReference(gatewayDb).WaitFor(gatewayDb)
    .WithReference(chatFallback).WaitFor(chatFallback)
    .WithEnvironment(PlatformSecrets.GatewayAdminKey.Variable, gatewayAdminKey)
    .WithHttpHealthCheck(ServiceDefaultsPaths.Health)
    .WithExternalHttpEndpoints()
    .WithReplicas(PlatformTopology.For(PlatformResources.Gateway).Replicas);

builder.Build().Run();

internal static class ServiceDefaultsPaths
{
    public const string Health = "/health";
}

internal static class TopologyResourceBuilderExtensions
{
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
