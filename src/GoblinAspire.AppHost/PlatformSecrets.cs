using GoblinAspire.ServiceDefaults;

namespace GoblinAspire.AppHost;

/// <summary>
/// A secret parameter of the AppHost and the setting a service reads it from. An <see cref="Optional"/> secret turns a
/// feature on (a rented-GPU executor, a cloud provider, encryption at rest): it is composed, with its
/// <see cref="Settings"/>, only where the operator gives it.
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

    /// <summary>
    /// The ModelRegistry's bearer token (MLflow, GCS and model APIs). The services that call the registry get it; a
    /// training job gets a token the registry makes for its run alone, never this one.
    /// </summary>
    public static readonly PlatformSecret RegistryToken = new("registry-token", "ModelRegistry__Access__Token");

    /// <summary>The same registry token, as the TrainingWorker sends it.</summary>
    public static readonly PlatformSecret WorkerRegistryToken = new("registry-token", "TrainingWorker__RegistryToken");

    /// <summary>The same registry token, as the ChatFallback sends it to fetch its production model.</summary>
    public static readonly PlatformSecret ChatFallbackRegistryToken = new("registry-token", "ChatFallback__RegistryToken");

    /// <summary>The TrainingWorker's bearer token (its job API).</summary>
    public static readonly PlatformSecret WorkerToken = new("trainingworker-token", "TrainingWorker__Access__Token");

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

    /// <summary>OpenAI's API key: given, the gateway routes goblin-chat to OpenAI after vLLM and before the ChatFallback.</summary>
    public static readonly PlatformSecret OpenAiApiKey = new("openai-api-key", GatewayProviders.Setting(GatewayProviders.OpenAi, "ApiKey"), Optional: true)
    {
        Settings = GatewayProviders.Entry(GatewayProviders.OpenAi, kind: "openai", baseUrl: "https://api.openai.com/v1", priority: 50, upstreamModel: "gpt-4o-mini", inputPricePer1K: "0.00015", outputPricePer1K: "0.0006", nativeResponses: true),
    };

    public static IReadOnlyList<PlatformSecret> All { get; } =
        [RegistrySigningKey, RegistryToken, WorkerRegistryToken, ChatFallbackRegistryToken, WorkerToken, GatewayAdminKey, RegistryEncryptionKey, RegistryRetiredEncryptionKeys, VastAiApiKey, RunPodApiKey, OpenAiApiKey];
}

/// <summary>
/// The gateway's provider entries the AppHost adds beside the ChatFallback of its appsettings, each under its own name
/// (<c>Gateway__Providers__{name}__…</c>) rather than an array index, so entries from several places cannot collide.
/// </summary>
public static class GatewayProviders
{
    public const string OpenAi = "openai";

    public static string Setting(string provider, string setting) => $"Gateway__Providers__{provider}__{setting}";

    /// <summary>A provider entry serving <see cref="PlatformResources.ChatModel"/>, as environment variables.</summary>
    public static Dictionary<string, string> Entry(string provider, string kind, string baseUrl, int priority, string? upstreamModel = null, int? contextLength = null, string? inputPricePer1K = null, string? outputPricePer1K = null, bool nativeResponses = false)
    {
        var entry = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [Setting(provider, "Name")] = provider,
            [Setting(provider, "Kind")] = kind,
            [Setting(provider, "BaseUrl")] = baseUrl,
            [Setting(provider, "Priority")] = priority.ToString(System.Globalization.CultureInfo.InvariantCulture),
            [Setting(provider, "Models__0__Name")] = PlatformResources.ChatModel,
        };
        if (upstreamModel is not null)
        {
            entry[Setting(provider, "Models__0__UpstreamModel")] = upstreamModel;
        }

        if (contextLength is not null)
        {
            entry[Setting(provider, "Models__0__ContextLength")] = contextLength.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (nativeResponses)
        {
            // It serves /v1/responses itself: the gateway passes Responses requests through rather than translating.
            entry[Setting(provider, "NativeResponses")] = "true";
        }

        if (inputPricePer1K is not null)
        {
            entry[Setting(provider, "InputPricePer1K")] = inputPricePer1K;
        }

        if (outputPricePer1K is not null)
        {
            entry[Setting(provider, "OutputPricePer1K")] = outputPricePer1K;
        }

        return entry;
    }
}
