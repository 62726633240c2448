using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using GoblinAspire.AppHost.Tests.Platform;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;

namespace GoblinAspire.AppHost.Tests;

/// <summary>The platform with short lease and polling intervals, so a killed worker's job is taken over in seconds.</summary>
public sealed class TrainingPlatform : PlatformFixture
{
    /// <summary>The example trainer, copied beside the tests by the project reference.</summary>
    public static string TrainerPath { get; } = Path.Combine(AppContext.BaseDirectory, "GoblinAspire.ExampleTrainer.dll");

    protected override void Configure(IDistributedApplicationTestingBuilder appHost) =>
        appHost.CreateResourceBuilder<ProjectResource>(PlatformResources.TrainingWorker)
            .WithEnvironment("TrainingWorker__LeaseDuration", "00:00:04")
            .WithEnvironment("TrainingWorker__HeartbeatInterval", "00:00:00.500")
            .WithEnvironment("TrainingWorker__RescueInterval", "00:00:00.500")
            .WithEnvironment("TrainingWorker__PollInterval", "00:00:00.500")
            .WithEnvironment("TrainingWorker__StopGracePeriod", "00:00:02");
}

/// <summary>Training jobs on the whole platform: the worker runs the example trainer, which reports to the registry over MLflow's API.</summary>
[Collection(WholePlatformCollection.Name)]
public sealed class TrainingTests(TrainingPlatform platform) : IClassFixture<TrainingPlatform>
{
    [Fact]
    public async Task A_training_job_logs_metrics_to_mlflow_and_ends_as_a_registered_version()
    {
        using var worker = platform.Client(PlatformResources.TrainingWorker);
        var id = await SubmitAsync(worker, "system-train", "system-model", steps: 100, stepMs: 5);
        var job = await WaitForEndAsync(worker, id, TimeSpan.FromSeconds(120));
        Assert.True(job.GetProperty("state").GetString() == "succeeded", $"{job}\n{await worker.GetStringAsync($"/jobs/{id}/logs")}");

        using var registry = platform.Client(PlatformResources.ModelRegistry);
        var runId = job.GetProperty("mlflow_run_id").GetString()!;
        var history = await registry.GetFromJsonAsync<JsonElement>($"/api/2.0/mlflow/metrics/get-history?run_id={runId}&metric_key=loss");
        var losses = history.GetProperty("metrics").EnumerateArray().Select(m => m.GetProperty("value").GetDouble()).ToList();
        Assert.True(losses.Count == 10, $"{losses.Count} loss values logged, one every 10 of 100 steps expected");
        Assert.True(losses[^1] < losses[0], "the loss did not fall");

        var versions = (await registry.GetFromJsonAsync<JsonElement>("/api/2.0/mlflow/model-versions/search?filter=name%3D%27system-model%27")).GetProperty("model_versions").EnumerateArray().ToList();
        var version = Assert.Single(versions);
        Assert.Equal(runId, version.GetProperty("run_id").GetString());
        Assert.Equal(job.GetProperty("model_version").GetString(), version.GetProperty("version").GetString());
    }

    [Fact]
    public async Task A_worker_killed_mid_job_comes_back_and_the_job_completes_once_from_its_checkpoint()
    {
        using var worker = platform.Client(PlatformResources.TrainingWorker);
        var id = await SubmitAsync(worker, "system-survivor", "survivor-model", steps: 150, stepMs: 40, checkpointEvery: 20);
        await Eventually.HoldsAsync(async () => (await worker.GetStringAsync($"/jobs/{id}/logs")).Contains("checkpoint at step 40", StringComparison.Ordinal), TimeSpan.FromSeconds(90), "two checkpoints written");

        // kill -9 of the worker's own process (the orchestrator's `dotnet run` launches it as its child), then the
        // dashboard's start command, as a platform engineer would press it.
        var instance = (await platform.ReplicasAsync(PlatformResources.TrainingWorker)).Single();
        var launcher = Convert.ToInt32(instance.Snapshot.Properties.Single(p => p.Name == "executable.pid").Value, System.Globalization.CultureInfo.InvariantCulture);
        // The tree is read before anything dies: a killed parent's children are re-parented and no longer found.
        foreach (var pid in ProcessTree.Descendants(launcher).Reverse().Append(launcher).ToList())
        {
            ProcessTree.Kill(pid);
        }

        using (var exited = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            await platform.App.ResourceNotifications.WaitForResourceAsync(PlatformResources.TrainingWorker, e => e.Snapshot.State?.Text is "Exited" or "Finished" or "FailedToStart", exited.Token);
        }
        var started = await platform.App.ResourceCommands.ExecuteCommandAsync(instance.ResourceId, KnownResourceCommands.StartCommand);
        Assert.True(started.Success, started.Message);

        var job = await WaitForEndAsync(worker, id, TimeSpan.FromSeconds(120));
        Assert.True(job.GetProperty("state").GetString() == "succeeded", $"{job}\n{platform.Output}");
        Assert.Equal(2, job.GetProperty("attempt").GetInt32());
        Assert.Equal(0, job.GetProperty("failures").GetInt32());
        var resumed = (await worker.GetStringAsync($"/jobs/{id}/logs?attempt=2")).Split('\n').Single(l => l.StartsWith("resumed from checkpoint at step ", StringComparison.Ordinal));
        Assert.True(int.Parse(resumed["resumed from checkpoint at step ".Length..], System.Globalization.CultureInfo.InvariantCulture) >= 40, resumed);

        var events = (await worker.GetFromJsonAsync<JsonElement>($"/jobs/{id}/events")).GetProperty("events").EnumerateArray().Select(e => e.GetProperty("kind").GetString()).ToList();
        Assert.Single(events, e => e == "succeeded");
        using var registry = platform.Client(PlatformResources.ModelRegistry);
        var versions = await registry.GetFromJsonAsync<JsonElement>("/api/2.0/mlflow/model-versions/search?filter=name%3D%27survivor-model%27");
        Assert.Single(versions.GetProperty("model_versions").EnumerateArray());
    }

    private static async Task<string> SubmitAsync(HttpClient worker, string name, string model, int steps, int stepMs, int checkpointEvery = 10)
    {
        using var response = await worker.PostAsJsonAsync("/jobs", new
        {
            name,
            queue = "training",
            command = new[] { "dotnet", TrainingPlatform.TrainerPath, "--steps", steps.ToString(), "--step-ms", stepMs.ToString(), "--checkpoint-every-steps", checkpointEvery.ToString() },
            registered_model = model,
            output_artifact = "model/model.json",
        });
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(response.IsSuccessStatusCode, $"submit answered {(int)response.StatusCode}: {body}");
        return body.GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> WaitForEndAsync(HttpClient worker, string id, TimeSpan timeout)
    {
        JsonElement job = default;
        await Eventually.HoldsAsync(async () =>
        {
            // The worker may be restarting: a refused connection or a proxy's 502 is a reason to wait, not to fail.
            try
            {
                using var response = await worker.GetAsync($"/jobs/{id}");
                if (!response.IsSuccessStatusCode)
                {
                    return false;
                }

                job = await response.Content.ReadFromJsonAsync<JsonElement>();
            }
            catch (HttpRequestException)
            {
                return false;
            }

            return job.GetProperty("state").GetString() is "succeeded" or "failed" or "dead" or "cancelled";
        }, timeout, $"job {id} ending");
        return job;
    }
}
