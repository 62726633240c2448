
namespace GoblinAspire.Testing;

/// <summary>
/// The local host's PostgreSQL on a free loopback port, in a temporary folder, without durability (the tests need
/// speed, not survival of a power cut). Tests isolate themselves with a database each.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private readonly LocalPostgres _postgres;
    private int _databaseCounter;

    private PostgresServer(LocalPostgres postgres) => _postgres = postgres;

    public int Port => _postgres.Port;

    public string Password => _postgres.Password;

    public bool IsRunning => _postgres.IsRunning;

    public static async Task<PostgresServer> StartAsync()
    {
        var root = Directory.CreateTempSubdirectory("goblin-pg-").FullName;
        var server = new PostgresServer(new LocalPostgres(root, FreePort.Next(), Convert.ToHexString(Guid.NewGuid().ToByteArray()), durable: false));
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>An Aspire-format connection string for the superuser's database <paramref name="database"/>.</summary>
    public string ConnectionString(string database = "postgres") => _postgres.ConnectionString(database);

    /// <summary>A new, empty database for one test; returns its connection string.</summary>
    public Task<string> CreateDatabaseAsync(string prefix = "test")
    {
        var candidate = $"{prefix}_{Interlocked.Increment(ref _databaseCounter)}_{Guid.NewGuid():N}".ToLowerInvariant();
        return _postgres.EnsureDatabaseAsync(candidate[..Math.Min(63, candidate.Length)]);
    }

    public Task StartAgainAsync() => _postgres.StartAsync();

    public Task StopAsync() => _postgres.StopAsync();

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _postgres.StopAsync();
        }
        finally
        {
            try
            {
                Directory.Delete(_postgres.Root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
