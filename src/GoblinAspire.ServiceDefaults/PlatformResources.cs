namespace GoblinAspire.ServiceDefaults;

/// <summary>
/// The names every part of the platform agrees on: AppHost resource names, connection-string names
/// and service-discovery names. Kubernetes service names and Aspire's configuration keys derive from them,
/// so they are fixed here once and nowhere else.
/// </summary>
public static class PlatformResources
{
    public const string Gateway = "gateway";
    public const string ModelRegistry = "modelregistry";
    public const string TrainingWorker = "trainingworker";
    public const string ChatFallback = "chatfallback";
    public const string Vllm = "vllm";

    public const string Redis = "redis";
    public const string Postgres = "postgres";
    public const string GatewayDatabase = "gatewaydb";
    public const string RegistryDatabase = "registrydb";
    public const string TrainingDatabase = "trainingdb";

    /// <summary>
    /// The chat model the platform always answers: the gateway's model name, and the registered model whose production
    /// version the ChatFallback serves on CPU.
    /// </summary>
    public const string ChatModel = "goblin-chat";

    /// <summary>The registry's bucket for MLflow artifacts, registered model files and training checkpoints.</summary>
    public const string ArtifactBucket = "goblin-artifacts";

    /// <summary>The endpoint name Aspire gives a project's HTTP endpoint (<c>services__{name}__http__0</c>).</summary>
    public const string HttpEndpoint = "http";

    public static IReadOnlyList<string> Services { get; } = [Gateway, ModelRegistry, TrainingWorker, ChatFallback];

    /// <summary>The base address a service uses to reach another through service discovery.</summary>
    public static Uri ServiceUri(string service) => new($"http://{service}");
}
