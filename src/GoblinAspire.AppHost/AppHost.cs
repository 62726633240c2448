using GoblinAspire.AppHost;
using GoblinAspire.AppHost.ChatModel;
using GoblinAspire.AppHost.DataStores;
using GoblinAspire.AppHost.Kubernetes;
using GoblinAspire.AppHost.Operations;
using GoblinAspire.ServiceDefaults;

DistributedApplication app;
try
{
    app = Platform.Build(args);
}
catch (DistributedApplicationException ex)
{
    // A missing server binary or a bad setting: one line, and the exit code of every other bad configuration.
    await Console.Error.WriteLineAsync($"GoblinAspire.AppHost: {ex.Message}");
    return 2;
}

await app.RunAsync();
return 0;

/// <summary>The platform: the one description of which service gets what.</summary>
public static partial class Platform
{
    /// <summary>The gateway's OpenAI base URL during development: <c>http://localhost:5300/v1</c>.</summary>
    public const int GatewayPort = 5300;

    public static DistributedApplication Build(string[] args)
    {
        var builder = DistributedApplication.CreateBuilder(args);
        var stores = PlatformDataStores.Add(builder);

        var modelRegistry = builder.AddProject<Projects.GoblinAspire_ModelRegistry>(PlatformResources.ModelRegistry)
            .WithHttpEndpoint(name: PlatformResources.HttpEndpoint)
            .WithReference(stores.RegistryDatabase).WaitFor(stores.RegistryDatabase)
            .WithSecrets(PlatformSecrets.RegistrySigningKey, PlatformSecrets.RegistryToken, PlatformSecrets.RegistryEncryptionKey, PlatformSecrets.RegistryRetiredEncryptionKeys)
            .WithHttpHealthCheck("/health")
            .WithModelCommands(PlatformSecrets.RegistryToken)
            .WithKubernetesPod(pod => pod with { MemoryLimit = "2Gi", Folders = [new("artifacts", "/var/lib/goblinaspire/artifacts", "ModelRegistry__ArtifactRoot", ClaimSize: "100Gi")] });

        var chatModel = builder.AddChatModel(modelRegistry, builder.SecretParameter(PlatformSecrets.RegistryToken), Path.Combine(stores.Mode.DataDirectory, "demo-model"));
        var chatFallback = builder.AddProject<Projects.GoblinAspire_ChatFallback>(PlatformResources.ChatFallback)
            .WithHttpEndpoint(name: PlatformResources.HttpEndpoint)
            .WithReference(modelRegistry).WaitFor(modelRegistry)
            .WaitFor(chatModel)
            .WithEnvironment("ChatFallback__RegisteredModel", PlatformResources.ChatModel)
            .WithSecrets(PlatformSecrets.ChatFallbackRegistryToken)
            .WithHttpHealthCheck("/health")
            // The model lives in memory: its file size plus the KV cache, on CPU.
            .WithKubernetesPod(pod => pod with { CpuRequest = "1", CpuLimit = "2", MemoryRequest = "1Gi", MemoryLimit = "4Gi", Folders = [new("model-cache", "/var/cache/goblinaspire/models", "ChatFallback__CacheDirectory")] });

        var trainingWorker = builder.AddProject<Projects.GoblinAspire_TrainingWorker>(PlatformResources.TrainingWorker)
            .WithHttpEndpoint(name: PlatformResources.HttpEndpoint)
            .WithReference(stores.TrainingDatabase).WaitFor(stores.TrainingDatabase)
            .WithReference(modelRegistry).WaitFor(modelRegistry)
            .WithSecrets(PlatformSecrets.WorkerToken, PlatformSecrets.WorkerRegistryToken, PlatformSecrets.VastAiApiKey, PlatformSecrets.RunPodApiKey)
            .WithHttpHealthCheck("/health")
            // A local job's checkpoints outlive a restart of the worker's pod.
            .WithKubernetesPod(pod => pod with { Folders = [new("jobs", "/var/lib/goblinaspire/jobs", "TrainingWorker__WorkDirectory", ClaimSize: "50Gi")] });

        var adminKey = builder.AddParameter(PlatformSecrets.GatewayAdminKey.Parameter, new GenerateParameterDefault { MinLength = 40, Special = false }, secret: true, persist: true);
        var gateway = builder.AddProject<Projects.GoblinAspire_Gateway>(PlatformResources.Gateway)
            .WithHttpEndpoint(port: GatewayPort, name: PlatformResources.HttpEndpoint)
            .WithExternalHttpEndpoints()
            .WithReplicasInManifest(2)
            .WithReference(stores.Redis).WaitFor(stores.Redis)
            .WithReference(stores.GatewayDatabase).WaitFor(stores.GatewayDatabase)
            .WithReference(chatFallback).WaitFor(chatFallback)
            .WithEnvironment(PlatformSecrets.GatewayAdminKey.Variable, adminKey)
            .WithSecrets(PlatformSecrets.OpenAiApiKey)
            .WithHttpHealthCheck("/health")
            .WithKeyCommands(adminKey)
            // The autoscaler's 70 % is of the request: a gateway pod scales out well before it is CPU-bound.
            .WithKubernetesPod(pod => pod with { CpuRequest = "250m", CpuLimit = "2", MemoryLimit = "1Gi" });

        // vLLM only where a GPU is: `Parameters:gpu=true`. Without it the gateway answers goblin-chat from the
        // ChatFallback alone, so F5 works on a laptop.
        if (builder.AddVllmWhenGpuPresent() is { } vllm)
        {
            gateway.WithVllmProvider(vllm);
        }

        if (builder.ExecutionContext.IsRunMode)
        {
            // What the services keep on disk lives beside the data stores' data, never in the source tree they run from.
            modelRegistry.WithEnvironment("ModelRegistry__ArtifactRoot", Path.Combine(stores.Mode.DataDirectory, "artifacts"));
            chatFallback.WithEnvironment("ChatFallback__CacheDirectory", Path.Combine(stores.Mode.DataDirectory, "model-cache"));
            trainingWorker.WithEnvironment("TrainingWorker__WorkDirectory", Path.Combine(stores.Mode.DataDirectory, "jobs"));
            // A developer's jobs run as the developer: the folders beside theirs (server data and password files,
            // artifacts, the model cache) are mounted away inside each job's namespace.
            string[] hidden = [PlatformResources.Postgres, PlatformResources.Redis, "artifacts", "model-cache"];
            for (var i = 0; i < hidden.Length; i++)
            {
                trainingWorker.WithEnvironment($"TrainingWorker__Isolation__HiddenPaths__{i + 2}", Path.Combine(stores.Mode.DataDirectory, hidden[i]));
            }

            var developmentKey = builder.AddParameter("gateway-development-key", new GenerateParameterDefault { MinLength = 32, Special = false, Upper = false }, secret: true, persist: true);
            gateway.WithDevelopmentAccess(adminKey, developmentKey, chatModel);
        }

        builder.AddKubernetesPublishing();
        return builder.Build();
    }
}
