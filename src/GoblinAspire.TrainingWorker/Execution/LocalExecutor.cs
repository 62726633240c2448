using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Options;

namespace GoblinAspire.TrainingWorker.Execution;

/// <summary>
/// Runs a job as a child process in its own process group (through util-linux <c>setsid</c>, as .NET cannot create
/// one), so a stop reaches everything the job started: SIGTERM, then SIGKILL after the grace period. The process
/// gets only an allow-listed part of the worker's environment, and runs isolated from the worker by
/// <see cref="JobSandbox"/>, because the worker holds secrets.
/// </summary>
public sealed partial class LocalExecutor(IOptions<TrainingWorkerOptions> options, JobSandbox sandbox, TimeProvider time, ILogger<LocalExecutor> logger) : IJobExecutor
{
    public const string Kind = "local";
    private const int SigTerm = 15;
    private const int SigKill = 9;
    private const int MaxLineLength = 16 * 1024;

    public string Name => Jobs.Executors.Local;

    public IReadOnlyList<string> InstanceKinds { get; } = [Kind];

    public async Task<ExecutionOutcome> RunAsync(ExecutionRequest request, IAttemptReporter reporter, AttemptControl control)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(reporter);
        ArgumentNullException.ThrowIfNull(control);
        var command = request.Job.Spec.Command!;
        if (sandbox.Unavailable is { } unavailable)
        {
            return ExecutionOutcome.Refused(sandbox.RefusalMessage(unavailable));
        }

        var workDirectory = Path.Combine(options.Value.WorkDirectory, request.Job.Id.ToString("N"));
        try
        {
            Directory.CreateDirectory(workDirectory);
            sandbox.PrepareWorkingDirectory(workDirectory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return ExecutionOutcome.Refused($"the job's folder could not be prepared: {ex.Message}");
        }

        var start = sandbox.StartInfo(command, workDirectory);
        start.Environment.Clear();
        foreach (var name in options.Value.InheritedEnvironment)
        {
            if (Environment.GetEnvironmentVariable(name) is { } value)
            {
                start.Environment[name] = value;
            }
        }

        if (sandbox.JobOwner is not null)
        {
            // The worker's home (root's) is closed to the job's user; its own folder is the one it can write.
            start.Environment["HOME"] = workDirectory;
        }

        foreach (var (name, value) in request.Environment)
        {
            start.Environment[name] = value;
        }

        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return ExecutionOutcome.Refused($"the job could not be started: {ex.Message}");
        }

        // The sandbox starts everything through setsid, which execs in place: the pid is also the process group id.
        var group = process.Id;
        process.StandardInput.Close();
        await reporter.ProvisionedAsync(
            new InstanceRecord { Kind = Kind, Id = group.ToString(System.Globalization.CultureInfo.InvariantCulture), Scope = Environment.MachineName, JobId = request.Job.Id, Attempt = request.Attempt },
            $"process group {group} on {Environment.MachineName}");
        await reporter.RunningAsync($"started {Path.GetFileName(command[0])} as process {group}");

        var stdout = PumpAsync(process.StandardOutput, "stdout", reporter);
        var stderr = PumpAsync(process.StandardError, "stderr", reporter);
        try
        {
            await process.WaitForExitAsync(control.Stopping);
        }
        catch (OperationCanceledException)
        {
            await StopAsync(process, group, control.Reason == StopReason.LeaseLost ? TimeSpan.Zero : options.Value.StopGracePeriod);
        }
        finally
        {
            // Whatever the job left running in its group goes with it.
            Signal(group, SigKill);
            await Task.WhenAll(stdout, stderr);
        }

        if (control.Reason != StopReason.None)
        {
            return ExecutionOutcome.Stopped($"stopped ({control.Reason}); exit code {ExitCode(process)}");
        }

        return process.ExitCode == 0
            ? ExecutionOutcome.Succeeded("exited with code 0")
            : ExecutionOutcome.Failed($"exited with code {ExitCode(process)}");
    }

    public Task CleanupAsync(InstanceRecord instance, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(instance);
        // Another machine's process is out of reach; that machine's worker, or its container's end, takes it.
        if (instance.Scope != Environment.MachineName || !int.TryParse(instance.Id, out var group))
        {
            return Task.CompletedTask;
        }

        // A recycled pid must not be killed: the group leader must still be this job's attempt.
        if (BelongsTo(group, instance))
        {
            LogKillingOrphan(logger, group, instance.JobId);
            Signal(group, SigKill);
        }

        return Task.CompletedTask;
    }

    private async Task StopAsync(Process process, int group, TimeSpan grace)
    {
        if (grace > TimeSpan.Zero)
        {
            Signal(group, SigTerm);
            using var graceOver = new CancellationTokenSource(grace, time);
            try
            {
                await process.WaitForExitAsync(graceOver.Token);
                return;
            }
            catch (OperationCanceledException)
            {
                // It ignored SIGTERM; SIGKILL below.
            }
        }

        Signal(group, SigKill);
        await process.WaitForExitAsync(CancellationToken.None);
    }

    private async Task PumpAsync(StreamReader reader, string stream, IAttemptReporter reporter)
    {
        try
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                reporter.Output(stream, line.Length <= MaxLineLength ? line : line[..MaxLineLength]);
            }
        }
        catch (IOException ex)
        {
            LogOutputLost(logger, stream, ex.Message);
        }
    }

    private static string ExitCode(Process process) =>
        process.HasExited ? process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture) : "unknown";

    private static bool BelongsTo(int pid, InstanceRecord instance)
    {
        try
        {
            var environ = File.ReadAllText($"/proc/{pid}/environ");
            return environ.Contains($"\0GOBLIN_JOB_ID={instance.JobId}\0", StringComparison.Ordinal)
                || environ.StartsWith($"GOBLIN_JOB_ID={instance.JobId}\0", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void Signal(int group, int signal) => _ = Kill(-group, signal);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Killing process group {Group} left by a lost attempt of job {JobId}.")]
    private static partial void LogKillingOrphan(ILogger logger, int group, Guid jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading the job's {Stream} failed: {Reason}")]
    private static partial void LogOutputLost(ILogger logger, string stream, string reason);
}
