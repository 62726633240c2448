using System.Globalization;
using System.Net.Sockets;

namespace GoblinAspire.Testing;

/// <summary>
/// A real redis-server on a loopback port with a password, as the AppHost's Redis has. The password travels in a
/// configuration file only its owner can read, never on the command line where any local user would see it. Durable:
/// append-only file in <see cref="Directory"/>; otherwise nothing is written to disk.
/// </summary>
public sealed class LocalRedis(string directory, int port, string password, bool durable, Action<OutputLine>? output = null) : IAsyncDisposable
{
    public const string ResourceName = "redis";
    private ManagedProcess? _process;

    public string Directory { get; } = directory;

    public int Port { get; } = port;

    public string Password { get; } = password;

    /// <summary>In the format the AppHost gives services: <c>host:port,password=…</c>.</summary>
    public string ConnectionString => $"127.0.0.1:{Port},password={Password}";

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>The running server process, for watching it; null while stopped.</summary>
    public ManagedProcess? Process => _process;

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (IsRunning)
        {
            return;
        }

        System.IO.Directory.CreateDirectory(Directory);
        var configuration = Path.Combine(Directory, "redis.conf");
        var lines = new List<string>
        {
            $"port {Port.ToString(CultureInfo.InvariantCulture)}",
            "bind 127.0.0.1",
            $"requirepass \"{Password}\"",
            $"dir \"{Directory}\"",
            "daemonize no",
            "loglevel warning",
            "save \"\"",
            durable ? "appendonly yes" : "appendonly no",
        };
        await File.WriteAllLinesAsync(configuration, lines, cancellationToken);
        File.SetUnixFileMode(configuration, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        if (_process is not null)
        {
            await _process.DisposeAsync();
        }

        _process = ManagedProcess.Start(new ProcessLaunch(ResourceName, ServerBinaries.RedisServer, [configuration], Directory, new Dictionary<string, string?>()), output);
        await WaitForPortAsync(Port, TimeSpan.FromSeconds(15), () => _process.HasExited, cancellationToken);
    }

    /// <summary>A clean stop (SIGTERM: the append-only file is flushed) when <paramref name="graceful"/>, else SIGKILL, as an outage.</summary>
    public async Task StopAsync(bool graceful = true)
    {
        if (_process is null)
        {
            return;
        }

        if (graceful)
        {
            await _process.StopAsync(TimeSpan.FromSeconds(10));
        }
        else
        {
            await _process.CrashAsync();
        }

        await _process.DisposeAsync();
        _process = null;
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    /// <summary>Waits until something accepts connections on <paramref name="port"/>, failing at once if the server exits.</summary>
    public static async Task WaitForPortAsync(int port, TimeSpan timeout, Func<bool> exited, CancellationToken cancellationToken = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (exited())
            {
                throw new InvalidOperationException($"the server for port {port} exited while starting");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", port, cancellationToken);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(20, cancellationToken);
            }
        }

        throw new TimeoutException($"nothing listened on port {port} within {timeout}");
    }
}
