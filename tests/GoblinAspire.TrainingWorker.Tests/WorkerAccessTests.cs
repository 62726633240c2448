using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using GoblinAspire.Testing;

namespace GoblinAspire.TrainingWorker.Tests;

/// <summary>The worker's own token on its job API, and a job's token that reaches its own MLflow run alone.</summary>
[Collection(PlatformServers.Collection)]
public sealed class WorkerAccessTests(PlatformServers servers)
{
    private const string WorkerToken = "worker-token-for-tests-8c2d4b";
    private const string RegistryToken = "registry-token-for-worker-tests-1a7e";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task The_job_api_answers_401_problem_details_without_the_workers_token_and_health_stays_open()
    {
        await using var platform = await TrainingPlatform.StartAsync(servers);
        var worker = await platform.StartWorkerAsync(new Dictionary<string, string?> { ["TrainingWorker__Access__RequireToken"] = "true", ["TrainingWorker__Access__Token"] = WorkerToken });
        foreach (var bearer in new[] { null, "not-the-token", RegistryToken })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/jobs");
            if (bearer is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
            }

            using var response = await worker.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(401, problem.RootElement.GetProperty("status").GetInt32());
        }

        using (var health = await worker.Client.GetAsync("/health"))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        using var authorised = new HttpRequestMessage(HttpMethod.Get, "/jobs");
        authorised.Headers.Authorization = new AuthenticationHeaderValue("Bearer", WorkerToken);
        using var listed = await worker.Client.SendAsync(authorised);
        Assert.Equal(HttpStatusCode.OK, listed.StatusCode);
    }

    /// <summary>
    /// Against a registry that requires its token, the example trainer logs, uploads its model and registers it with
    /// the run token the worker gave it; the job never sees the registry token itself.
    /// </summary>
    [Fact]
    public async Task A_job_gets_a_token_for_its_own_run_and_never_the_registry_token()
    {
        await using var platform = await TrainingPlatform.StartAsync(servers, new Dictionary<string, string?> { ["ModelRegistry__Access__RequireToken"] = "true", ["ModelRegistry__Access__Token"] = RegistryToken });
        var worker = await platform.StartWorkerAsync(new Dictionary<string, string?> { ["TrainingWorker__RegistryToken"] = RegistryToken });

        var trained = await TrainingPlatform.SubmitAsync(worker.Client, new
        {
            name = "scoped-trainer",
            command = new[] { "dotnet", TrainingPlatform.TrainerPath, "--steps", "40", "--checkpoint-every-steps", "20" },
            experiment = "scoped",
            registered_model = "scoped-model",
            output_artifact = "model/model.json",
        });
        var job = await TrainingPlatform.WaitForStateAsync(worker.Client, trained.GetProperty("id").GetString()!, Patience, "succeeded", "failed", "dead");
        Assert.True(job.GetProperty("state").GetString() == "succeeded", await worker.Client.GetStringAsync($"/jobs/{trained.GetProperty("id").GetString()}/logs"));

        var printer = await TrainingPlatform.SubmitAsync(worker.Client, new { name = "token-printer", command = new[] { "sh", "-c", "echo \"token=$MLFLOW_TRACKING_TOKEN\"; env" } });
        var id = printer.GetProperty("id").GetString()!;
        Assert.Equal("succeeded", (await TrainingPlatform.WaitForStateAsync(worker.Client, id, Patience, "succeeded", "failed", "dead")).GetProperty("state").GetString());
        var logs = await worker.Client.GetStringAsync($"/jobs/{id}/logs");
        Assert.Contains("token=grt_", logs, StringComparison.Ordinal);
        Assert.DoesNotContain(RegistryToken, logs, StringComparison.Ordinal);
    }
}
