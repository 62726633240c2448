namespace GoblinAspire.AppHost.Tests.Platform;

/// <summary>
/// Processes that outlived their AppHost: a server whose command line or working folder is in the platform's data
/// folder (redis-server rewrites its command line, so its folder tells), or a service whose environment holds one of
/// the platform's secrets (every service that uses PostgreSQL has its password).
/// </summary>
public static class LeftoverServers
{
    public static IReadOnlyList<string> Find(string dataDirectory, params string[] secrets)
    {
        var left = new List<string>();
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var commandLine = File.ReadAllText(Path.Combine(proc, "cmdline")).Replace('\0', ' ');
                var environment = secrets.Length == 0 ? string.Empty : File.ReadAllText(Path.Combine(proc, "environ"));
                var folder = new DirectoryInfo(Path.Combine(proc, "cwd")).ResolveLinkTarget(returnFinalTarget: false)?.FullName ?? string.Empty;
                if (commandLine.Contains(dataDirectory, StringComparison.Ordinal)
                    || folder.StartsWith(dataDirectory, StringComparison.Ordinal)
                    || secrets.Any(s => environment.Contains(s, StringComparison.Ordinal)))
                {
                    left.Add($"{pid}: {commandLine.Trim()}");
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Gone while being read.
            }
        }

        return left;
    }

    /// <summary>Waits for stopping servers to finish exiting; returns what is still there after <paramref name="timeout"/>.</summary>
    public static async Task<IReadOnlyList<string>> WaitForNoneAsync(string dataDirectory, TimeSpan timeout, params string[] secrets)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var left = Find(dataDirectory, secrets);
            if (left.Count == 0 || DateTime.UtcNow > deadline)
            {
                return left;
            }

            await Task.Delay(200);
        }
    }
}
