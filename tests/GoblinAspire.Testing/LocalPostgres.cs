using System.Globalization;
using Npgsql;

namespace GoblinAspire.Testing;

/// <summary>
/// A real PostgreSQL cluster (initdb once, then pg_ctl) on a loopback port with password authentication, in
/// <see cref="Root"/>. Not durable (tests): fsync and synchronous commit off. Runs as the 'postgres' user when the host
/// runs as root, because PostgreSQL refuses to run as root. pg_ctl runs in its own session (setsid) so a terminal's
/// Ctrl-C does not shut the server down under the services still using it.
/// </summary>
public sealed class LocalPostgres(string root, int port, string password, bool durable) : IAsyncDisposable
{
    public const string ResourceName = "postgres";
    public const string Superuser = "postgres";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(90);
    private readonly string? _runAs = ChildProcess.IsRoot ? "postgres" : null;

    public string Root { get; } = root;

    public string DataDirectory => Path.Combine(Root, "data");

    public string LogFile => Path.Combine(Root, "server.log");

    public int Port { get; } = port;

    public string Password { get; } = password;

    public bool IsRunning { get; private set; }

    /// <summary>An Aspire-format connection string for <paramref name="database"/>.</summary>
    public string ConnectionString(string database = "postgres") =>
        $"Host=127.0.0.1;Port={Port.ToString(CultureInfo.InvariantCulture)};Username={Superuser};Password={Password};Database={database}";

    /// <summary>Creates the cluster if <see cref="DataDirectory"/> holds none, then starts it and waits until it accepts connections.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (IsRunning)
        {
            return;
        }

        Directory.CreateDirectory(Root);
        if (!File.Exists(Path.Combine(DataDirectory, "PG_VERSION")))
        {
            await InitializeAsync(cancellationToken);
        }
        else if (ServerProcessId() is not null)
        {
            // A server left running by a host that was killed: stop it, so this start owns the cluster.
            await StopLeftoverAsync(cancellationToken);
        }

        var options = new List<string>
        {
            $"-p {Port.ToString(CultureInfo.InvariantCulture)}",
            "-c listen_addresses=127.0.0.1",
            // No Unix socket: its path would have to fit in 107 bytes, and every client here uses TCP.
            "-c unix_socket_directories=''",
            "-c max_connections=300",
        };
        if (!durable)
        {
            options.AddRange(["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]);
        }

        await PgCtlAsync(["-D", DataDirectory, "-l", LogFile, "-o", string.Join(' ', options), "-w", "-t", "60", "start"], cancellationToken);
        IsRunning = true;
    }

    public async Task StopAsync()
    {
        if (!IsRunning)
        {
            return;
        }

        await PgCtlAsync(["-D", DataDirectory, "-m", "fast", "-w", "-t", "60", "stop"], CancellationToken.None);
        IsRunning = false;
        NpgsqlConnection.ClearAllPools();
    }

    /// <summary>Stops a server some earlier process started on this cluster.</summary>
    public async Task StopLeftoverAsync(CancellationToken cancellationToken = default) =>
        await PgCtlAsync(["-D", DataDirectory, "-m", "fast", "-w", "-t", "60", "stop"], cancellationToken);

    /// <summary>Creates <paramref name="database"/> unless it exists (as the AppHost's <c>AddDatabase</c> does); returns its connection string.</summary>
    public async Task<string> EnsureDatabaseAsync(string database, CancellationToken cancellationToken = default)
    {
        await using var connection = new NpgsqlConnection(ConnectionString() + ";Pooling=false");
        await connection.OpenAsync(cancellationToken);
        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", connection) { Parameters = { new() { Value = database } } };
        if (await exists.ExecuteScalarAsync(cancellationToken) is null)
        {
            try
            {
                await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", connection);
                await create.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.DuplicateDatabase)
            {
            }
        }

        return ConnectionString(database);
    }

    /// <summary>The postmaster's process id while a server runs on this cluster, from its pid file.</summary>
    public int? ServerProcessId()
    {
        try
        {
            var first = File.ReadLines(Path.Combine(DataDirectory, "postmaster.pid")).FirstOrDefault();
            return int.TryParse(first, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid) && Directory.Exists($"/proc/{pid}") ? pid : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private async Task InitializeAsync(CancellationToken cancellationToken)
    {
        if (_runAs is not null)
        {
            // The server runs as 'postgres', which must be able to walk down to its data folder.
            var blocked = new DirectoryInfo(Root).Parent;
            while (blocked is not null && (blocked.UnixFileMode & UnixFileMode.OtherExecute) != 0)
            {
                blocked = blocked.Parent;
            }

            if (blocked is not null)
            {
                throw new InvalidOperationException($"PostgreSQL runs as the '{_runAs}' user, which cannot enter {blocked.FullName}: use a data folder every user can traverse (e.g. /var/lib/goblinaspire).");
            }
        }

        Directory.CreateDirectory(DataDirectory);
        var passwordFile = Path.Combine(Root, "pwfile");
        await File.WriteAllTextAsync(passwordFile, Password, cancellationToken);
        File.SetUnixFileMode(passwordFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        try
        {
            if (_runAs is not null)
            {
                await ChildProcess.RunAsync("chown", ["-R", _runAs, Root], CommandTimeout);
            }

            await ChildProcess.RunAsync(
                ServerBinaries.PostgresBin("initdb"),
                ["-D", DataDirectory, "-U", Superuser, "--pwfile", passwordFile, "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", .. durable ? Array.Empty<string>() : ["--no-sync"]],
                CommandTimeout,
                _runAs);
        }
        finally
        {
            File.Delete(passwordFile);
        }
    }

    private Task<string> PgCtlAsync(IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var pgCtl = ServerBinaries.PostgresBin("pg_ctl");
        return ServerBinaries.FindOnPath("setsid") is { } setsid
            ? ChildProcess.RunAsync(setsid, [pgCtl, .. arguments], CommandTimeout, _runAs, cancellationToken: cancellationToken)
            : ChildProcess.RunAsync(pgCtl, arguments, CommandTimeout, _runAs, cancellationToken: cancellationToken);
    }
}
