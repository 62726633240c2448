using System.Net.Http.Json;
using System.Text;

namespace GoblinAspire.TrainingWorker.Tests.StandIns;

/// <summary>How a stand-in machine behaves once created.</summary>
public enum MachineScript
{
    /// <summary>Starts, runs a few polls, logs its model to MLflow, ends its run FINISHED and exits.</summary>
    Finish,

    /// <summary>Starts, runs, then is taken away (outbid / spot reclaim) before the job ends its run.</summary>
    Preempt,

    /// <summary>Starts, runs, ends its MLflow run FAILED and exits.</summary>
    Fail,

    /// <summary>Starts and keeps running.</summary>
    RunForever,

    /// <summary>Never gets past loading.</summary>
    NeverStart,
}

/// <summary>What the container on a rented machine would do, done over the real MLflow API with the env it was given.</summary>
public static class ContainerScript
{
    public static async Task EndRunAsync(IReadOnlyDictionary<string, string> env, bool succeeded)
    {
        ArgumentNullException.ThrowIfNull(env);
        using var http = new HttpClient();
        var tracking = env["MLFLOW_TRACKING_URI"];
        var runId = env["MLFLOW_RUN_ID"];
        if (succeeded)
        {
            var run = await http.GetFromJsonAsync<System.Text.Json.JsonElement>($"{tracking}/api/2.0/mlflow/runs/get?run_id={runId}");
            var root = run.GetProperty("run").GetProperty("info").GetProperty("artifact_uri").GetString()!["mlflow-artifacts:/".Length..].Trim('/');
            using var artifact = new StringContent("{\"kind\":\"remote\"}", Encoding.UTF8, "application/json");
            (await http.PutAsync($"{tracking}/api/2.0/mlflow-artifacts/artifacts/{root}/model/model.json", artifact)).EnsureSuccessStatusCode();
        }

        (await http.PostAsJsonAsync($"{tracking}/api/2.0/mlflow/runs/update", new { run_id = runId, status = succeeded ? "FINISHED" : "FAILED", end_time = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() })).EnsureSuccessStatusCode();
    }
}
