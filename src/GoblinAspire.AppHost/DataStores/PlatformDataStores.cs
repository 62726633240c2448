using GoblinAspire.ServiceDefaults;

namespace GoblinAspire.AppHost.DataStores;

/// <summary>
/// Redis and PostgreSQL with the three databases, as Aspire's containers with data volumes where a container runtime
/// answers (and always when publishing), else as the machine's own servers (<see cref="DataStoreMode"/>). Either way
/// the services get the same connection-string names in the same formats.
/// </summary>
public sealed record PlatformDataStores(
    DataStoreMode Mode,
    IResourceBuilder<IResourceWithConnectionString> Redis,
    IResourceBuilder<IResourceWithConnectionString> Postgres,
    IResourceBuilder<IResourceWithConnectionString> GatewayDatabase,
    IResourceBuilder<IResourceWithConnectionString> RegistryDatabase,
    IResourceBuilder<IResourceWithConnectionString> TrainingDatabase)
{
    public static PlatformDataStores Add(IDistributedApplicationBuilder builder)
    {
        var mode = DataStoreMode.Resolve(builder);
        // Generated once and kept in the AppHost's user secrets, so the data kept across runs stays readable.
        var postgresPassword = builder.AddParameter("postgres-password", Generated(), secret: true, persist: true);
        var redisPassword = builder.AddParameter("redis-password", Generated(), secret: true, persist: true);
        if (mode.Kind == DataStoreKind.Containers)
        {
            var redis = builder.AddRedis(PlatformResources.Redis, password: redisPassword).WithDataVolume();
            var postgres = builder.AddPostgres(PlatformResources.Postgres, password: postgresPassword).WithDataVolume();
            return new(
                mode,
                As(builder, redis.Resource),
                As(builder, postgres.Resource),
                As(builder, postgres.AddDatabase(PlatformResources.GatewayDatabase).Resource),
                As(builder, postgres.AddDatabase(PlatformResources.RegistryDatabase).Resource),
                As(builder, postgres.AddDatabase(PlatformResources.TrainingDatabase).Resource));
        }

        var durable = !bool.TryParse(builder.Configuration[$"{DataStoreMode.Section}:Durable"], out var given) || given;
        var redisServer = builder.AddRedisServer(PlatformResources.Redis, redisPassword, mode.DataDirectory);
        var postgresServer = builder.AddPostgresServer(PlatformResources.Postgres, postgresPassword, mode.DataDirectory, durable);
        return new(
            mode,
            As(builder, redisServer.Resource),
            As(builder, postgresServer.Resource),
            As(builder, postgresServer.AddDatabase(PlatformResources.GatewayDatabase).Resource),
            As(builder, postgresServer.AddDatabase(PlatformResources.RegistryDatabase).Resource),
            As(builder, postgresServer.AddDatabase(PlatformResources.TrainingDatabase).Resource));
    }

    private static GenerateParameterDefault Generated() => new() { MinLength = 32, Special = false };

    private static IResourceBuilder<IResourceWithConnectionString> As(IDistributedApplicationBuilder builder, IResourceWithConnectionString resource) =>
        builder.CreateResourceBuilder(resource);
}
