namespace GoblinAspire.Testing;

/// <summary>
/// Finds the real server binaries the tests run against. A missing one fails the run with one line that says how
/// to install it: nothing is skipped silently.
/// </summary>
public static class ServerBinaries
{
    private const string PostgresHint = "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin: install them with 'sudo apt-get install -y postgresql'.";
    private const string RedisHint = "redis-server not found on PATH: install it with 'sudo apt-get install -y redis-server'.";

    public static string RedisServer => FindOnPath("redis-server") ?? throw new InvalidOperationException(RedisHint);

    public static string PostgresBin(string tool)
    {
        if (FindOnPath(tool) is { } onPath)
        {
            return onPath;
        }

        foreach (var root in new[] { "/usr/lib/postgresql", "/usr/local/pgsql", "/opt/homebrew/opt" })
        {
            if (!Directory.Exists(root))
            {
                continue;
            }

            var candidate = Directory.EnumerateDirectories(root)
                .OrderByDescending(d => d, StringComparer.Ordinal)
                .Select(d => Path.Combine(d, "bin", tool))
                .FirstOrDefault(File.Exists);
            if (candidate is not null)
            {
                return candidate;
            }
        }

        throw new InvalidOperationException(PostgresHint);
    }

    public static string? FindOnPath(string name)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        return path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
    }
}
