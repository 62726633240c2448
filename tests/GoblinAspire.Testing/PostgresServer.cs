using System.Globalization;
using Npgsql;

namespace GoblinAspire.Testing;

/// <summary>
/// A real PostgreSQL cluster (initdb + pg_ctl) on a free loopback port, in a temporary folder, with password auth.
/// fsync is off: the tests need speed, not durability across a power cut. Runs as the 'postgres' user when the
/// tests run as root, because PostgreSQL refuses to run as root.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private const string Superuser = "postgres";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    private readonly string _root;
    private readonly string _dataDirectory;
    private readonly string? _runAs;
    private int _databaseCounter;

    private PostgresServer(int port, string password, string root, string? runAs)
    {
        Port = port;
        Password = password;
        _root = root;
        _dataDirectory = Path.Combine(root, "data");
        _runAs = runAs;
    }

    public int Port { get; }

    public string Password { get; }

    public bool IsRunning { get; private set; }

    public static async Task<PostgresServer> StartAsync()
    {
        var runAs = ChildProcess.IsRoot ? "postgres" : null;
        var root = Directory.CreateTempSubdirectory("goblin-pg-").FullName;
        var server = new PostgresServer(FreePort.Next(), Convert.ToHexString(Guid.NewGuid().ToByteArray()), root, runAs);
        var passwordFile = Path.Combine(root, "pwfile");
        await File.WriteAllTextAsync(passwordFile, server.Password);
        if (runAs is not null)
        {
            await ChildProcess.RunAsync("chown", ["-R", runAs, root], CommandTimeout);
        }

        await ChildProcess.RunAsync(
            ServerBinaries.PostgresBin("initdb"),
            ["-D", server._dataDirectory, "-U", Superuser, "--pwfile", passwordFile, "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync"],
            CommandTimeout,
            runAs);
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>An Aspire-format connection string for the superuser's database <paramref name="database"/>.</summary>
    public string ConnectionString(string database = "postgres") =>
        $"Host=127.0.0.1;Port={Port};Username={Superuser};Password={Password};Database={database}";

    /// <summary>A new, empty database for one test; returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "test")
    {
        var candidate = $"{prefix}_{Interlocked.Increment(ref _databaseCounter)}_{Guid.NewGuid():N}".ToLowerInvariant();
        var name = candidate[..Math.Min(63, candidate.Length)];
        await using var connection = new NpgsqlConnection(ConnectionString() + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync();
        return ConnectionString(name);
    }

    public async Task StartAgainAsync()
    {
        if (IsRunning)
        {
            return;
        }

        var options = string.Join(' ',
            $"-p {Port.ToString(CultureInfo.InvariantCulture)}",
            "-c listen_addresses=127.0.0.1",
            $"-c unix_socket_directories={_root}",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=300");
        await ChildProcess.RunAsync(
            ServerBinaries.PostgresBin("pg_ctl"),
            ["-D", _dataDirectory, "-l", Path.Combine(_root, "server.log"), "-o", options, "-w", "-t", "60", "start"],
            CommandTimeout,
            _runAs);
        IsRunning = true;
    }

    public async Task StopAsync()
    {
        if (!IsRunning)
        {
            return;
        }

        await ChildProcess.RunAsync(
            ServerBinaries.PostgresBin("pg_ctl"),
            ["-D", _dataDirectory, "-m", "fast", "-w", "-t", "60", "stop"],
            CommandTimeout,
            _runAs);
        IsRunning = false;
        NpgsqlConnection.ClearAllPools();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        finally
        {
            try
            {
                Directory.Delete(_root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
