
namespace GoblinAspire.Testing;

/// <summary>
/// The local host's Redis on a free loopback port, in a temporary folder, with nothing written to disk. It can be
/// killed (an outage) and started again on the same port.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly LocalRedis _redis;

    private RedisServer(LocalRedis redis) => _redis = redis;

    public int Port => _redis.Port;

    public string Password => _redis.Password;

    /// <summary>In the format the Aspire AppHost gives services: <c>host:port,password=…</c>.</summary>
    public string ConnectionString => _redis.ConnectionString;

    public bool IsRunning => _redis.IsRunning;

    public static async Task<RedisServer> StartAsync()
    {
        var directory = Directory.CreateTempSubdirectory("goblin-redis-").FullName;
        var server = new RedisServer(new LocalRedis(directory, FreePort.Next(), Convert.ToHexString(Guid.NewGuid().ToByteArray()), durable: false));
        await server.StartAgainAsync();
        return server;
    }

    public Task StartAgainAsync() => _redis.StartAsync();

    /// <summary>SIGKILL: an outage, not a clean shutdown.</summary>
    public Task StopAsync() => _redis.StopAsync(graceful: false);

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(_redis.Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
