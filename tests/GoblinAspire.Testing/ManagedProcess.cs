using System.Diagnostics;
using System.Runtime.InteropServices;

namespace GoblinAspire.Testing;

/// <summary>Where a line came from and what kind it is: a child's stdout or stderr, or the host's own report.</summary>
public enum OutputKind
{
    Standard,
    Error,
    Host,
}

/// <summary>One line of the platform's output, tagged with the resource it came from (<c>gateway-0</c>, <c>redis</c>).</summary>
public readonly record struct OutputLine(string Source, string Text, OutputKind Kind);

/// <summary>How to start one long-running child.</summary>
public sealed record ProcessLaunch(string Name, string FileName, IReadOnlyList<string> Arguments, string WorkingDirectory, IReadOnlyDictionary<string, string?> Environment);

/// <summary>
/// One long-running child of the host. It starts in its own session (util-linux <c>setsid</c>; .NET cannot make one)
/// so that a terminal's Ctrl-C reaches only the host, which then stops the children in dependency order. Output goes
/// line by line to the sink and the last lines are kept for error messages.
/// </summary>
public sealed partial class ManagedProcess : IAsyncDisposable
{
    public const int SigInt = 2;
    public const int SigKill = 9;
    public const int SigTerm = 15;
    private const int RecentLines = 400;

    private readonly Process _process;
    private readonly Queue<string> _recent = new();
    private readonly Action<OutputLine> _output;
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ManagedProcess(string name, Process process, Action<OutputLine> output)
    {
        Name = name;
        _process = process;
        _output = output;
        _process.EnableRaisingEvents = true;
        _process.OutputDataReceived += (_, e) => Receive(e.Data, OutputKind.Standard);
        _process.ErrorDataReceived += (_, e) => Receive(e.Data, OutputKind.Error);
        _process.Exited += (_, _) =>
        {
            // The parameterless wait drains the redirected output before the exit is announced.
            _process.WaitForExit();
            _exited.TrySetResult(_process.ExitCode);
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        if (_process.HasExited)
        {
            _exited.TrySetResult(_process.ExitCode);
        }
    }

    public string Name { get; }

    public int ProcessId => _process.Id;

    /// <summary>Completes with the exit code when the process has ended, for any reason.</summary>
    public Task<int> Exited => _exited.Task;

    public bool HasExited => _exited.Task.IsCompleted;

    public int ExitCode => _exited.Task.IsCompleted ? _exited.Task.Result : throw new InvalidOperationException($"{Name} is still running.");

    /// <summary>The last lines of output, stderr lines prefixed with <c>stderr: </c>.</summary>
    public IReadOnlyList<string> RecentOutput
    {
        get
        {
            lock (_recent)
            {
                return [.. _recent];
            }
        }
    }

    public static ManagedProcess Start(ProcessLaunch launch, Action<OutputLine>? output = null)
    {
        ArgumentNullException.ThrowIfNull(launch);
        var setsid = ServerBinaries.FindOnPath("setsid");
        var startInfo = new ProcessStartInfo(setsid ?? launch.FileName)
        {
            WorkingDirectory = launch.WorkingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (setsid is not null)
        {
            startInfo.ArgumentList.Add(launch.FileName);
        }

        foreach (var argument in launch.Arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in launch.Environment)
        {
            startInfo.Environment[key] = value;
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"could not start {launch.Name} ({launch.FileName})");
        return new ManagedProcess(launch.Name, process, output ?? (_ => { }));
    }

    /// <summary>Sends <paramref name="signal"/> to the process alone.</summary>
    public void Signal(int signal)
    {
        if (!HasExited)
        {
            _ = Kill(_process.Id, signal);
        }
    }

    /// <summary>
    /// Sends <paramref name="signal"/> to the process's whole group, as a terminal's Ctrl-C does (the process leads its
    /// own session when setsid started it).
    /// </summary>
    public void SignalGroup(int signal)
    {
        if (!HasExited)
        {
            _ = Kill(-_process.Id, signal);
        }
    }

    /// <summary>SIGTERM, then SIGKILL to the whole tree if it has not ended within <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (HasExited)
        {
            return;
        }

        Signal(SigTerm);
        if (await Task.WhenAny(Exited, Task.Delay(grace)) != Exited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await Exited;
    }

    /// <summary>SIGKILL to the process alone, as a crash or an OOM kill would: its own children are left to fend for themselves.</summary>
    public async Task CrashAsync()
    {
        Signal(SigKill);
        await Exited;
    }

    public async ValueTask DisposeAsync()
    {
        if (!HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await Exited;
        }

        _process.Dispose();
    }

    private void Receive(string? line, OutputKind kind)
    {
        if (line is null)
        {
            return;
        }

        lock (_recent)
        {
            if (_recent.Count == RecentLines)
            {
                _recent.Dequeue();
            }

            _recent.Enqueue(kind == OutputKind.Error ? "stderr: " + line : line);
        }

        _output(new OutputLine(Name, line, kind));
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
