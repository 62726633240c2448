namespace GoblinAspire.ServiceDefaults;

/// <summary>
/// What one service is given by the AppHost: its databases, whether it uses Redis, the services it calls, and the
/// secrets it cannot start without.
/// </summary>
public sealed record ServiceWiring(string Name, IReadOnlyList<string> Databases, bool UsesRedis, IReadOnlyList<string> ServiceReferences, IReadOnlyList<PlatformSecret>? Secrets = null)
{
    public IReadOnlyList<PlatformSecret> RequiredSecrets => Secrets ?? [];
}

/// <summary>A secret parameter of the AppHost (<paramref name="Parameter"/>) and the variable a service reads it from.</summary>
public sealed record PlatformSecret(string Parameter, string Variable);

/// <summary>The platform's secret parameters: never literals, never logged.</summary>
public static class PlatformSecrets
{
    /// <summary>The HMAC key the ModelRegistry signs its V4 signed URLs with.</summary>
    public static readonly PlatformSecret RegistrySigningKey = new("registry-signing-key", "ModelRegistry__Storage__SigningSecret");
}

/// <summary>
/// The platform's wiring in one place. The AppHost composes exactly this (its tests check it), and the local host
/// and system tests give each process exactly this, in Aspire's environment-variable formats.
/// </summary>
public static class PlatformTopology
{
    public static IReadOnlyList<ServiceWiring> Services { get; } =
    [
        new(PlatformResources.ModelRegistry, [PlatformResources.RegistryDatabase], UsesRedis: false, [], [PlatformSecrets.RegistrySigningKey]),
        new(PlatformResources.ChatFallback, [], UsesRedis: false, [PlatformResources.ModelRegistry]),
        new(PlatformResources.TrainingWorker, [PlatformResources.TrainingDatabase], UsesRedis: false, [PlatformResources.ModelRegistry]),
        new(PlatformResources.Gateway, [PlatformResources.GatewayDatabase], UsesRedis: true, [PlatformResources.ChatFallback]),
    ];

    public static ServiceWiring For(string service) =>
        Services.FirstOrDefault(s => s.Name == service) ?? throw new ArgumentException($"'{service}' is not a platform service.", nameof(service));

    /// <summary>The environment variable that carries a connection string, as Aspire writes it.</summary>
    public static string ConnectionStringVariable(string resource) => $"ConnectionStrings__{resource}";

    /// <summary>The environment variable that carries another service's first HTTP endpoint, as Aspire writes it.</summary>
    public static string ServiceEndpointVariable(string service, string endpoint = PlatformResources.HttpEndpoint) =>
        $"services__{service}__{endpoint}__0";
}
