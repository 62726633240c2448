using Xunit;

namespace GoblinAspire.Testing;

/// <summary>
/// One Redis and one PostgreSQL shared by the tests of an assembly. Tests isolate themselves with their own
/// database (<see cref="PostgresServer.CreateDatabaseAsync"/>) or key prefix; tests that stop a server start
/// their own instead.
/// </summary>
public sealed class PlatformServers : IAsyncLifetime
{
    /// <summary>Each test assembly declares the collection (xunit requires it in the same assembly) under this name.</summary>
    public const string Collection = "platform servers";

    public RedisServer Redis { get; private set; } = null!;

    public PostgresServer Postgres { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var redis = RedisServer.StartAsync();
        var postgres = PostgresServer.StartAsync();
        Redis = await redis;
        Postgres = await postgres;
    }

    public async Task DisposeAsync()
    {
        if (Redis is not null)
        {
            await Redis.DisposeAsync();
        }

        if (Postgres is not null)
        {
            await Postgres.DisposeAsync();
        }
    }
}
