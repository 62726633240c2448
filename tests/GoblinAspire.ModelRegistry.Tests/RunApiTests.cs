using System.Net;
using System.Text.Json;
using GoblinAspire.Testing;

namespace GoblinAspire.ModelRegistry.Tests;

[Collection(PlatformServers.Collection)]
public sealed class RunApiTests(PlatformServers servers) : IAsyncLifetime
{
    private RegistryHost _registry = null!;
    private string _experiment = "";

    private MlflowClient Mlflow => _registry.Mlflow;

    public async Task InitializeAsync()
    {
        _registry = await RegistryHost.StartAsync(servers);
        _experiment = (await Mlflow.PostAsync("experiments/create", new { name = "runs" })).GetProperty("experiment_id").GetString()!;
    }

    public async Task DisposeAsync() => await _registry.DisposeAsync();

    private async Task<string> CreateRunAsync(string name, params (string Key, string Value)[] tags)
    {
        var run = (await Mlflow.PostAsync("runs/create", new { experiment_id = _experiment, run_name = name, start_time = 1_700_000_000_000, user_id = "ana", tags = tags.Select(t => new { key = t.Key, value = t.Value }) })).GetProperty("run");
        return run.GetProperty("info").GetProperty("run_id").GetString()!;
    }

    [Fact]
    public async Task A_run_logs_metrics_params_and_tags_and_shows_the_latest_metric()
    {
        var created = (await Mlflow.PostAsync("runs/create", new { experiment_id = _experiment, run_name = "first", start_time = 1_700_000_000_000, tags = new[] { new { key = "team", value = "nlp" } } })).GetProperty("run");
        var info = created.GetProperty("info");
        var runId = info.GetProperty("run_id").GetString()!;
        Assert.Equal(runId, info.GetProperty("run_uuid").GetString());
        Assert.Equal("RUNNING", info.GetProperty("status").GetString());
        Assert.Equal(1_700_000_000_000, info.GetProperty("start_time").GetInt64());
        Assert.Equal($"mlflow-artifacts:/{_experiment}/{runId}/artifacts", info.GetProperty("artifact_uri").GetString());
        Assert.False(info.TryGetProperty("end_time", out _));

        await Mlflow.PostAsync("runs/log-metric", new { run_id = runId, key = "loss", value = 0.9, timestamp = 10, step = 0 });
        await Mlflow.PostAsync("runs/log-metric", new { run_id = runId, key = "loss", value = 0.4, timestamp = 30, step = 2 });
        await Mlflow.PostAsync("runs/log-metric", new { run_uuid = runId, key = "loss", value = 0.6, timestamp = 20, step = 1 });
        await Mlflow.PostAsync("runs/log-parameter", new { run_id = runId, key = "lr", value = "0.01" });
        await Mlflow.PostAsync("runs/set-tag", new { run_id = runId, key = "stage", value = "dev" });
        await Mlflow.PostAsync("runs/log-batch", new
        {
            run_id = runId,
            metrics = new object[] { new { key = "acc", value = 0.75, timestamp = 40, step = 2 }, new { key = "odd", value = "NaN", timestamp = 40, step = 0 } },
            @params = new[] { new { key = "epochs", value = "3" }, new { key = "lr", value = "0.01" } },
            tags = new[] { new { key = "mlflow.note.content", value = "hello" } },
        });

        var run = (await Mlflow.GetAsync("runs/get", $"run_id={runId}")).GetProperty("run");
        var metrics = run.GetProperty("data").GetProperty("metrics").EnumerateArray().ToDictionary(m => m.GetProperty("key").GetString()!);
        Assert.Equal(0.4, metrics["loss"].GetProperty("value").GetDouble());
        Assert.Equal(2, metrics["loss"].GetProperty("step").GetInt64());
        Assert.Equal("NaN", metrics["odd"].GetProperty("value").GetString());
        var parameters = run.GetProperty("data").GetProperty("params").EnumerateArray().ToDictionary(p => p.GetProperty("key").GetString()!, p => p.GetProperty("value").GetString());
        Assert.Equal("0.01", parameters["lr"]);
        Assert.Equal("3", parameters["epochs"]);
        var tags = run.GetProperty("data").GetProperty("tags").EnumerateArray().ToDictionary(t => t.GetProperty("key").GetString()!, t => t.GetProperty("value").GetString());
        Assert.Equal("first", tags["mlflow.runName"]);
        Assert.Equal("nlp", tags["team"]);

        var history = await Mlflow.GetAsync("metrics/get-history", $"run_id={runId}&metric_key=loss");
        Assert.Equal([0.9, 0.6, 0.4], history.GetProperty("metrics").EnumerateArray().Select(m => m.GetProperty("value").GetDouble()));

        var updated = (await Mlflow.PostAsync("runs/update", new { run_id = runId, status = "FINISHED", end_time = 1_700_000_100_000 })).GetProperty("run_info");
        Assert.Equal("FINISHED", updated.GetProperty("status").GetString());
        Assert.Equal(1_700_000_100_000, updated.GetProperty("end_time").GetInt64());
    }

    [Fact]
    public async Task A_param_cannot_change_and_a_rejected_batch_stores_nothing()
    {
        var runId = await CreateRunAsync("immutable");
        await Mlflow.PostAsync("runs/log-parameter", new { run_id = runId, key = "lr", value = "0.1" });
        MlflowClient.AssertError(
            await Mlflow.PostAsync("runs/log-parameter", new { run_id = runId, key = "lr", value = "0.2" }, HttpStatusCode.BadRequest),
            "INVALID_PARAMETER_VALUE",
            $"Changing param values is not allowed. Param with key='lr' was already logged with value='0.1' for run ID='{runId}'. Attempted logging new value '0.2'.");

        await Mlflow.PostAsync("runs/log-batch", new
        {
            run_id = runId,
            metrics = new[] { new { key = "should_not_exist", value = 1.0, timestamp = 1, step = 0 } },
            @params = new[] { new { key = "lr", value = "0.3" } },
        }, HttpStatusCode.BadRequest);
        var run = (await Mlflow.GetAsync("runs/get", $"run_id={runId}")).GetProperty("run");
        Assert.False(run.GetProperty("data").TryGetProperty("metrics", out _));
    }

    [Fact]
    public async Task Limits_are_enforced_with_mlflow_errors()
    {
        var runId = await CreateRunAsync("limits");
        MlflowClient.AssertError(await Mlflow.PostAsync("runs/log-parameter", new { run_id = runId, key = "big", value = new string('x', 6001) }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE", "exceeded length limit of 6000");
        await Mlflow.PostAsync("runs/log-parameter", new { run_id = runId, key = "ok", value = new string('x', 6000) });
        MlflowClient.AssertError(await Mlflow.PostAsync("runs/set-tag", new { run_id = runId, key = "big", value = new string('x', 8001) }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE", "exceeded length limit of 8000");
        MlflowClient.AssertError(await Mlflow.PostAsync("runs/log-metric", new { run_id = runId, key = new string('k', 251), value = 1, timestamp = 1 }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE", "exceeded length limit of 250");
        MlflowClient.AssertError(await Mlflow.PostAsync("runs/log-metric", new { run_id = runId, key = "../escape", value = 1, timestamp = 1 }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE");

        var tooMany = Enumerable.Range(0, 1001).Select(i => new { key = "m", value = (double)i, timestamp = 1L, step = (long)i }).ToArray();
        MlflowClient.AssertError(await Mlflow.PostAsync("runs/log-batch", new { run_id = runId, metrics = tooMany }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE", "at most 1000 metrics");
        var tooManyParams = Enumerable.Range(0, 101).Select(i => new { key = $"p{i}", value = "v" }).ToArray();
        MlflowClient.AssertError(await Mlflow.PostAsync("runs/log-batch", new { run_id = runId, @params = tooManyParams }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE", "100 params");
        await Mlflow.PostAsync("runs/log-batch", new { run_id = runId, metrics = tooMany[..1000] });
    }

    [Fact]
    public async Task Search_runs_by_metrics_params_tags_attributes_and_order()
    {
        var a = await CreateRunAsync("a", ("team", "x"));
        var b = await CreateRunAsync("b", ("team", "x"));
        var c = await CreateRunAsync("c", ("team", "y"));
        foreach (var (run, acc, lr) in new[] { (a, 0.95, "0.1"), (b, 0.85, "0.1"), (c, 0.99, "0.2") })
        {
            await Mlflow.PostAsync("runs/log-batch", new { run_id = run, metrics = new[] { new { key = "acc", value = acc, timestamp = 1, step = 0 } }, @params = new[] { new { key = "lr", value = lr } } });
        }

        async Task<List<string>> SearchAsync(string filter, params string[] orderBy)
        {
            var result = await Mlflow.PostAsync("runs/search", new { experiment_ids = new[] { _experiment }, filter, order_by = orderBy });
            return result.TryGetProperty("runs", out var runs) ? runs.EnumerateArray().Select(r => r.GetProperty("info").GetProperty("run_name").GetString()!).ToList() : [];
        }

        Assert.Equal(["a", "b"], await SearchAsync("metrics.acc > 0.8 AND params.lr = '0.1' AND tags.team = 'x'", "metrics.acc DESC"));
        Assert.Equal(["c", "a"], await SearchAsync("metrics.acc >= 0.9", "metrics.acc DESC"));
        Assert.Equal(["a", "c"], await SearchAsync($"attributes.run_id IN ('{a}', '{c}')", "attributes.run_name ASC"));
        Assert.Equal(["b"], await SearchAsync("tags.`team` = 'x' AND run_name LIKE 'b%'"));
        Assert.Equal(["a", "b", "c"], await SearchAsync("attributes.status = 'RUNNING'", "run_name"));

        await Mlflow.PostAsync("runs/delete", new { run_id = b });
        Assert.Equal(["a"], await SearchAsync("tags.team = 'x'"));
        var all = await Mlflow.PostAsync("runs/search", new { experiment_ids = new[] { _experiment }, filter = "tags.team = 'x'", run_view_type = "ALL" });
        Assert.Equal(2, all.GetProperty("runs").GetArrayLength());
        await Mlflow.PostAsync("runs/restore", new { run_id = b });
        Assert.Equal(2, (await SearchAsync("tags.team = 'x'")).Count);
    }

    [Fact]
    public async Task Search_runs_orders_by_params_and_tags_as_strings_with_runs_lacking_the_key_last()
    {
        // Values chosen so that string order ("10" < "100" < "9") differs from numeric order.
        var a = await CreateRunAsync("a", ("team", "b"), ("team name", "z"), ("squad", "s"));
        var b = await CreateRunAsync("b", ("team", "a"), ("squad", "s"));
        var c = await CreateRunAsync("c", ("team name", "y"), ("squad", "r"));
        await CreateRunAsync("d", ("team", "c"), ("team name", "x"), ("squad", "s"));
        foreach (var (run, epochs) in new[] { (a, "10"), (b, "9"), (c, "100") })
        {
            await Mlflow.PostAsync("runs/log-parameter", new { run_id = run, key = "epochs", value = epochs });
        }

        Assert.Equal(["a", "c", "b", "d"], await OrderAsync("params.epochs"));
        Assert.Equal(["a", "c", "b", "d"], await OrderAsync("params.epochs ASC"));
        Assert.Equal(["b", "c", "a", "d"], await OrderAsync("params.epochs DESC"));
        Assert.Equal(["b", "a", "d", "c"], await OrderAsync("tags.team asc"));
        Assert.Equal(["d", "a", "b", "c"], await OrderAsync("tags.team DESC"));
        Assert.Equal(["d", "c", "a", "b"], await OrderAsync("tags.`team name`"));
        Assert.Equal(["a", "c", "d", "b"], await OrderAsync("tags.\"team name\" DESC"));
        // A later clause orders the runs an earlier one leaves tied.
        Assert.Equal(["c", "b", "a", "d"], await OrderAsync("tags.squad", "params.epochs DESC"));

        MlflowClient.AssertError(
            await Mlflow.PostAsync("runs/search", new { experiment_ids = new[] { _experiment }, order_by = new[] { "params.epochs SIDEWAYS" } }, HttpStatusCode.BadRequest),
            "INVALID_PARAMETER_VALUE", "Invalid ordering key in order_by clause 'params.epochs SIDEWAYS'.");
        MlflowClient.AssertError(
            await Mlflow.PostAsync("runs/search", new { experiment_ids = new[] { _experiment }, order_by = new[] { "tags.`team" } }, HttpStatusCode.BadRequest),
            "INVALID_PARAMETER_VALUE", "Could not be parsed.");
    }

    [Fact]
    public async Task Search_runs_orders_metrics_with_nan_after_numbers_and_missing_last_either_way()
    {
        var a = await CreateRunAsync("a");
        var b = await CreateRunAsync("b");
        var c = await CreateRunAsync("c");
        await CreateRunAsync("d");
        await Mlflow.PostAsync("runs/log-metric", new { run_id = a, key = "acc", value = 0.5, timestamp = 1, step = 0 });
        await Mlflow.PostAsync("runs/log-metric", new { run_id = b, key = "acc", value = "NaN", timestamp = 1, step = 0 });
        await Mlflow.PostAsync("runs/log-metric", new { run_id = c, key = "acc", value = 0.9, timestamp = 1, step = 0 });

        Assert.Equal(["a", "c", "b", "d"], await OrderAsync("metrics.acc ASC"));
        Assert.Equal(["c", "a", "b", "d"], await OrderAsync("metrics.acc DESC"));
    }

    private async Task<List<string>> OrderAsync(params string[] orderBy)
    {
        var result = await Mlflow.PostAsync("runs/search", new { experiment_ids = new[] { _experiment }, order_by = orderBy });
        return result.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("info").GetProperty("run_name").GetString()!).ToList();
    }

    [Theory]
    [InlineData("name = 'x'; DROP TABLE runs; --")]
    [InlineData("metrics.acc > 0.5 OR 1=1")]
    [InlineData("params.lr = 0.1")]
    [InlineData("metrics.acc LIKE '%'")]
    [InlineData("attributes.password = 'x'")]
    [InlineData("tags.team = 'unterminated")]
    [InlineData("tags.team")]
    public async Task Hostile_or_malformed_filters_are_refused_and_harm_nothing(string filter)
    {
        var runId = await CreateRunAsync("victim");
        var error = await Mlflow.PostAsync("runs/search", new { experiment_ids = new[] { _experiment }, filter }, HttpStatusCode.BadRequest);
        MlflowClient.AssertError(error, "INVALID_PARAMETER_VALUE");
        Assert.Equal(runId, (await Mlflow.GetAsync("runs/get", $"run_id={runId}")).GetProperty("run").GetProperty("info").GetProperty("run_id").GetString());
    }

    [Fact]
    public async Task A_quoted_injection_attempt_is_only_ever_a_value()
    {
        var runId = await CreateRunAsync("quoted", ("team", "x"));
        var result = await Mlflow.PostAsync("runs/search", new { experiment_ids = new[] { _experiment }, filter = "tags.team = 'x'' OR ''1''=''1'" });
        Assert.False(result.TryGetProperty("runs", out _));
        Assert.Equal(runId, (await Mlflow.GetAsync("runs/get", $"run_id={runId}")).GetProperty("run").GetProperty("info").GetProperty("run_id").GetString());
    }
}
