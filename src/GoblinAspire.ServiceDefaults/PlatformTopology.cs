namespace GoblinAspire.ServiceDefaults;

/// <summary>What one service is given by the AppHost: its databases, whether it uses Redis, the services it calls.</summary>
public sealed record ServiceWiring(string Name, IReadOnlyList<string> Databases, bool UsesRedis, IReadOnlyList<string> ServiceReferences);

/// <summary>
/// The platform's wiring in one place. The AppHost composes exactly this (its tests check it), and the local host
/// and system tests give each process exactly this, in Aspire's environment-variable formats.
/// </summary>
public static class PlatformTopology
{
    public static IReadOnlyList<ServiceWiring> Services { get; } =
    [
        new(PlatformResources.ModelRegistry, [PlatformResources.RegistryDatabase], UsesRedis: false, []),
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
