using System.Text.Json;
using GoblinAspire.Testing;
using GoblinAspire.TrainingWorker.Execution;
using GoblinAspire.TrainingWorker.Jobs;
using GoblinAspire.TrainingWorker.Queue;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace GoblinAspire.TrainingWorker.Tests;

/// <summary>A local job is someone else's code on the worker's machine: it must not get at the worker's secrets.</summary>
[Collection(PlatformServers.Collection)]
public sealed class JobIsolationTests(PlatformServers servers) : IAsyncLifetime
{
    // What a job tries, as any curious job would: its parent's and the worker's environment, command line and memory
    // (the [stack] region holds the environment the worker started with), and a secret file the worker's user can read.
    private const string Snoop = """
        echo "probe: uid $(id -u) ppid $PPID, processes: $(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')"
        for f in /proc/$PPID/environ /proc/$WORKER_PID/environ /proc/$WORKER_PID/cmdline; do
          echo "== $f"; tr '\0' '\n' < "$f" 2>&1
        done
        echo "== /proc/$WORKER_PID/mem"
        grep -E '\[stack\]|\[heap\]' "/proc/$WORKER_PID/maps" 2>&1 | while read -r range rest; do
          start=$((0x${range%-*})); end=$((0x${range#*-}))
          dd if="/proc/$WORKER_PID/mem" bs=4096 skip=$((start / 4096)) count=$(((end - start) / 4096)) 2>/dev/null | tr -c '[:print:]' '\n' | grep -E '.{12,}'
        done
        echo "== $SECRET_FILE"; cat "$SECRET_FILE" 2>&1
        echo "== $(dirname "$SECRET_FILE")"; ls -la "$(dirname "$SECRET_FILE")" 2>&1
        echo probe-done
        """;

    private TrainingPlatform _platform = null!;

    public async Task InitializeAsync() => _platform = await TrainingPlatform.StartAsync(servers);

    public async Task DisposeAsync() => await _platform.DisposeAsync();

    [Fact]
    public async Task A_local_job_cannot_read_the_workers_environment_memory_or_secret_files()
    {
        var secretFolder = Directory.CreateTempSubdirectory("goblin-worker-secrets-").FullName;
        var fileSecret = $"file-secret-{Guid.NewGuid():N}";
        var secretFile = Path.Combine(secretFolder, "api-key");
        await File.WriteAllTextAsync(secretFile, fileSecret);
        File.SetUnixFileMode(secretFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var vastKey = $"vast-key-{Guid.NewGuid():N}";
        var runPodKey = $"runpod-key-{Guid.NewGuid():N}";
        var environmentSecret = $"env-secret-{Guid.NewGuid():N}";
        // A real worker process, so that its /proc entries hold what its environment really holds: the database's
        // password (in the connection string) and the providers' keys, as the AppHost gives them.
        var settings = _platform.WorkerSettings(new Dictionary<string, string?>
        {
            ["TrainingWorker__VastAi__ApiKey"] = vastKey,
            ["TrainingWorker__RunPod__ApiKey"] = runPodKey,
            ["GOBLIN_TEST_WORKER_SECRET"] = environmentSecret,
            ["TrainingWorker__Isolation__HiddenPaths__0"] = secretFolder,
        });
        Assert.Contains(servers.Postgres.Password, settings["ConnectionStrings__trainingdb"], StringComparison.Ordinal);
        await using var worker = ServiceProcess.Start("TrainingWorker", settings.ToDictionary(kv => kv.Key, kv => kv.Value ?? ""));
        await worker.WaitForHealthyAsync(TimeSpan.FromSeconds(60));
        var workerPid = worker.Process.ProcessId;
        Assert.Contains(vastKey, await File.ReadAllTextAsync($"/proc/{workerPid}/environ"), StringComparison.Ordinal);
        using var client = new HttpClient { BaseAddress = worker.BaseAddress };

        var submitted = await TrainingPlatform.SubmitAsync(client, new
        {
            name = "snoop",
            command = new[] { "sh", "-c", Snoop },
            env = new Dictionary<string, string> { ["WORKER_PID"] = workerPid.ToString(System.Globalization.CultureInfo.InvariantCulture), ["SECRET_FILE"] = secretFile },
            max_attempts = 1,
        });
        var id = submitted.GetProperty("id").GetString()!;
        var job = await TrainingPlatform.WaitForStateAsync(client, id, TimeSpan.FromSeconds(60), "succeeded", "failed", "dead");
        var logs = await client.GetStringAsync($"/jobs/{id}/logs");
        Assert.True(job.GetProperty("state").GetString() == "succeeded", $"{job}\n{logs}");
        Assert.Contains("== /proc/", logs, StringComparison.Ordinal);
        Assert.Contains("probe-done", logs, StringComparison.Ordinal);
        foreach (var secret in new[] { vastKey, runPodKey, environmentSecret, servers.Postgres.Password, fileSecret })
        {
            Assert.False(logs.Contains(secret, StringComparison.Ordinal), $"the job read a secret of the worker:\n{logs}");
        }
    }

    [Fact]
    public async Task Without_namespaces_a_local_job_is_refused_with_one_clear_error()
    {
        var nowhere = Directory.CreateTempSubdirectory("goblin-no-tools-").FullName;
        var sandbox = new JobSandbox(Options.Create(new TrainingWorkerOptions()), NullLogger<JobSandbox>.Instance, [nowhere], privileged: false);
        Assert.Contains("unshare", sandbox.Unavailable, StringComparison.Ordinal);

        var executor = new LocalExecutor(Options.Create(new TrainingWorkerOptions()), sandbox, TimeProvider.System, NullLogger<LocalExecutor>.Instance);
        var reporter = new RecordingReporter();
        using var control = new AttemptControl();
        var outcome = await executor.RunAsync(new ExecutionRequest(LocalJob(), new Dictionary<string, string>()), reporter, control);
        Assert.Equal(OutcomeKind.Refused, outcome.Kind);
        Assert.Contains("isolated", outcome.Message, StringComparison.Ordinal);
        Assert.Contains("TrainingWorker:Isolation:Disabled=true", outcome.Message, StringComparison.Ordinal);
        Assert.Equal(0, reporter.Provisioned);
    }

    [Fact]
    public async Task Opting_out_of_isolation_is_a_warning_at_start_and_jobs_then_run_unisolated()
    {
        var options = Options.Create(new TrainingWorkerOptions { Isolation = { Disabled = true } });
        var nowhere = Directory.CreateTempSubdirectory("goblin-no-tools-").FullName;
        var logger = new RecordingLogger<JobSandbox>();
        var sandbox = new JobSandbox(options, logger, [nowhere], privileged: false);
        await sandbox.StartAsync(CancellationToken.None);
        var warning = Assert.Single(logger.Entries);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("without isolation", warning.Message, StringComparison.Ordinal);
        Assert.Null(sandbox.Unavailable);
        Assert.Equal(["setsid", "--", "true"], [sandbox.StartInfo(["true"], Path.GetTempPath()).FileName, .. sandbox.StartInfo(["true"], Path.GetTempPath()).ArgumentList]);
    }

    [Fact]
    public async Task Isolated_jobs_still_stop_gracefully_on_sigterm_with_everything_they_started()
    {
        var options = Options.Create(new TrainingWorkerOptions { StopGracePeriod = TimeSpan.FromSeconds(30), WorkDirectory = Directory.CreateTempSubdirectory("goblin-jobs-").FullName });
        var sandbox = new JobSandbox(options, NullLogger<JobSandbox>.Instance);
        Assert.Null(sandbox.Unavailable);
        var executor = new LocalExecutor(options, sandbox, TimeProvider.System, NullLogger<LocalExecutor>.Instance);
        var reporter = new RecordingReporter();
        using var control = new AttemptControl();
        // The job is not the namespace's first process, so SIGTERM reaches it (a first process without a handler
        // would never see it); its child, still in the group, gets it too, and the job waits for it before exiting.
        var job = LocalJob(["sh", "-c", "trap 'wait; echo job-got-term; exit 9' TERM; sh -c 'trap \"echo child-got-term; exit 0\" TERM; echo started; sleep 60 & wait' & wait"]);
        var running = executor.RunAsync(new ExecutionRequest(job, new Dictionary<string, string> { ["GOBLIN_JOB_ID"] = job.Id.ToString() }), reporter, control);
        await Eventually.HoldsAsync(() => Task.FromResult(reporter.Lines.Contains("started")), TimeSpan.FromSeconds(30), "the job starts");
        control.Stop(StopReason.Cancelled);
        var outcome = await running;
        Assert.Equal(OutcomeKind.Stopped, outcome.Kind);
        Assert.Contains("exit code 9", outcome.Message, StringComparison.Ordinal);
        Assert.Contains("job-got-term", reporter.Lines);
        Assert.Contains("child-got-term", reporter.Lines);
    }

    [Fact]
    public async Task As_an_ordinary_user_a_job_sees_no_process_of_the_machine_and_no_hidden_path_and_cannot_undo_that()
    {
        // The path a developer's worker takes (no uid to switch to): the job is root only inside its namespaces.
        var secretFolder = Directory.CreateTempSubdirectory("goblin-user-secrets-").FullName;
        var fileSecret = $"file-secret-{Guid.NewGuid():N}";
        var secretFile = Path.Combine(secretFolder, "secrets.json");
        await File.WriteAllTextAsync(secretFile, fileSecret);
        var options = Options.Create(new TrainingWorkerOptions { WorkDirectory = Directory.CreateTempSubdirectory("goblin-jobs-").FullName, Isolation = { HiddenPaths = [secretFolder, secretFile + ".missing"] } });
        var sandbox = new JobSandbox(options, NullLogger<JobSandbox>.Instance, (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':'), privileged: false);
        var executor = new LocalExecutor(options, sandbox, TimeProvider.System, NullLogger<LocalExecutor>.Instance);
        var reporter = new RecordingReporter();
        using var control = new AttemptControl();
        var script = $$"""
            echo "processes: $(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')"
            cat /proc/{{Environment.ProcessId}}/environ 2>&1 | head -c 200; echo
            cat /proc/1/environ 2>&1 | head -c 200; echo
            cat {{secretFile}} 2>&1; echo
            umount {{secretFolder}} 2>&1; umount /proc 2>&1
            cat {{secretFile}} 2>&1; echo
            echo done
            """;
        var outcome = await executor.RunAsync(new ExecutionRequest(LocalJob(["sh", "-c", script]), new Dictionary<string, string>()), reporter, control);
        var output = string.Join("\n", reporter.Lines);
        Assert.True(outcome.Kind == OutcomeKind.Succeeded, $"{outcome}\n{output}");
        Assert.Contains("done", reporter.Lines);
        Assert.DoesNotContain(fileSecret, output, StringComparison.Ordinal);
        var processes = reporter.Lines.Single(l => l.StartsWith("processes: ", StringComparison.Ordinal))["processes: ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList();
        Assert.DoesNotContain(Environment.ProcessId, processes);
        Assert.All(processes, pid => Assert.True(pid < 100, $"a pid of the machine's, not the job's namespace: {output}"));
    }

    private static JobRecord LocalJob(List<string>? command = null)
    {
        var spec = new JobSpec { Name = "isolated", Queue = JobQueues.Default, Executor = Executors.Local, Command = command ?? ["true"] };
        var now = DateTimeOffset.UtcNow;
        return new JobRecord(Guid.NewGuid(), "isolated", JobQueues.Default, 0, Executors.Local, spec, null, JobStates.Running, 1, 0, 1, now, "test", now, false, 0, null, null, null, null, "gs://bucket/checkpoints/x/", null, now, now, null, now);
    }

    private sealed class RecordingReporter : IAttemptReporter
    {
        private readonly List<string> _lines = [];

        public int Provisioned { get; private set; }

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lines)
                {
                    return [.. _lines];
                }
            }
        }

        public Task ProvisionedAsync(InstanceRecord instance, string message)
        {
            Provisioned++;
            return Task.CompletedTask;
        }

        public Task RunningAsync(string message) => Task.CompletedTask;

        public void Output(string stream, string line)
        {
            lock (_lines)
            {
                _lines.Add(line);
            }
        }

        public Task<bool> ChargeAsync(decimal usd) => Task.FromResult(true);

        public Task<string?> RunStatusAsync() => Task.FromResult<string?>(null);
    }
}

/// <summary>Keeps what was logged, for tests about what a component says.</summary>
public sealed class RecordingLogger<T> : ILogger<T>
{
    private readonly List<(LogLevel Level, string Message)> _entries = [];

    public IReadOnlyList<(LogLevel Level, string Message)> Entries
    {
        get
        {
            lock (_entries)
            {
                return [.. _entries];
            }
        }
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        lock (_entries)
        {
            _entries.Add((logLevel, formatter(state, exception)));
        }
    }
}
