using System.Net.Http.Json;
using System.Text.Json;
using GoblinAspire.Testing;
using GoblinAspire.TrainingWorker.Tests.StandIns;

namespace GoblinAspire.TrainingWorker.Tests;

/// <summary>The Vast.ai and RunPod executors against stand-ins that speak those APIs, with a real registry and database.</summary>
[Collection(PlatformServers.Collection)]
public sealed class RemoteExecutorTests(PlatformServers servers) : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private TrainingPlatform _platform = null!;
    private VastAiStandIn _vast = null!;
    private RunPodStandIn _runpod = null!;

    public async Task InitializeAsync()
    {
        _platform = await TrainingPlatform.StartAsync(servers);
        _vast = await VastAiStandIn.StartAsync();
        _runpod = await RunPodStandIn.StartAsync();
        _vast.Offers.AddRange(
        [
            VastAiStandIn.Offer(1, "RTX 4090", 0.95m, 0.99),           // over the 0.80 $/h cap
            VastAiStandIn.Offer(2, "RTX 3090", 0.20m, 0.50, 0.15m),    // too unreliable
            VastAiStandIn.Offer(3, "RTX 4090", 0.55m, 0.97, 0.40m),    // preferred GPU, under the cap: chosen
            VastAiStandIn.Offer(4, "RTX 3090", 0.30m, 0.99, 0.22m),    // cheaper but a later preference
            VastAiStandIn.Offer(5, "A100 SXM4", 0.70m, 0.99),          // not asked for
        ]);
    }

    public async Task DisposeAsync()
    {
        await _platform.DisposeAsync();
        await _vast.DisposeAsync();
        await _runpod.DisposeAsync();
    }

    private Task<TestWebHost> WorkerAsync(Dictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["TrainingWorker__VastAi__BaseUrl"] = _vast.Host.BaseAddress.AbsoluteUri,
            ["TrainingWorker__VastAi__ApiKey"] = VastAiStandIn.ApiKey,
            ["TrainingWorker__VastAi__PollInterval"] = "00:00:00.100",
            ["TrainingWorker__RunPod__BaseUrl"] = _runpod.PodsUrl.AbsoluteUri,
            ["TrainingWorker__RunPod__ServerlessBaseUrl"] = _runpod.ServerlessUrl.AbsoluteUri,
            ["TrainingWorker__RunPod__ApiKey"] = RunPodStandIn.ApiKey,
            ["TrainingWorker__RunPod__PollInterval"] = "00:00:00.100",
            ["TrainingWorker__SpendInterval"] = "00:00:00.100",
            // Only a test's own odd worker serves high_priority, so its jobs cannot land on a normal worker.
            ["TrainingWorker__QueueConcurrency__high_priority"] = "0",
        };
        foreach (var (key, value) in extra ?? [])
        {
            settings[key] = value;
        }

        return _platform.StartWorkerAsync(settings);
    }

    private static object RemoteSpec(string name, string executor, object? resources = null, decimal? maxTotal = null, string? registered = null, string queue = "training") => new
    {
        name,
        executor,
        queue,
        image = "ghcr.io/goblin/trainer:1.4.2",
        command = new[] { "python", "train.py", "--epochs", "3" },
        resources = resources ?? new { gpu_count = 1, interruptible = true },
        max_total_usd = maxTotal,
        registered_model = registered,
        output_artifact = registered is null ? null : "model/model.json",
    };

    [Fact]
    public async Task Vast_picks_the_preferred_gpu_under_the_cap_and_reliability_floor_runs_registers_and_destroys()
    {
        var worker = await WorkerAsync();
        var submitted = await TrainingPlatform.SubmitAsync(worker.Client, RemoteSpec("vast-ok", "vastai", registered: "vast-model"));
        var id = submitted.GetProperty("id").GetString()!;
        var job = await TrainingPlatform.WaitForStateAsync(worker.Client, id, Patience, "succeeded", "failed", "dead", "recovering");
        Assert.True(job.GetProperty("state").GetString() == "succeeded", job.ToString());
        Assert.Equal("1", job.GetProperty("model_version").GetString());
        Assert.True(job.GetProperty("spend_usd").GetDecimal() > 0);

        var machine = Assert.Single(_vast.Machines);
        Assert.True(machine.Destroyed);
        Assert.Equal(0.40m, machine.Price); // the bid: the offer's min_bid, interruptible
        Assert.True(machine.IsBid);
        Assert.Equal("ghcr.io/goblin/trainer:1.4.2", machine.Image);
        Assert.Equal(["python", "train.py", "--epochs", "3"], machine.Args);
        Assert.Equal(job.GetProperty("mlflow_run_id").GetString(), machine.Env["MLFLOW_RUN_ID"]);
        Assert.StartsWith($"goblin-{Guid.Parse(id):N}-1", machine.Label, StringComparison.Ordinal);
        var query = JsonDocument.Parse(_vast.Queries.First()).RootElement;
        Assert.Equal(0.80m, query.GetProperty("dph_total").GetProperty("lte").GetDecimal());
        Assert.Equal("bid", query.GetProperty("type").GetString());
        Assert.Empty(_vast.UnauthorizedCalls);
    }

    [Fact]
    public async Task A_preempted_vast_instance_is_recovered_on_a_new_one_without_counting_an_attempt()
    {
        _vast.NextScripts.Enqueue(MachineScript.Preempt);
        var worker = await WorkerAsync();
        var id = (await TrainingPlatform.SubmitAsync(worker.Client, RemoteSpec("vast-preempt", "vastai"))).GetProperty("id").GetString()!;
        var job = await TrainingPlatform.WaitForStateAsync(worker.Client, id, Patience, "succeeded", "failed", "dead");
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        Assert.Equal(2, job.GetProperty("attempt").GetInt32());
        Assert.Equal(0, job.GetProperty("failures").GetInt32());
        Assert.Equal(2, _vast.Machines.Count);
        Assert.All(_vast.Machines, m => Assert.True(m.Destroyed));
        var events = (await worker.Client.GetFromJsonAsync<JsonElement>($"/jobs/{id}/events")).GetProperty("events").EnumerateArray().ToList();
        Assert.Contains(events, e => e.GetProperty("kind").GetString() == "recovering" && e.GetProperty("message").GetString()!.Contains("outbid", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_instance_made_by_a_create_call_that_failed_is_found_by_label_and_destroyed()
    {
        _vast.FailNextCreateAfterMaking = true;
        var worker = await WorkerAsync();
        var id = (await TrainingPlatform.SubmitAsync(worker.Client, RemoteSpec("vast-halfmade", "vastai"))).GetProperty("id").GetString()!;
        var job = await TrainingPlatform.WaitForStateAsync(worker.Client, id, Patience, "succeeded", "failed", "dead");
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        Assert.Equal(2, _vast.Machines.Count);
        Assert.All(_vast.Machines, m => Assert.True(m.Destroyed));
    }

    [Fact]
    public async Task A_job_is_stopped_before_passing_its_own_budget_and_a_spent_month_launches_nothing()
    {
        _vast.NextScripts.Enqueue(MachineScript.RunForever);
        var worker = await WorkerAsync();
        // 0.40 $/h charged per 100 ms is 0.0000112 $ a charge: the cap allows a few, then the machine must go.
        var id = (await TrainingPlatform.SubmitAsync(worker.Client, RemoteSpec("vast-capped", "vastai", maxTotal: 0.00005m))).GetProperty("id").GetString()!;
        var job = await TrainingPlatform.WaitForStateAsync(worker.Client, id, Patience, "failed", "succeeded", "dead");
        Assert.Equal("failed", job.GetProperty("state").GetString());
        Assert.Contains("budget", job.GetProperty("last_error").GetString(), StringComparison.Ordinal);
        Assert.InRange(job.GetProperty("spend_usd").GetDecimal(), 0.00001m, 0.00005m);
        Assert.True(Assert.Single(_vast.Machines).Destroyed);

        var broke = await WorkerAsync(new() { ["TrainingWorker__MonthlyBudgetUsd"] = "0.00001", ["TrainingWorker__QueueConcurrency__high_priority"] = "2" });
        var before = _vast.Machines.Count;
        var second = (await TrainingPlatform.SubmitAsync(broke.Client, RemoteSpec("vast-broke", "vastai", queue: "high_priority"))).GetProperty("id").GetString()!;
        var refused = await TrainingPlatform.WaitForStateAsync(broke.Client, second, Patience, "failed", "succeeded", "dead");
        Assert.Equal("failed", refused.GetProperty("state").GetString());
        Assert.Equal(before, _vast.Machines.Count);
        var budget = await broke.Client.GetFromJsonAsync<JsonElement>("/budget");
        Assert.True(budget.GetProperty("spent_usd").GetDecimal() <= 0.00005m);
    }

    [Fact]
    public async Task Cancelling_during_provisioning_and_during_running_always_destroys_the_machine()
    {
        var worker = await WorkerAsync();
        _vast.NextScripts.Enqueue(MachineScript.NeverStart);
        var provisioning = (await TrainingPlatform.SubmitAsync(worker.Client, RemoteSpec("vast-cancel-early", "vastai"))).GetProperty("id").GetString()!;
        await Eventually.HoldsAsync(() => Task.FromResult(_vast.Machines.Count == 1), Patience, "the instance is created");
        Assert.Equal("provisioning", (await TrainingPlatform.GetJobAsync(worker.Client, provisioning)).GetProperty("state").GetString());
        (await worker.Client.PostAsync($"/jobs/{provisioning}/cancel", null)).Dispose();
        await TrainingPlatform.WaitForStateAsync(worker.Client, provisioning, TimeSpan.FromSeconds(10), "cancelled");
        Assert.True(_vast.Machines.Single().Destroyed);

        _runpod.Script = MachineScript.RunForever;
        var running = (await TrainingPlatform.SubmitAsync(worker.Client, RemoteSpec("runpod-cancel", "runpod", new { gpu_types = new[] { "NVIDIA GeForce RTX 4090" }, interruptible = false }))).GetProperty("id").GetString()!;
        await TrainingPlatform.WaitForStateAsync(worker.Client, running, Patience, "running");
        (await worker.Client.PostAsync($"/jobs/{running}/cancel", null)).Dispose();
        await TrainingPlatform.WaitForStateAsync(worker.Client, running, TimeSpan.FromSeconds(10), "cancelled");
        var pod = Assert.Single(_runpod.Pods);
        Assert.True(pod.Deleted);
        Assert.False(pod.Interruptible);
    }

    [Fact]
    public async Task RunPod_pods_run_to_a_registered_version_and_an_overpriced_pod_is_terminated_at_once()
    {
        var worker = await WorkerAsync();
        var id = (await TrainingPlatform.SubmitAsync(worker.Client, RemoteSpec("runpod-ok", "runpod", registered: "runpod-model"))).GetProperty("id").GetString()!;
        var job = await TrainingPlatform.WaitForStateAsync(worker.Client, id, Patience, "succeeded", "failed", "dead");
        Assert.True(job.GetProperty("state").GetString() == "succeeded", job.ToString());
        var pod = Assert.Single(_runpod.Pods);
        Assert.True(pod.Deleted);
        Assert.True(pod.Interruptible);
        Assert.Equal(["NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 4090"], pod.Gpus.Order());

        _runpod.PriceOverride = 2.49m;
        var pricey = (await TrainingPlatform.SubmitAsync(worker.Client, RemoteSpec("runpod-pricey", "runpod"))).GetProperty("id").GetString()!;
        var refused = await TrainingPlatform.WaitForStateAsync(worker.Client, pricey, Patience, "failed", "succeeded");
        Assert.Equal("failed", refused.GetProperty("state").GetString());
        Assert.Contains("over the cap", refused.GetProperty("last_error").GetString(), StringComparison.Ordinal);
        Assert.All(_runpod.Pods, p => Assert.True(p.Deleted));
    }

    [Fact]
    public async Task RunPod_serverless_requests_complete_fail_into_retries_and_reject_a_wrong_key_without_leaking_it()
    {
        var worker = await WorkerAsync();
        var spec = RemoteSpec("serverless-ok", "runpod", new { serverless_endpoint = "abc123endpoint" });
        var id = (await TrainingPlatform.SubmitAsync(worker.Client, spec)).GetProperty("id").GetString()!;
        var job = await TrainingPlatform.WaitForStateAsync(worker.Client, id, Patience, "succeeded", "failed", "dead");
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        var request = Assert.Single(_runpod.Requests);
        Assert.Equal(["python", "train.py", "--epochs", "3"], request.Command);
        Assert.Equal(id, request.Env["GOBLIN_JOB_ID"]);

        _runpod.ServerlessFails = true;
        var failing = (await TrainingPlatform.SubmitAsync(worker.Client, new { name = "serverless-bad", executor = "runpod", command = new[] { "python", "x.py" }, resources = new { serverless_endpoint = "abc123endpoint" }, max_attempts = 2 })).GetProperty("id").GetString()!;
        var dead = await TrainingPlatform.WaitForStateAsync(worker.Client, failing, Patience, "dead", "succeeded");
        Assert.Equal("dead", dead.GetProperty("state").GetString());
        Assert.Contains("handler raised", dead.GetProperty("last_error").GetString(), StringComparison.Ordinal);

        var wrongKey = await WorkerAsync(new() { ["TrainingWorker__VastAi__ApiKey"] = "wrong-secret-key-xyz", ["TrainingWorker__QueueConcurrency__high_priority"] = "2" });
        var unauthorized = (await TrainingPlatform.SubmitAsync(wrongKey.Client, RemoteSpec("vast-wrong-key", "vastai", queue: "high_priority"))).GetProperty("id").GetString()!;
        var failed = await TrainingPlatform.WaitForStateAsync(wrongKey.Client, unauthorized, Patience, "failed", "succeeded");
        var error = failed.GetProperty("last_error").GetString()!;
        Assert.Contains("401", error, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-secret-key-xyz", error, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-secret-key-xyz", await wrongKey.Client.GetStringAsync($"/jobs/{unauthorized}/events"), StringComparison.Ordinal);
    }
}
