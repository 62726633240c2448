// Why local jobs run the way they do.
//
// A local job is code the worker did not write, on the worker's machine; the worker holds the training database's
// password and the Vast.ai and RunPod keys. Run as a plain child under the worker's user, a job could read them from
// /proc/<worker>/environ or /proc/<worker>/mem, and read every file that user can.
//
// So a job runs in new user, PID and mount namespaces (util-linux unshare) with its own /proc: the worker, the
// AppHost and every other process on the machine are not in the job's /proc at all. Inside, a small shell, the
// namespace's first process, hides the configured secret paths (an empty tmpfs over a folder, /dev/null over a
// file), then starts the job through setpriv with no_new_privs and no capabilities left, so the job can neither
// undo those mounts nor mount a /proc of its own that shows more (mounts inherited by a nested namespace are
// locked). Unprivileged user namespaces need no privilege, so the same path works for a developer pressing F5. A
// worker running as root (CI, a bare server) first drops to an unprivileged uid (setpriv), so the job's files are
// not root's either and root-only files stay closed to it.
//
// The job keeps the process-group stop: the namespace's first process ignores signals it has no handler for, so the
// shell only waits; SIGTERM to the group reaches the job and everything it started, SIGKILL ends the namespace
// (and everything in it, even what left the group). The shell starts the job in the background, which POSIX says
// ignores SIGINT and SIGQUIT; env --default-signal gives the job the default actions back.
//
// Without isolation local jobs are refused with one error, unless an operator opts out (logged at start).
using System.Diagnostics;
using Microsoft.Extensions.Options;

namespace GoblinAspire.TrainingWorker.Execution;

/// <summary>Starts local jobs isolated from the worker, or says why it cannot.</summary>
public sealed partial class JobSandbox : IHostedService
{
    // $1.. are the paths to hide up to "--", then the command to run as the job. Failing to hide a reachable path
    // fails the job: running it with the path visible is what the sandbox is for.
    private const string FirstProcess = """
        while [ "$1" != -- ]; do
          if [ -d "$1" ]; then mount -t tmpfs -o ro,nosuid,nodev,noexec,size=4k,mode=000 goblin-hidden "$1" || exit 126
          elif [ -e "$1" ]; then mount --bind /dev/null "$1" || exit 126
          fi
          shift
        done
        shift
        "$@" &
        wait $!
        """;

    private readonly JobIsolationOptions _options;
    private readonly string _workDirectory;
    private readonly ILogger<JobSandbox> _logger;
    private readonly Lazy<string?> _unavailable;
    private readonly Tools? _tools;

    public JobSandbox(IOptions<TrainingWorkerOptions> options, ILogger<JobSandbox> logger)
        : this(options, logger, (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries), Environment.IsPrivilegedProcess)
    {
    }

    /// <param name="searchPath">Where the util-linux and coreutils programs are looked for.</param>
    /// <param name="privileged">Whether the worker runs as root, and so must give the job another uid.</param>
    public JobSandbox(IOptions<TrainingWorkerOptions> options, ILogger<JobSandbox> logger, IReadOnlyList<string> searchPath, bool privileged)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value.Isolation;
        _workDirectory = options.Value.WorkDirectory;
        _logger = logger;
        Privileged = privileged;
        var missing = new List<string>();
        string Find(string program)
        {
            var found = searchPath.Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);
            if (found is null)
            {
                missing.Add(program);
            }

            return found ?? program;
        }

        var tools = new Tools(Find("unshare"), Find("setpriv"), Find("env"), Find("sh"));
        _tools = missing.Count == 0 ? tools : null;
        var notFound = missing.Count == 0 ? null : $"{string.Join(", ", missing)} not found on PATH (util-linux and coreutils)";
        _unavailable = new Lazy<string?>(() => notFound ?? Probe(), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>The worker runs as root: jobs get <see cref="JobIsolationOptions.Uid"/> instead.</summary>
    public bool Privileged { get; }

    /// <summary>The operator opted out: jobs run with the worker's user and view of the machine.</summary>
    public bool Disabled => _options.Disabled;

    /// <summary>Why jobs cannot be isolated here, or null when they can (tried once, with a job that does nothing).</summary>
    public string? Unavailable => Disabled ? null : _unavailable.Value;

    /// <summary>The owner a job's working folder needs, when the job runs as another user than the worker.</summary>
    public (int Uid, int Gid)? JobOwner => Disabled || !Privileged ? null : (_options.Uid, _options.Gid);

    /// <summary>Says at start how local jobs will run, so a machine without isolation is noticed before a job is refused.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (Disabled)
        {
            LogDisabled(_logger);
        }
        else if (Unavailable is { } reason)
        {
            LogUnavailable(_logger, reason);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The one error a refused local job ends with.</summary>
    public string RefusalMessage(string reason) =>
        $"local jobs run isolated from the worker (user, PID and mount namespaces) and that is unavailable here: {reason}. " +
        "Allow unprivileged user namespaces (user.max_user_namespaces > 0; kernel.unprivileged_userns_clone=1 on Debian; " +
        "kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04 or later), " +
        "or opt out with TrainingWorker:Isolation:Disabled=true, which lets jobs read the worker's secrets.";

    /// <summary>A start for <paramref name="command"/>: isolated, unless the operator opted out. Always in a new session.</summary>
    public ProcessStartInfo StartInfo(IReadOnlyList<string> command, string workingDirectory)
    {
        ArgumentNullException.ThrowIfNull(command);
        var start = new ProcessStartInfo("setsid")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        // setsid execs in place (the child is not a group leader): the pid is the process group of everything below.
        start.ArgumentList.Add("--");
        if (!Disabled)
        {
            AddIsolation(start.ArgumentList, _tools ?? throw new InvalidOperationException(Unavailable));
        }

        foreach (var argument in command)
        {
            start.ArgumentList.Add(argument);
        }

        return start;
    }

    /// <summary>Gives the job's user its working folder, and a way through the work directory to reach it.</summary>
    public void PrepareWorkingDirectory(string workingDirectory)
    {
        if (JobOwner is not { } owner || OperatingSystem.IsWindows())
        {
            return;
        }

        // Traverse only: the job may reach its own folder without listing the other jobs'.
        var root = File.GetUnixFileMode(_workDirectory);
        if (!root.HasFlag(UnixFileMode.OtherExecute))
        {
            File.SetUnixFileMode(_workDirectory, root | UnixFileMode.OtherExecute);
        }

        if (Chown(workingDirectory, owner.Uid, owner.Gid) != 0)
        {
            throw new IOException($"could not give the job's folder to uid {owner.Uid}: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        }

        File.SetUnixFileMode(workingDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private void AddIsolation(IList<string> arguments, Tools tools)
    {
        if (Privileged)
        {
            foreach (var argument in new[] { tools.Setpriv, $"--reuid={_options.Uid}", $"--regid={_options.Gid}", "--clear-groups", "--" })
            {
                arguments.Add(argument);
            }
        }

        // --kill-child: should unshare itself die, the namespace dies with it rather than run on unowned.
        foreach (var argument in new[] { tools.Unshare, "--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "--", tools.Shell, "-c", FirstProcess, "goblin-job" })
        {
            arguments.Add(argument);
        }

        foreach (var path in HiddenPaths())
        {
            arguments.Add(path);
        }

        foreach (var argument in new[] { "--", tools.Env, "--default-signal=INT,QUIT", tools.Setpriv, "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--" })
        {
            arguments.Add(argument);
        }
    }

    private IEnumerable<string> HiddenPaths()
    {
        var home = Environment.GetEnvironmentVariable("HOME");
        foreach (var path in _options.HiddenPaths)
        {
            // "--" ends the list in the first process; a relative path would be the job's own folder.
            var expanded = path.StartsWith("~/", StringComparison.Ordinal) ? (home is { Length: > 0 } ? Path.Combine(home, path[2..]) : null) : path;
            if (expanded is not null && Path.IsPathFullyQualified(expanded))
            {
                yield return Path.GetFullPath(expanded);
            }
        }
    }

    private string? Probe()
    {
        var start = StartInfo(["true"], Path.GetTempPath());
        // Like a job, the probe gets none of the worker's environment.
        start.Environment.Clear();
        start.Environment["PATH"] = Environment.GetEnvironmentVariable("PATH");
        try
        {
            using var process = Process.Start(start)!;
            process.StandardInput.Close();
            var error = process.StandardError.ReadToEndAsync();
            _ = process.StandardOutput.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
            {
                process.Kill(entireProcessTree: true);
                return "trying it did not end within 30 s";
            }

            var stderr = error.GetAwaiter().GetResult().Trim();
            return process.ExitCode == 0 ? null : $"trying it failed with exit code {process.ExitCode}{(stderr.Length > 0 ? $" ({(stderr.Length > 300 ? stderr[..300] : stderr)})" : "")}";
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return $"trying it failed: {ex.Message}";
        }
    }

    private sealed record Tools(string Unshare, string Setpriv, string Env, string Shell);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "chown", SetLastError = true, StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static partial int Chown(string path, int owner, int group);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Local jobs run without isolation (TrainingWorker:Isolation:Disabled): they run as the worker's user and can read its secrets.")]
    private static partial void LogDisabled(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "Local jobs will be refused: they cannot be isolated from the worker here ({Reason}). Allow unprivileged user namespaces, or opt out with TrainingWorker:Isolation:Disabled=true.")]
    private static partial void LogUnavailable(ILogger logger, string reason);
}
