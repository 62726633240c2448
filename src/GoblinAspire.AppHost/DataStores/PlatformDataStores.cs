using GoblinAspire.AppHost.Kubernetes;
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
        IResourceWithConnectionString redis, postgres;
        Func<string, IResourceWithConnectionString> database;
        if (mode.Kind == DataStoreKind.Containers)
        {
            // The official images' own users (uid 999); PostgreSQL also writes its socket folder.
            var server = builder.AddPostgres(PlatformResources.Postgres, password: postgresPassword).WithDataVolume()
                .WithKubernetesPod(pod => pod with { RunAsUser = 999, VolumeSize = "20Gi", MemoryLimit = "2Gi", Folders = [new("run", "/var/run/postgresql")] });
            redis = builder.AddRedis(PlatformResources.Redis, password: redisPassword).WithDataVolume()
                .WithKubernetesPod(pod => pod with { RunAsUser = 999, VolumeSize = "5Gi" }).Resource;
            postgres = server.Resource;
            database = name => server.AddDatabase(name).Resource;
        }
        else
        {
            var durable = !bool.TryParse(builder.Configuration[$"{DataStoreMode.Section}:Durable"], out var given) || given;
            var server = builder.AddPostgresServer(PlatformResources.Postgres, postgresPassword, mode.DataDirectory, durable);
            redis = builder.AddRedisServer(PlatformResources.Redis, redisPassword, mode.DataDirectory).Resource;
            postgres = server.Resource;
            database = name => server.AddDatabase(name).Resource;
        }

        return new(
            mode,
            As(builder, redis),
            As(builder, postgres),
            As(builder, database(PlatformResources.GatewayDatabase)),
            As(builder, database(PlatformResources.RegistryDatabase)),
            As(builder, database(PlatformResources.TrainingDatabase)));
    }

    private static GenerateParameterDefault Generated() => new() { MinLength = 32, Special = false };

    private static IResourceBuilder<IResourceWithConnectionString> As(IDistributedApplicationBuilder builder, IResourceWithConnectionString resource) =>
        builder.CreateResourceBuilder(resource);
}
