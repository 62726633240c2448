using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GoblinAspire.Testing;

namespace GoblinAspire.TrainingWorker.Tests;

[Collection(PlatformServers.Collection)]
public sealed class JobLifecycleTests(PlatformServers servers) : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private TrainingPlatform _platform = null!;
    private TestWebHost _worker = null!;

    public async Task InitializeAsync()
    {
        _platform = await TrainingPlatform.StartAsync(servers);
        // No low_priority slots here: tests that need a job to wait, or a worker of their own, use that queue.
        _worker = await _platform.StartWorkerAsync(new Dictionary<string, string?> { ["TrainingWorker__QueueConcurrency__low_priority"] = "0" });
    }

    public async Task DisposeAsync() => await _platform.DisposeAsync();

    [Fact]
    public async Task The_example_trainer_logs_to_mlflow_checkpoints_and_ends_as_a_registered_staging_version()
    {
        var submitted = await TrainingPlatform.SubmitAsync(_worker.Client, new
        {
            name = "linear-demo",
            queue = "training",
            command = new[] { "dotnet", TrainingPlatform.TrainerPath, "--steps", "120", "--checkpoint-every-steps", "50" },
            experiment = "lifecycle",
            registered_model = "linear-demo-model",
            output_artifact = "model/model.json",
            register_stage = "Staging",
        });
        var id = submitted.GetProperty("id").GetString()!;
        Assert.Equal("queued", submitted.GetProperty("state").GetString());
        Assert.StartsWith($"gs://goblin-artifacts/checkpoints/{id}/", submitted.GetProperty("checkpoint_uri").GetString(), StringComparison.Ordinal);

        var job = await TrainingPlatform.WaitForStateAsync(_worker.Client, id, Patience, "succeeded", "failed", "dead");
        Assert.True(job.GetProperty("state").GetString() == "succeeded", job.ToString());
        Assert.Equal(1, job.GetProperty("attempt").GetInt32());
        Assert.Equal("1", job.GetProperty("model_version").GetString());

        var registry = _platform.Registry.Client;
        var runId = job.GetProperty("mlflow_run_id").GetString()!;
        var run = await registry.GetFromJsonAsync<JsonElement>($"/api/2.0/mlflow/runs/get?run_id={runId}");
        Assert.Equal("FINISHED", run.GetProperty("run").GetProperty("info").GetProperty("status").GetString());
        var metrics = run.GetProperty("run").GetProperty("data").GetProperty("metrics").EnumerateArray().ToDictionary(m => m.GetProperty("key").GetString()!, m => m.GetProperty("value").GetDouble());
        Assert.InRange(metrics["weight"], 2.9, 3.1);
        Assert.InRange(metrics["final_loss"], 0, 0.01);
        var tags = run.GetProperty("run").GetProperty("data").GetProperty("tags").EnumerateArray().ToDictionary(t => t.GetProperty("key").GetString()!, t => t.GetProperty("value").GetString());
        Assert.Equal(id, tags["goblin.job_id"]);

        var version = await registry.GetFromJsonAsync<JsonElement>("/api/2.0/mlflow/model-versions/get?name=linear-demo-model&version=1");
        Assert.Equal("Staging", version.GetProperty("model_version").GetProperty("current_stage").GetString());
        Assert.Equal(runId, version.GetProperty("model_version").GetProperty("run_id").GetString());

        // The checkpoint is in the store, at the job's stable location.
        using var checkpoint = await registry.GetAsync($"/storage/v1/b/goblin-artifacts/o/{Uri.EscapeDataString($"checkpoints/{id}/checkpoint")}?alt=media");
        Assert.Equal(HttpStatusCode.OK, checkpoint.StatusCode);
        Assert.Contains("\"step\":100", await checkpoint.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var logs = await _worker.Client.GetStringAsync($"/jobs/{id}/logs");
        Assert.Contains("no checkpoint: starting from step 0", logs, StringComparison.Ordinal);
        Assert.Contains("done: w=", logs, StringComparison.Ordinal);

        var events = await _worker.Client.GetFromJsonAsync<JsonElement>($"/jobs/{id}/events");
        var kinds = events.GetProperty("events").EnumerateArray().Select(e => e.GetProperty("kind").GetString()).ToList();
        Assert.Equal(["submitted", "claimed", "mlflow_run", "provisioned", "running", "succeeded"], kinds);
    }

    [Fact]
    public async Task A_failing_attempt_is_retried_and_the_next_resumes_from_the_checkpoint_location()
    {
        var submitted = await TrainingPlatform.SubmitAsync(_worker.Client, new
        {
            name = "flaky",
            command = new[] { "dotnet", TrainingPlatform.TrainerPath, "--steps", "40", "--fail-attempts", "1" },
            max_attempts = 3,
        });
        var id = submitted.GetProperty("id").GetString()!;
        var job = await TrainingPlatform.WaitForStateAsync(_worker.Client, id, Patience, "succeeded", "dead", "failed");
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        Assert.Equal(2, job.GetProperty("attempt").GetInt32());
        Assert.Equal(1, job.GetProperty("failures").GetInt32());

        var events = await _worker.Client.GetFromJsonAsync<JsonElement>($"/jobs/{id}/events");
        var retry = events.GetProperty("events").EnumerateArray().Single(e => e.GetProperty("kind").GetString() == "retrying");
        Assert.Contains("exited with code 3", retry.GetProperty("message").GetString(), StringComparison.Ordinal);
        var firstAttemptLogs = await _worker.Client.GetStringAsync($"/jobs/{id}/logs?attempt=1");
        Assert.Contains("failing on purpose", firstAttemptLogs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_job_that_always_fails_is_dead_after_its_max_attempts()
    {
        var submitted = await TrainingPlatform.SubmitAsync(_worker.Client, new { name = "doomed", command = new[] { "sh", "-c", "echo nope >&2; exit 7" }, max_attempts = 2 });
        var id = submitted.GetProperty("id").GetString()!;
        var job = await TrainingPlatform.WaitForStateAsync(_worker.Client, id, Patience, "dead", "succeeded");
        Assert.Equal("dead", job.GetProperty("state").GetString());
        Assert.Equal(2, job.GetProperty("failures").GetInt32());
        Assert.Contains("exited with code 7", job.GetProperty("last_error").GetString(), StringComparison.Ordinal);
        Assert.Contains("nope", await _worker.Client.GetStringAsync($"/jobs/{id}/logs"), StringComparison.Ordinal);

        var runs = await _platform.Registry.Client.GetFromJsonAsync<JsonElement>($"/api/2.0/mlflow/runs/get?run_id={job.GetProperty("mlflow_run_id").GetString()}");
        Assert.Equal("FAILED", runs.GetProperty("run").GetProperty("info").GetProperty("status").GetString());
    }

    [Fact]
    public async Task Cancelling_a_running_job_stops_its_whole_process_group_within_seconds()
    {
        var marker = Path.Combine(Path.GetTempPath(), $"goblin-cancel-{Guid.NewGuid():N}");
        // The job starts a grandchild that would outlive a plain kill of the job's own process.
        var submitted = await TrainingPlatform.SubmitAsync(_worker.Client, new
        {
            name = "sleeper",
            command = new[] { "sh", "-c", $"(sleep 30; touch {marker}) & echo started; wait" },
        });
        var id = submitted.GetProperty("id").GetString()!;
        await Eventually.HoldsAsync(async () => (await _worker.Client.GetStringAsync($"/jobs/{id}/logs")).Contains("started", StringComparison.Ordinal), Patience, "the job prints");

        using var cancel = await _worker.Client.PostAsync($"/jobs/{id}/cancel", null);
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        var job = await TrainingPlatform.WaitForStateAsync(_worker.Client, id, TimeSpan.FromSeconds(10), "cancelled");
        Assert.Equal("cancelled", job.GetProperty("state").GetString());
        Assert.False(job.TryGetProperty("instance", out _));

        using var again = await _worker.Client.PostAsync($"/jobs/{id}/cancel", null);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        Assert.Equal("application/problem+json", again.Content.Headers.ContentType?.MediaType);
        await Task.Delay(500);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task A_queued_job_is_cancelled_at_once_and_never_runs()
    {
        var worker = await _platform.StartWorkerAsync(new Dictionary<string, string?> { ["TrainingWorker__QueueConcurrency__low_priority"] = "0" });
        // Neither worker has a low_priority slot.
        var submitted = await TrainingPlatform.SubmitAsync(worker.Client, new { name = "never", queue = "low_priority", command = new[] { "true" }, priority = 5 });
        var id = submitted.GetProperty("id").GetString()!;
        using var cancel = await worker.Client.PostAsync($"/jobs/{id}/cancel", null);
        var body = await cancel.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        Assert.Equal("cancelled", body.GetProperty("state").GetString());
        var events = await worker.Client.GetFromJsonAsync<JsonElement>($"/jobs/{id}/events");
        Assert.DoesNotContain(events.GetProperty("events").EnumerateArray(), e => e.GetProperty("kind").GetString() == "claimed");
    }

    [Fact]
    public async Task A_job_past_its_timeout_is_stopped_and_counts_as_a_failed_attempt()
    {
        var submitted = await TrainingPlatform.SubmitAsync(_worker.Client, new { name = "slow", command = new[] { "sleep", "30" }, timeout_seconds = 1, max_attempts = 1 });
        var id = submitted.GetProperty("id").GetString()!;
        var job = await TrainingPlatform.WaitForStateAsync(_worker.Client, id, TimeSpan.FromSeconds(20), "dead");
        Assert.Contains("timed out", job.GetProperty("last_error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_same_idempotency_key_returns_the_first_job()
    {
        var spec = new { name = "once", command = new[] { "true" }, idempotency_key = $"key-{Guid.NewGuid():N}" };
        using var first = await _worker.Client.PostAsJsonAsync("/jobs", spec);
        using var second = await _worker.Client.PostAsJsonAsync("/jobs", spec with { });
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        var a = await first.Content.ReadFromJsonAsync<JsonElement>();
        var b = await second.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(a.GetProperty("id").GetString(), b.GetProperty("id").GetString());
        Assert.Equal($"/jobs/{a.GetProperty("id").GetString()}", first.Headers.Location?.OriginalString);
    }

    [Fact]
    public async Task Logs_follow_live_output_until_the_job_ends_and_jobs_get_no_worker_secrets()
    {
        Environment.SetEnvironmentVariable("GOBLIN_TEST_WORKER_SECRET", "do-not-leak");
        try
        {
            var submitted = await TrainingPlatform.SubmitAsync(_worker.Client, new
            {
                name = "chatty",
                command = new[] { "sh", "-c", "env | sort; for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done" },
                env = new Dictionary<string, string> { ["MY_SETTING"] = "42" },
            });
            var id = submitted.GetProperty("id").GetString()!;
            using var response = await _worker.Client.GetAsync($"/jobs/{id}/logs?follow=true", HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
            var text = await response.Content.ReadAsStringAsync();
            Assert.Contains("line 5", text, StringComparison.Ordinal);
            Assert.Contains("MY_SETTING=42", text, StringComparison.Ordinal);
            Assert.Contains($"GOBLIN_JOB_ID={id}", text, StringComparison.Ordinal);
            Assert.Contains("MLFLOW_RUN_ID=", text, StringComparison.Ordinal);
            Assert.Contains("GOBLIN_CHECKPOINT_UPLOAD_URL=http", text, StringComparison.Ordinal);
            Assert.DoesNotContain("do-not-leak", text, StringComparison.Ordinal);
            Assert.DoesNotContain("ConnectionStrings", text, StringComparison.Ordinal);
            var job = await TrainingPlatform.GetJobAsync(_worker.Client, id);
            Assert.Equal("succeeded", job.GetProperty("state").GetString());
        }
        finally
        {
            Environment.SetEnvironmentVariable("GOBLIN_TEST_WORKER_SECRET", null);
        }
    }

    [Fact]
    public async Task A_job_in_its_final_state_has_all_its_output_in_its_logs()
    {
        // A race between the job's end and its output reaching the database: several jobs, each read at once.
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            var submitted = await TrainingPlatform.SubmitAsync(_worker.Client, new { name = $"brief-{i}", command = new[] { "sh", "-c", "echo hello; echo bye >&2" } });
            ids.Add(submitted.GetProperty("id").GetString()!);
        }

        // Each job watched on its own, so that every one is read as soon as it is seen final.
        var ended = await Task.WhenAll(ids.Select(async id =>
        {
            var job = await TrainingPlatform.WaitForStateAsync(_worker.Client, id, Patience, "succeeded", "failed", "dead");
            return (Job: job, Logs: await _worker.Client.GetStringAsync($"/jobs/{id}/logs"));
        }));
        foreach (var (job, logs) in ended)
        {
            Assert.True(job.GetProperty("state").GetString() == "succeeded", job.ToString());
            Assert.Equal(["bye", "hello"], logs.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
        }
    }

    [Fact]
    public async Task A_nul_byte_in_a_jobs_output_costs_it_none_of_its_logs()
    {
        // PostgreSQL text cannot hold NUL; the line is kept with a replacement character instead.
        var submitted = await TrainingPlatform.SubmitAsync(_worker.Client, new { name = "nul", command = new[] { "sh", "-c", "echo first; printf 'before\\000after\\n'; echo last >&2" } });
        var id = submitted.GetProperty("id").GetString()!;
        await TrainingPlatform.WaitForStateAsync(_worker.Client, id, Patience, "succeeded");
        var logs = await _worker.Client.GetStringAsync($"/jobs/{id}/logs");
        Assert.Equal(["before\uFFFDafter", "first", "last"], logs.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Output_past_the_limit_is_dropped_with_one_marker_line()
    {
        var worker = await _platform.StartWorkerAsync(new Dictionary<string, string?> { ["TrainingWorker__MaxLogBytesPerAttempt"] = "4096" });
        var submitted = await TrainingPlatform.SubmitAsync(worker.Client, new { name = "flood", queue = "low_priority", command = new[] { "sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo flood-line-$i; i=$((i+1)); done" } });
        var id = submitted.GetProperty("id").GetString()!;
        await TrainingPlatform.WaitForStateAsync(worker.Client, id, Patience, "succeeded");
        var logs = await worker.Client.GetStringAsync($"/jobs/{id}/logs");
        Assert.InRange(Encoding.UTF8.GetByteCount(logs), 1000, 4096 + 200);
        Assert.Contains("[goblin] output beyond 4096 bytes is not stored", logs, StringComparison.Ordinal);
        Assert.DoesNotContain("flood-line-1999", logs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Listing_filters_by_state_and_queue_and_pages()
    {
        for (var i = 0; i < 3; i++)
        {
            await TrainingPlatform.SubmitAsync(_worker.Client, new { name = $"listed-{i}", queue = "inference", command = new[] { "true" } });
        }

        var page = await _worker.Client.GetFromJsonAsync<JsonElement>("/jobs?queue=inference&limit=2");
        Assert.Equal(2, page.GetProperty("jobs").GetArrayLength());
        var next = page.GetProperty("next_before").GetString();
        var rest = await _worker.Client.GetFromJsonAsync<JsonElement>($"/jobs?queue=inference&limit=2&before={next}");
        Assert.Equal(1, rest.GetProperty("jobs").GetArrayLength());
        Assert.All(page.GetProperty("jobs").EnumerateArray().Concat(rest.GetProperty("jobs").EnumerateArray()), j => Assert.Equal("inference", j.GetProperty("queue").GetString()));

        using var bad = await _worker.Client.GetAsync("/jobs?state=exploded&queue=gpu_party&limit=0");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var problem = await bad.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(problem.GetProperty("errors").TryGetProperty("state", out _));
        Assert.True(problem.GetProperty("errors").TryGetProperty("queue", out _));
        Assert.True(problem.GetProperty("errors").TryGetProperty("limit", out _));
    }
}
