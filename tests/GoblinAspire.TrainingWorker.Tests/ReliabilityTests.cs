using System.Net.Http.Json;
using System.Text.Json;
using GoblinAspire.Testing;

namespace GoblinAspire.TrainingWorker.Tests;

/// <summary>Crashes, database restarts and competing workers, with real processes and a real PostgreSQL.</summary>
[Collection(PlatformServers.Collection)]
public sealed class ReliabilityTests(PlatformServers servers) : IAsyncLifetime
{
    private TrainingPlatform _platform = null!;

    public async Task InitializeAsync() => _platform = await TrainingPlatform.StartAsync(servers);

    public async Task DisposeAsync() => await _platform.DisposeAsync();

    [Fact]
    public async Task A_worker_killed_mid_job_is_taken_over_after_its_lease_and_the_job_resumes_from_its_checkpoint_once()
    {
        var settings = _platform.WorkerSettings(new Dictionary<string, string?> { ["TrainingWorker__LeaseDuration"] = "00:00:03" });
        await using var doomed = ServiceProcess.Start("TrainingWorker", settings.ToDictionary(kv => kv.Key, kv => kv.Value ?? ""));
        await doomed.WaitForHealthyAsync(TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = doomed.BaseAddress };
        var submitted = await TrainingPlatform.SubmitAsync(client, new
        {
            name = "survivor",
            queue = "training",
            command = new[] { "dotnet", TrainingPlatform.TrainerPath, "--steps", "150", "--step-ms", "40", "--checkpoint-every-steps", "20" },
            registered_model = "survivor-model",
            output_artifact = "model/model.json",
        });
        var id = submitted.GetProperty("id").GetString()!;
        await Eventually.HoldsAsync(async () => (await client.GetStringAsync($"/jobs/{id}/logs")).Contains("checkpoint at step 40", StringComparison.Ordinal), TimeSpan.FromSeconds(60), "two checkpoints written");

        doomed.Crash();
        var successor = await _platform.StartWorkerAsync(new Dictionary<string, string?> { ["TrainingWorker__LeaseDuration"] = "00:00:03" });
        var job = await TrainingPlatform.WaitForStateAsync(successor.Client, id, TimeSpan.FromSeconds(90), "succeeded", "failed", "dead");
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        Assert.Equal(2, job.GetProperty("attempt").GetInt32());
        Assert.Equal(0, job.GetProperty("failures").GetInt32());

        var resumed = await successor.Client.GetStringAsync($"/jobs/{id}/logs?attempt=2");
        var line = resumed.Split('\n').Single(l => l.StartsWith("resumed from checkpoint at step ", StringComparison.Ordinal));
        Assert.True(int.Parse(line["resumed from checkpoint at step ".Length..], System.Globalization.CultureInfo.InvariantCulture) >= 40, line);

        var events = (await successor.Client.GetFromJsonAsync<JsonElement>($"/jobs/{id}/events")).GetProperty("events").EnumerateArray().Select(e => e.GetProperty("kind").GetString()).ToList();
        Assert.Contains("lease_expired", events);
        Assert.Single(events, e => e == "succeeded");
        var versions = await _platform.Registry.Client.GetFromJsonAsync<JsonElement>("/api/2.0/mlflow/model-versions/search?filter=name%3D%27survivor-model%27");
        Assert.Single(versions.GetProperty("model_versions").EnumerateArray());
    }

    [Fact]
    public async Task The_mlflow_run_of_an_attempt_lost_with_its_killed_worker_ends_killed_with_an_end_time()
    {
        var lease = new Dictionary<string, string?> { ["TrainingWorker__LeaseDuration"] = "00:00:03" };
        await using var doomed = ServiceProcess.Start("TrainingWorker", _platform.WorkerSettings(lease).ToDictionary(kv => kv.Key, kv => kv.Value ?? ""));
        await doomed.WaitForHealthyAsync(TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = doomed.BaseAddress };
        // The job never ends by itself, so nothing but the worker's verdict — or the rescuer's — could end its run.
        var submitted = await TrainingPlatform.SubmitAsync(client, new { name = "abandoned", queue = "training", command = new[] { "sh", "-c", "echo started; exec sleep 600" } });
        var id = submitted.GetProperty("id").GetString()!;
        await Eventually.HoldsAsync(async () => (await client.GetStringAsync($"/jobs/{id}/logs")).Contains("started", StringComparison.Ordinal), TimeSpan.FromSeconds(60), "the job runs");
        var lostRun = (await TrainingPlatform.GetJobAsync(client, id)).GetProperty("mlflow_run_id").GetString()!;

        doomed.Crash();
        var successor = await _platform.StartWorkerAsync(lease);
        await Eventually.HoldsAsync(async () => (await TrainingPlatform.GetJobAsync(successor.Client, id)).GetProperty("attempt").GetInt32() == 2, TimeSpan.FromSeconds(60), "the job is taken over");
        JsonElement info = default;
        await Eventually.HoldsAsync(async () =>
        {
            info = (await _platform.Registry.Client.GetFromJsonAsync<JsonElement>($"/api/2.0/mlflow/runs/get?run_id={lostRun}")).GetProperty("run").GetProperty("info");
            return info.GetProperty("status").GetString() != "RUNNING";
        }, TimeSpan.FromSeconds(30), "the lost attempt's run ends");
        Assert.Equal("KILLED", info.GetProperty("status").GetString());
        Assert.True(info.TryGetProperty("end_time", out var endTime) && endTime.GetInt64() >= info.GetProperty("start_time").GetInt64(), info.ToString());

        // The new attempt gets a run of its own.
        await Eventually.HoldsAsync(async () => (await TrainingPlatform.GetJobAsync(successor.Client, id)).GetProperty("mlflow_run_id").GetString() != lostRun, TimeSpan.FromSeconds(30), "the new attempt opens its run");
        using var cancel = await successor.Client.PostAsync($"/jobs/{id}/cancel", null);
        await TrainingPlatform.WaitForStateAsync(successor.Client, id, TimeSpan.FromSeconds(30), "cancelled");
    }

    [Fact]
    public async Task A_postgres_restart_mid_run_neither_loses_nor_duplicates_the_job()
    {
        var worker = await _platform.StartWorkerAsync(new Dictionary<string, string?> { ["TrainingWorker__LeaseDuration"] = "00:00:15", ["TrainingWorker__HeartbeatInterval"] = "00:00:01" });
        var submitted = await TrainingPlatform.SubmitAsync(worker.Client, new
        {
            name = "steady",
            queue = "training",
            command = new[] { "dotnet", TrainingPlatform.TrainerPath, "--steps", "120", "--step-ms", "40", "--checkpoint-every-steps", "20" },
            registered_model = "steady-model",
            output_artifact = "model/model.json",
            max_attempts = 3,
        });
        var id = submitted.GetProperty("id").GetString()!;
        await TrainingPlatform.WaitForStateAsync(worker.Client, id, TimeSpan.FromSeconds(60), "running");

        await servers.Postgres.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(1));
        await servers.Postgres.StartAgainAsync();

        var job = await TrainingPlatform.WaitForStateAsync(worker.Client, id, TimeSpan.FromSeconds(120), "succeeded", "failed", "dead");
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        var events = (await worker.Client.GetFromJsonAsync<JsonElement>($"/jobs/{id}/events")).GetProperty("events").EnumerateArray().Select(e => e.GetProperty("kind").GetString()).ToList();
        Assert.Single(events, e => e == "succeeded");
        Assert.Single(events, e => e == "submitted");
        var versions = await _platform.Registry.Client.GetFromJsonAsync<JsonElement>("/api/2.0/mlflow/model-versions/search?filter=name%3D%27steady-model%27");
        Assert.Single(versions.GetProperty("model_versions").EnumerateArray());
    }

    [Fact]
    public async Task Two_workers_run_each_of_200_jobs_exactly_once()
    {
        var ledgerFolder = Directory.CreateTempSubdirectory("goblin-ledger-").FullName;
        // Jobs of a worker running as root run as an unprivileged user: the folder must be theirs to write in too.
        File.SetUnixFileMode(ledgerFolder, (UnixFileMode)0x3FF);
        var ledger = Path.Combine(ledgerFolder, "runs.txt");
        var settings = new Dictionary<string, string?> { ["TrainingWorker__QueueConcurrency__default"] = "16" };
        var first = await _platform.StartWorkerAsync(settings);
        var second = await _platform.StartWorkerAsync(settings);
        var ids = new List<string>();
        for (var i = 0; i < 200; i++)
        {
            // Each run appends one line; O_APPEND makes concurrent appends of short lines whole.
            var job = await TrainingPlatform.SubmitAsync(i % 2 == 0 ? first.Client : second.Client, new { name = $"once-{i}", command = new[] { "sh", "-c", $"echo \"$GOBLIN_JOB_ID $GOBLIN_ATTEMPT\" >> {ledger}" } });
            ids.Add(job.GetProperty("id").GetString()!);
        }

        await Eventually.HoldsAsync(async () =>
        {
            var page = await first.Client.GetFromJsonAsync<JsonElement>("/jobs?state=succeeded&limit=1000");
            return page.GetProperty("jobs").EnumerateArray().Count(j => j.GetProperty("name").GetString()!.StartsWith("once-", StringComparison.Ordinal)) == 200;
        }, TimeSpan.FromSeconds(180), "all 200 jobs succeed");

        var lines = await File.ReadAllLinesAsync(ledger);
        Assert.Equal(200, lines.Length);
        Assert.Equal(ids.Order(StringComparer.Ordinal), lines.Select(l => l.Split(' ')[0]).Order(StringComparer.Ordinal));
        Assert.All(lines, l => Assert.EndsWith(" 1", l, StringComparison.Ordinal));
        var owners = new HashSet<string>();
        foreach (var id in ids.Take(40))
        {
            var claims = (await first.Client.GetFromJsonAsync<JsonElement>($"/jobs/{id}/events")).GetProperty("events").EnumerateArray().Where(e => e.GetProperty("kind").GetString() == "claimed").ToList();
            owners.Add(Assert.Single(claims).GetProperty("message").GetString()!.Split(" by ")[1]);
        }

        Assert.Equal(2, owners.Count);
    }
}
