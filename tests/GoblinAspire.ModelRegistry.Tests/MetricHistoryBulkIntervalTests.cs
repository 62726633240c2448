using System.Net;
using System.Text.Json;
using GoblinAspire.ModelRegistry.Search;
using GoblinAspire.Testing;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>MLflow's <c>metrics/get-history-bulk-interval</c>: the sampled history its charts draw.</summary>
[Collection(PlatformServers.Collection)]
public sealed class MetricHistoryBulkIntervalTests(PlatformServers servers) : IAsyncLifetime
{
    private RegistryHost _registry = null!;
    private string _a = "";
    private string _b = "";

    private MlflowClient Mlflow => _registry.Mlflow;

    public async Task InitializeAsync()
    {
        _registry = await RegistryHost.StartAsync(servers);
        var experiment = (await Mlflow.PostAsync("experiments/create", new { name = "charts" })).GetProperty("experiment_id").GetString()!;
        _a = await CreateRunAsync(experiment, "a");
        _b = await CreateRunAsync(experiment, "b");

        // Run a logs steps 0..9 (value = step) and a second value at step 6; run b logs the even steps 0..18.
        var a = Enumerable.Range(0, 10).Select(step => new { key = "loss", value = (double)step, timestamp = (long)step, step = (long)step })
            .Append(new { key = "loss", value = 60.0, timestamp = 100L, step = 6L });
        await Mlflow.PostAsync("runs/log-batch", new { run_id = _a, metrics = a });
        var b = Enumerable.Range(0, 10).Select(i => new { key = "loss", value = i * 20.0, timestamp = i * 2L, step = i * 2L });
        await Mlflow.PostAsync("runs/log-batch", new { run_id = _b, metrics = b });
    }

    public async Task DisposeAsync() => await _registry.DisposeAsync();

    private async Task<string> CreateRunAsync(string experiment, string name) =>
        (await Mlflow.PostAsync("runs/create", new { experiment_id = experiment, run_name = name, start_time = 1 })).GetProperty("run").GetProperty("info").GetProperty("run_id").GetString()!;

    private static List<(string RunId, long Step, double Value, long Timestamp)> Points(JsonElement answer) =>
        answer.TryGetProperty("metrics", out var metrics)
            ? metrics.EnumerateArray().Select(m =>
            {
                Assert.Equal("loss", m.GetProperty("key").GetString());
                return (m.GetProperty("run_id").GetString()!, m.GetProperty("step").GetInt64(), m.GetProperty("value").GetDouble(), m.GetProperty("timestamp").GetInt64());
            }).ToList()
            : [];

    [Fact]
    public async Task Steps_are_sampled_across_runs_keeping_each_runs_first_and_last_and_every_value_at_a_kept_step()
    {
        // 15 distinct steps (0..9, 10..18 even) thinned to 5 by position: 0, 3, 6, 9, 14, plus the last, 18. Run a's
        // last step, 9, is drawn anyway. Runs answer in the order asked for.
        var answer = await Mlflow.GetAsync("metrics/get-history-bulk-interval", $"run_ids={_b}&run_ids={_a}&metric_key=loss&max_results=5");
        Assert.Equal(
            [
                (_b, 0, 0.0, 0), (_b, 6, 60.0, 6), (_b, 14, 140.0, 14), (_b, 18, 180.0, 18),
                (_a, 0, 0.0, 0), (_a, 3, 3.0, 3), (_a, 6, 6.0, 6), (_a, 6, 60.0, 100), (_a, 9, 9.0, 9),
            ],
            Points(answer));
    }

    [Fact]
    public async Task A_step_range_limits_the_sample_and_the_kept_first_and_last_steps()
    {
        // Steps 2..9 (8 of them) thinned to 3: 2, 4, 7, plus the last, 9. Step 0 and 18 are outside the range.
        var ranged = await Mlflow.GetAsync("metrics/get-history-bulk-interval", $"run_ids={_a}&run_ids={_b}&metric_key=loss&start_step=2&end_step=9&max_results=3");
        Assert.Equal([(_a, 2, 2.0, 2), (_a, 4, 4.0, 4), (_a, 7, 7.0, 7), (_a, 9, 9.0, 9), (_b, 2, 20.0, 2), (_b, 4, 40.0, 4)], Points(ranged));

        // MLflow bounds the drawn positions by the number of steps in range, not by the range's end: from step 8 on
        // it draws none, and only the last step and each run's last in range remain. The same points come back here.
        var late = await Mlflow.GetAsync("metrics/get-history-bulk-interval", $"run_ids={_a}&run_ids={_b}&metric_key=loss&start_step=8&end_step=18&max_results=2");
        Assert.Equal([(_a, 9, 9.0, 9), (_b, 18, 180.0, 18)], Points(late));
    }

    [Fact]
    public async Task Without_max_results_up_to_2500_steps_come_back_and_unknown_runs_or_keys_give_none()
    {
        var all = Points(await Mlflow.GetAsync("metrics/get-history-bulk-interval", $"run_ids={_a}&metric_key=loss"));
        Assert.Equal(11, all.Count);
        Assert.Equal([0L, 1, 2, 3, 4, 5, 6, 6, 7, 8, 9], all.Select(p => p.Step));

        // An empty list is left out of the answer, as proto3 JSON leaves it out.
        var none = await Mlflow.GetAsync("metrics/get-history-bulk-interval", "run_ids=nope&metric_key=loss");
        Assert.False(none.TryGetProperty("metrics", out _));
        Assert.False((await Mlflow.GetAsync("metrics/get-history-bulk-interval", $"run_ids={_a}&metric_key=other")).TryGetProperty("metrics", out _));

        using var ajax = await _registry.Host.Client.GetAsync($"/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={_a}&metric_key=loss&max_results=1");
        Assert.Equal([0L, 9], Points(await MlflowClient.ReadAsync(ajax, HttpStatusCode.OK)).Select(p => p.Step));
    }

    [Theory]
    [InlineData("metric_key=loss", "Missing value for required parameter 'run_ids'. See the API docs for more information about request parameters.")]
    [InlineData("run_ids={a}", "Missing value for required parameter 'metric_key'. See the API docs for more information about request parameters.")]
    [InlineData("run_ids={a}&metric_key=loss&max_results=0", "max_results must be between 1 and 2500. See the API docs for more information about request parameters.")]
    [InlineData("run_ids={a}&metric_key=loss&max_results=2501", "max_results must be between 1 and 2500. See the API docs for more information about request parameters.")]
    [InlineData("run_ids={a}&metric_key=loss&start_step=abc&end_step=3", "Invalid value \"abc\" for parameter 'start_step' supplied:  Hint: Value was of type 'str'. See the API docs for more information about request parameters.")]
    [InlineData("run_ids={a}&metric_key=loss&start_step=1", "If either start step or end step are specified, both must be specified.")]
    [InlineData("run_ids={a}&metric_key=loss&end_step=1", "If either start step or end step are specified, both must be specified.")]
    [InlineData("run_ids={a}&metric_key=loss&start_step=5&end_step=2", "end_step must be greater than start_step. Found start_step=5 and end_step=2.")]
    public async Task Bad_requests_get_mlflows_messages(string query, string message)
    {
        var error = await Mlflow.GetAsync("metrics/get-history-bulk-interval", query.Replace("{a}", _a, StringComparison.Ordinal), HttpStatusCode.BadRequest);
        MlflowClient.AssertError(error, "INVALID_PARAMETER_VALUE");
        Assert.Equal(message, error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task At_most_100_runs_may_be_asked_for()
    {
        var query = string.Join('&', Enumerable.Range(0, 101).Select(i => $"run_ids=r{i}")) + "&metric_key=loss";
        var error = await Mlflow.GetAsync("metrics/get-history-bulk-interval", query, HttpStatusCode.BadRequest);
        Assert.Equal("GetMetricHistoryBulkInterval request must specify at most 100 run_ids. Received 101 run_ids. See the API docs for more information about request parameters.", error.GetProperty("message").GetString());
        await Mlflow.GetAsync("metrics/get-history-bulk-interval", query[(query.IndexOf('&', StringComparison.Ordinal) + 1)..]);
    }

    [Fact]
    public void Sampling_keeps_every_step_when_few_and_spaces_them_by_position_when_many()
    {
        long[] steps = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18];
        Assert.Equal([2L, 3, 4], MetricSampling.SampleSteps(2, 4, 3, steps));
        Assert.Equal([0L, 3, 6, 9, 14, 18], MetricSampling.SampleSteps(0, 18, 5, steps));
        Assert.Equal([18L], MetricSampling.SampleSteps(8, 18, 2, steps));
        Assert.Empty(MetricSampling.SampleSteps(19, 30, 5, steps));
        Assert.Equal([18L], MetricSampling.SampleSteps(18, long.MaxValue, 1, steps));
    }
}
