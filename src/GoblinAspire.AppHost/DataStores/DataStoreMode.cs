using System.Diagnostics;

namespace GoblinAspire.AppHost.DataStores;

/// <summary>How Redis and PostgreSQL run: as Aspire's containers, or as the machine's own server binaries.</summary>
public enum DataStoreKind
{
    Containers,
    Processes,
}

/// <summary>
/// The <c>DataStores</c> settings: <c>Mode</c> (<c>auto</c>, <c>containers</c> or <c>processes</c>), the per-user
/// <c>DataDirectory</c> the process-mode servers keep their data in, and <c>Fresh</c> to wipe it before the start.
/// Publishing always describes containers: a manifest or chart is for other machines, whatever this one has.
/// </summary>
public sealed record DataStoreMode(DataStoreKind Kind, string DataDirectory)
{
    public const string Section = "DataStores";

    public static DataStoreMode Resolve(IDistributedApplicationBuilder builder)
    {
        var configuration = builder.Configuration.GetSection(Section);
        var directory = Path.GetFullPath(configuration["DataDirectory"] is { Length: > 0 } given ? given : DefaultDataDirectory());
        if (builder.ExecutionContext.IsPublishMode)
        {
            return new(DataStoreKind.Containers, directory);
        }

        var kind = (configuration["Mode"] ?? "auto").ToLowerInvariant() switch
        {
            "auto" => ContainerRuntimeAnswers(builder.Configuration["ASPIRE_CONTAINER_RUNTIME"] ?? "docker") ? DataStoreKind.Containers : DataStoreKind.Processes,
            "containers" => DataStoreKind.Containers,
            "processes" => DataStoreKind.Processes,
            var other => throw new DistributedApplicationException($"DataStores:Mode is '{other}': use auto, containers or processes."),
        };
        if (kind == DataStoreKind.Processes && bool.TryParse(configuration["Fresh"], out var fresh) && fresh && Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }

        return new(kind, directory);
    }

    /// <summary>
    /// <c>$XDG_DATA_HOME/goblinaspire</c> (else <c>~/.local/share/goblinaspire</c>); as root <c>/var/lib/goblinaspire</c>,
    /// because PostgreSQL then runs as the <c>postgres</c> user, which must be able to reach its data folder.
    /// </summary>
    public static string DefaultDataDirectory()
    {
        if (Environment.UserName == "root")
        {
            return "/var/lib/goblinaspire";
        }

        var dataHome = Environment.GetEnvironmentVariable("XDG_DATA_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        return Path.Combine(dataHome, "goblinaspire");
    }

    /// <summary>Whether <c>{runtime} info</c> reaches a daemon within a few seconds; a client with no engine answers at once.</summary>
    private static bool ContainerRuntimeAnswers(string runtime)
    {
        if (ServerBinaries.FindOnPath(runtime) is not { } path)
        {
            return false;
        }

        try
        {
            // Only the exit code counts: docker and podman both fail `info` when no engine answers.
            using var process = Process.Start(new ProcessStartInfo(path, ["info"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            })!;
            if (!process.WaitForExit(TimeSpan.FromSeconds(10)))
            {
                process.Kill(entireProcessTree: true);
                return false;
            }

            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
