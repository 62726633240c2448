using System.Net;
using System.Text.Json;
using GoblinAspire.Testing;
using GoblinAspire.Testing.Robustness;
using Xunit.Abstractions;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>
/// Ten thousand seeded hostile variants of valid MLflow calls: no 5xx, every error in MLflow's shape
/// (<c>error_code</c>, <c>message</c>), the registry healthy after, and everything it lists readable back.
/// ROBUSTNESS_SEED replays a failing run.
/// </summary>
[Collection(PlatformServers.Collection)]
public sealed class MlflowRobustnessTests(PlatformServers servers, ITestOutputHelper output)
{
    public const int Requests = 10_000;
    private const string Api = "/api/2.0/mlflow";

    [Fact]
    public async Task Ten_thousand_mutated_mlflow_calls_get_no_5xx_and_leave_nothing_half_written()
    {
        await using var registry = await RegistryHost.StartAsync(servers);
        var mlflow = registry.Mlflow;
        var experiment = (await mlflow.PostAsync("experiments/create", new { name = "robust" })).GetProperty("experiment_id").GetString();
        var run = (await mlflow.PostAsync("runs/create", new { experiment_id = experiment, start_time = 1 })).GetProperty("run").GetProperty("info").GetProperty("run_id").GetString();
        await mlflow.PostAsync("registered-models/create", new { name = "robust-model" });
        await mlflow.PostAsync("model-versions/create", new { name = "robust-model", source = $"runs:/{run}/model", run_id = run });

        RequestTemplate[] templates =
        [
            new(HttpMethod.Post, $"{Api}/experiments/create", """{"name":"e1","artifact_location":"","tags":[{"key":"k","value":"v"}]}"""),
            new(HttpMethod.Post, $"{Api}/experiments/search", """{"max_results":10,"filter":"name LIKE 'rob%'","order_by":["name ASC"],"view_type":"ACTIVE_ONLY"}"""),
            new(HttpMethod.Get, $"{Api}/experiments/get?experiment_id={experiment}"),
            new(HttpMethod.Post, $"{Api}/runs/create", $$"""{"experiment_id":"{{experiment}}","start_time":1700000000000,"run_name":"r","tags":[{"key":"t","value":"v"}]}"""),
            new(HttpMethod.Post, $"{Api}/runs/log-metric", $$"""{"run_id":"{{run}}","key":"loss","value":0.5,"timestamp":1700000000000,"step":1}"""),
            new(HttpMethod.Post, $"{Api}/runs/log-parameter", $$"""{"run_id":"{{run}}","key":"lr","value":"0.01"}"""),
            new(HttpMethod.Post, $"{Api}/runs/set-tag", $$"""{"run_id":"{{run}}","key":"stage","value":"dev"}"""),
            new(HttpMethod.Post, $"{Api}/runs/log-batch", $$"""{"run_id":"{{run}}","metrics":[{"key":"acc","value":0.9,"timestamp":1,"step":2}],"params":[{"key":"bs","value":"8"}],"tags":[{"key":"x","value":"y"}]}"""),
            new(HttpMethod.Post, $"{Api}/runs/search", $$"""{"experiment_ids":["{{experiment}}"],"filter":"metrics.loss < 1 and params.lr = '0.01'","order_by":["metrics.loss DESC"],"max_results":5}"""),
            new(HttpMethod.Post, $"{Api}/runs/update", $$"""{"run_id":"{{run}}","status":"RUNNING","run_name":"renamed"}"""),
            new(HttpMethod.Get, $"{Api}/metrics/get-history?run_id={run}&metric_key=loss"),
            new(HttpMethod.Post, $"{Api}/registered-models/create", """{"name":"m1","description":"d","tags":[{"key":"k","value":"v"}]}"""),
            new(HttpMethod.Patch, $"{Api}/registered-models/update", """{"name":"robust-model","description":"new"}"""),
            new(HttpMethod.Get, $"{Api}/registered-models/search?filter=name%20LIKE%20%27rob%25%27&max_results=5&order_by=name%20ASC"),
            new(HttpMethod.Post, $"{Api}/registered-models/set-tag", """{"name":"robust-model","key":"team","value":"a"}"""),
            new(HttpMethod.Post, $"{Api}/registered-models/alias", """{"name":"robust-model","alias":"champion","version":"1"}"""),
            new(HttpMethod.Post, $"{Api}/model-versions/create", $$"""{"name":"robust-model","source":"runs:/{{run}}/model","run_id":"{{run}}","description":"v"}"""),
            new(HttpMethod.Get, $"{Api}/model-versions/search?filter=name%3D%27robust-model%27"),
            new(HttpMethod.Post, $"{Api}/model-versions/set-tag", """{"name":"robust-model","version":"1","key":"k","value":"v"}"""),
            new(HttpMethod.Get, $"{Api}/model-versions/get?name=robust-model&version=1"),
        ];

        var report = await RobustnessRun.RunAsync(registry.Host.Client, new RequestMutator(RobustnessRun.Seed(), templates, 2 * 1024 * 1024), Requests, MlflowErrorShape);
        output.WriteLine(report.ToString());
        RobustnessRun.AssertClean(report, Requests);

        using (var health = await registry.Host.Client.GetAsync("/health"))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        // Everything listed reads back whole: no model without its versions' rows, no run without its experiment.
        var models = await mlflow.GetAsync("registered-models/search", "max_results=1000");
        foreach (var model in models.TryGetProperty("registered_models", out var list) ? list.EnumerateArray() : default)
        {
            var raw = model.GetProperty("name").GetString()!;
            var name = Uri.EscapeDataString(raw);
            await mlflow.GetAsync("registered-models/get", $"name={name}");
            // A mutated name may hold quotes: in a filter's quoted string a quote is written twice.
            var filter = Uri.EscapeDataString($"name='{raw.Replace("'", "''", StringComparison.Ordinal)}'");
            var versions = await mlflow.GetAsync("model-versions/search", $"filter={filter}&max_results=1000");
            foreach (var version in versions.TryGetProperty("model_versions", out var vs) ? vs.EnumerateArray() : default)
            {
                await mlflow.GetAsync("model-versions/get", $"name={name}&version={version.GetProperty("version").GetString()}");
            }
        }

        var runs = await mlflow.PostAsync("runs/search", new { experiment_ids = new[] { experiment }, max_results = 1000 });
        foreach (var found in runs.TryGetProperty("runs", out var rs) ? rs.EnumerateArray() : default)
        {
            await mlflow.GetAsync("runs/get", $"run_id={found.GetProperty("info").GetProperty("run_id").GetString()}");
        }
    }

    private static string? MlflowErrorShape(MutatedRequest request, HttpResponseMessage response, byte[] body)
    {
        if ((int)response.StatusCode < 400 || request.Method == HttpMethod.Head)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.TryGetProperty("error_code", out var code) && code.ValueKind == JsonValueKind.String
                && document.RootElement.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String
                ? null
                : $"{(int)response.StatusCode} not in MLflow's shape: {RobustnessRun.Excerpt(body)}";
        }
        catch (JsonException)
        {
            return $"{(int)response.StatusCode} with a body that is not JSON: {RobustnessRun.Excerpt(body)}";
        }
    }
}
