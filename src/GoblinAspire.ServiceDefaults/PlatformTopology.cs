namespace GoblinAspire.ServiceDefaults;

/// <summary>
/// What one service is given by the AppHost: its databases, whether it uses Redis, the services it calls, the secrets
/// it is given, the fixed settings that tie it to the rest of the platform, and how many replicas run.
/// </summary>
public sealed record ServiceWiring(
    string Name,
    IReadOnlyList<string> Databases,
    bool UsesRedis,
    IReadOnlyList<string> ServiceReferences,
    IReadOnlyList<PlatformSecret>? Secrets = null,
    IReadOnlyDictionary<string, string>? Settings = null,
    int Replicas = 1)
{
    /// <summary>Every secret parameter the service can be given, the optional ones included.</summary>
    public IReadOnlyList<PlatformSecret> SecretParameters => Secrets ?? [];

    /// <summary>Environment variables with fixed values, e.g. the registered model the ChatFallback serves.</summary>
    public IReadOnlyDictionary<string, string> FixedSettings => Settings ?? new Dictionary<string, string>();
}

/// <summary>
/// A secret parameter of the AppHost (<paramref name="Parameter"/>) and the variable a service reads it from. An
/// <paramref name="Optional"/> secret turns a feature on (a rented-GPU executor, a cloud provider, encryption at rest):
/// the AppHost composes it, with its <see cref="Settings"/>, only where the operator gives it a value.
/// </summary>
public sealed record PlatformSecret(string Parameter, string Variable, bool Optional = false)
{
    /// <summary>Fixed settings that come with the secret, e.g. the provider entry an API key belongs to.</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>();
}

/// <summary>The platform's secret parameters: never literals, never logged.</summary>
public static class PlatformSecrets
{
    /// <summary>The HMAC key the ModelRegistry signs its V4 signed URLs with.</summary>
    public static readonly PlatformSecret RegistrySigningKey = new("registry-signing-key", "ModelRegistry__Storage__SigningSecret");

    /// <summary>The bearer secret of the gateway's admin API (virtual keys, spend).</summary>
    public static readonly PlatformSecret GatewayAdminKey = new("gateway-admin-key", "Gateway__Access__AdminKey");

    /// <summary>
    /// The registry's AES-256 key for objects at rest (base64 of 32 bytes). Given, the artifact bucket is encrypted;
    /// the key's id is its fingerprint, so a rotation only moves the old value to <see cref="RegistryRetiredEncryptionKeys"/>.
    /// </summary>
    public static readonly PlatformSecret RegistryEncryptionKey = new("registry-encryption-key", "ModelRegistry__Storage__EncryptionKey", Optional: true)
    {
        Settings = new Dictionary<string, string> { ["ModelRegistry__Storage__EncryptedBuckets__0"] = PlatformResources.ArtifactBucket },
    };

    /// <summary>Earlier encryption keys, comma-separated: objects written with them stay readable, nothing new uses them.</summary>
    public static readonly PlatformSecret RegistryRetiredEncryptionKeys = new("registry-retired-encryption-keys", "ModelRegistry__Storage__RetiredEncryptionKeys", Optional: true);

    /// <summary>Vast.ai's API key: given, the TrainingWorker can rent Vast.ai machines.</summary>
    public static readonly PlatformSecret VastAiApiKey = new("vastai-api-key", "TrainingWorker__VastAi__ApiKey", Optional: true);

    /// <summary>RunPod's API key: given, the TrainingWorker can rent RunPod pods and call serverless endpoints.</summary>
    public static readonly PlatformSecret RunPodApiKey = new("runpod-api-key", "TrainingWorker__RunPod__ApiKey", Optional: true);

    /// <summary>
    /// OpenAI's API key: given, the gateway routes goblin-chat to OpenAI after vLLM and before the ChatFallback
    /// (provider index 2; vLLM is 1 and the ChatFallback 0, from appsettings).
    /// </summary>
    public static readonly PlatformSecret OpenAiApiKey = new("openai-api-key", "Gateway__Providers__2__ApiKey", Optional: true)
    {
        Settings = new Dictionary<string, string>
        {
            ["Gateway__Providers__2__Name"] = "openai",
            ["Gateway__Providers__2__Kind"] = "openai",
            ["Gateway__Providers__2__BaseUrl"] = "https://api.openai.com/v1",
            ["Gateway__Providers__2__Priority"] = "50",
            ["Gateway__Providers__2__InputPricePer1K"] = "0.00015",
            ["Gateway__Providers__2__OutputPricePer1K"] = "0.0006",
            ["Gateway__Providers__2__Models__0__Name"] = PlatformResources.ChatModel,
            ["Gateway__Providers__2__Models__0__UpstreamModel"] = "gpt-4o-mini",
        },
    };
}

/// <summary>
/// The platform's wiring in one place. The AppHost composes exactly this (its tests check it), and the local host
/// and system tests give each process exactly this, in Aspire's environment-variable formats.
/// </summary>
public static class PlatformTopology
{
    /// <summary>The ChatFallback setting naming the registered model whose production version it serves.</summary>
    public const string RegisteredChatModelVariable = "ChatFallback__RegisteredModel";

    public static IReadOnlyList<ServiceWiring> Services { get; } =
    [
        new(PlatformResources.ModelRegistry, [PlatformResources.RegistryDatabase], UsesRedis: false, [],
            [PlatformSecrets.RegistrySigningKey, PlatformSecrets.RegistryEncryptionKey, PlatformSecrets.RegistryRetiredEncryptionKeys]),
        new(PlatformResources.ChatFallback, [], UsesRedis: false, [PlatformResources.ModelRegistry],
            Settings: new Dictionary<string, string> { [RegisteredChatModelVariable] = PlatformResources.ChatModel }),
        new(PlatformResources.TrainingWorker, [PlatformResources.TrainingDatabase], UsesRedis: false, [PlatformResources.ModelRegistry],
            [PlatformSecrets.VastAiApiKey, PlatformSecrets.RunPodApiKey]),
        new(PlatformResources.Gateway, [PlatformResources.GatewayDatabase], UsesRedis: true, [PlatformResources.ChatFallback],
            [PlatformSecrets.GatewayAdminKey, PlatformSecrets.OpenAiApiKey], Replicas: 2),
    ];

    public static ServiceWiring For(string service) =>
        Services.FirstOrDefault(s => s.Name == service) ?? throw new ArgumentException($"'{service}' is not a platform service.", nameof(service));

    /// <summary>The environment variable that carries a connection string, as Aspire writes it.</summary>
    public static string ConnectionStringVariable(string resource) => $"ConnectionStrings__{resource}";

    /// <summary>The environment variable that carries another service's first HTTP endpoint, as Aspire writes it.</summary>
    public static string ServiceEndpointVariable(string service, string endpoint = PlatformResources.HttpEndpoint) =>
        $"services__{service}__{endpoint}__0";
}
