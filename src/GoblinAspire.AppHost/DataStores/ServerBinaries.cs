namespace GoblinAspire.AppHost.DataStores;

/// <summary>
/// Finds the machine's server binaries for the process-mode data stores. A missing one stops the start with one line
/// naming the package to install.
/// </summary>
public static class ServerBinaries
{
    public static string RedisServer =>
        FindOnPath("redis-server") ?? throw Missing("redis-server not found on PATH: install it with 'sudo apt-get install -y redis-server' (or run a container runtime).");

    public static string Postgres(string tool)
    {
        if (FindOnPath(tool) is { } onPath)
        {
            return onPath;
        }

        foreach (var root in new[] { "/usr/lib/postgresql", "/usr/local/pgsql", "/opt/homebrew/opt" })
        {
            if (Directory.Exists(root)
                && Directory.EnumerateDirectories(root).OrderByDescending(d => d, StringComparer.Ordinal).Select(d => Path.Combine(d, "bin", tool)).FirstOrDefault(File.Exists) is { } found)
            {
                return found;
            }
        }

        throw Missing($"PostgreSQL's {tool} not found on PATH or under /usr/lib/postgresql/*/bin: install it with 'sudo apt-get install -y postgresql' (or run a container runtime).");
    }

    public static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);

    private static DistributedApplicationException Missing(string line) => new(line);
}
