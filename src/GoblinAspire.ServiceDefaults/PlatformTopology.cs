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
    public IReadOnlyList<PlatformSecret> RequiredSecrets => Secrets ?? [];

    /// <summary>Environment variables with fixed values, e.g. the registered model the ChatFallback serves.</summary>
    public IReadOnlyDictionary<string, string> FixedSettings => Settings ?? new Dictionary<string, string>();
}

/// <summary>A secret parameter of the AppHost (<paramref name="Parameter"/>) and the variable a service reads it from.</summary>
public sealed record PlatformSecret(string Parameter, string Variable);

/// <summary>The platform's secret parameters: never literals, never logged.</summary>
public static class PlatformSecrets
{
    /// <summary>The HMAC key the ModelRegistry signs its V4 signed URLs with.</summary>
    public static readonly PlatformSecret RegistrySigningKey = new("registry-signing-key", "ModelRegistry__Storage__SigningSecret");

    /// <summary>The bearer secret of the gateway's admin API (virtual keys, spend).</summary>
    public static readonly PlatformSecret GatewayAdminKey = new("gateway-admin-key", "Gateway__Access__AdminKey");
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
        new(PlatformResources.ModelRegistry, [PlatformResources.RegistryDatabase], UsesRedis: false, [], [PlatformSecrets.RegistrySigningKey]),
        new(PlatformResources.ChatFallback, [], UsesRedis: false, [PlatformResources.ModelRegistry],
            Settings: new Dictionary<string, string> { [RegisteredChatModelVariable] = PlatformResources.ChatModel }),
        new(PlatformResources.TrainingWorker, [PlatformResources.TrainingDatabase], UsesRedis: false, [PlatformResources.ModelRegistry]),
        new(PlatformResources.Gateway, [PlatformResources.GatewayDatabase], UsesRedis: true, [PlatformResources.ChatFallback], [PlatformSecrets.GatewayAdminKey], Replicas: 2),
    ];

    public static ServiceWiring For(string service) =>
        Services.FirstOrDefault(s => s.Name == service) ?? throw new ArgumentException($"'{service}' is not a platform service.", nameof(service));

    /// <summary>The environment variable that carries a connection string, as Aspire writes it.</summary>
    public static string ConnectionStringVariable(string resource) => $"ConnectionStrings__{resource}";

    /// <summary>The environment variable that carries another service's first HTTP endpoint, as Aspire writes it.</summary>
    public static string ServiceEndpointVariable(string service, string endpoint = PlatformResources.HttpEndpoint) =>
        $"services__{service}__{endpoint}__0";
}
