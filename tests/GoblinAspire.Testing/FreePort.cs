using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace GoblinAspire.Testing;

/// <summary>
/// Loopback ports for servers that cannot bind port 0 themselves. They are drawn from below the kernel's ephemeral
/// range: a port the OS hands out for <c>bind(0)</c> is an ephemeral one, and between handing it over and the server
/// binding it, any outgoing connection on the machine may take it as its local port. CI saw exactly that: a service
/// failing to start with "address already in use" while other test assemblies opened connections.
/// </summary>
public static class FreePort
{
    private const int Lowest = 10000;
    private static readonly HashSet<int> s_given = [];

    /// <summary>A loopback port free right now, outside the ephemeral range, never given out before by this process.</summary>
    public static int Next()
    {
        var below = EphemeralStart();
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            var port = Random.Shared.Next(Lowest, below);
            lock (s_given)
            {
                if (s_given.Contains(port) || !IsFree(port))
                {
                    continue;
                }

                s_given.Add(port);
                return port;
            }
        }

        throw new InvalidOperationException($"no free loopback port between {Lowest} and {below}");
    }

    /// <summary>Whether a listener could bind <paramref name="port"/> on loopback right now.</summary>
    public static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int EphemeralStart()
    {
        // Linux's range is configurable; elsewhere (and when unreadable) IANA's dynamic range starts at 49152.
        const int Iana = 49152;
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            var start = int.Parse(range[0], CultureInfo.InvariantCulture);
            return start > Lowest + 1000 ? start : Iana;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return Iana;
        }
    }
}
