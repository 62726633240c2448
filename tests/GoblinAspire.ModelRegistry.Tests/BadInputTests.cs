using System.Net;
using System.Text;
using GoblinAspire.Testing;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>Missing, invalid, over-long and hostile input get MLflow-shaped errors, and nothing partial is stored.</summary>
[Collection(PlatformServers.Collection)]
public sealed class BadInputTests(PlatformServers servers) : IAsyncLifetime
{
    private RegistryHost _registry = null!;

    private MlflowClient Mlflow => _registry.Mlflow;

    public async Task InitializeAsync() => _registry = await RegistryHost.StartAsync(servers);

    public async Task DisposeAsync() => await _registry.DisposeAsync();

    [Theory]
    [InlineData("experiments/get", "", 400, "INVALID_PARAMETER_VALUE")]
    [InlineData("experiments/get", "experiment_id=999999", 404, "RESOURCE_DOES_NOT_EXIST")]
    [InlineData("experiments/get", "experiment_id=abc", 404, "RESOURCE_DOES_NOT_EXIST")]
    [InlineData("experiments/get-by-name", "experiment_name=missing", 404, "RESOURCE_DOES_NOT_EXIST")]
    [InlineData("runs/get", "run_id=nope", 404, "RESOURCE_DOES_NOT_EXIST")]
    [InlineData("runs/get", "", 400, "INVALID_PARAMETER_VALUE")]
    [InlineData("metrics/get-history", "run_id=nope&metric_key=x", 404, "RESOURCE_DOES_NOT_EXIST")]
    [InlineData("registered-models/get", "", 400, "INVALID_PARAMETER_VALUE")]
    [InlineData("registered-models/search", "max_results=1001", 400, "INVALID_PARAMETER_VALUE")]
    [InlineData("registered-models/search", "max_results=0", 400, "INVALID_PARAMETER_VALUE")]
    [InlineData("registered-models/search", "page_token=%25%25not-base64", 400, "INVALID_PARAMETER_VALUE")]
    [InlineData("registered-models/search", "filter=name%20%3D%20'x'%20OR%20name%20%3D%20'y'", 400, "INVALID_PARAMETER_VALUE")]
    [InlineData("registered-models/search", "order_by=name%3BDROP%20TABLE", 400, "INVALID_PARAMETER_VALUE")]
    [InlineData("model-versions/get", "name=x&version=abc", 400, "INVALID_PARAMETER_VALUE")]
    [InlineData("model-versions/get", "name=x&version=-1", 400, "INVALID_PARAMETER_VALUE")]
    [InlineData("model-versions/get", "name=x&version=1", 404, "RESOURCE_DOES_NOT_EXIST")]
    [InlineData("experiments/search", "view_type=SOMETIMES", 400, "INVALID_PARAMETER_VALUE")]
    public async Task Gets_with_missing_invalid_or_unknown_fields(string path, string query, int status, string code)
    {
        MlflowClient.AssertError(await Mlflow.GetAsync(path, query, (HttpStatusCode)status), code);
    }

    [Theory]
    [InlineData("experiments/create", "{}", "INVALID_PARAMETER_VALUE")]
    [InlineData("experiments/create", """{"name":"bad\u0000name"}""", "INVALID_PARAMETER_VALUE")]
    [InlineData("experiments/create", """{"name":["array"]}""", "INVALID_PARAMETER_VALUE")]
    [InlineData("experiments/create", "{not json", "BAD_REQUEST")]
    [InlineData("experiments/create", "[1,2]", "BAD_REQUEST")]
    [InlineData("runs/create", """{"experiment_id":"0","tags":"notalist"}""", "INVALID_PARAMETER_VALUE")]
    [InlineData("runs/log-metric", """{"run_id":"x","key":"k","timestamp":1}""", "INVALID_PARAMETER_VALUE")]
    [InlineData("registered-models/create", """{"name":""}""", "INVALID_PARAMETER_VALUE")]
    [InlineData("model-versions/create", """{"name":"m"}""", "INVALID_PARAMETER_VALUE")]
    public async Task Posts_with_missing_invalid_or_malformed_bodies(string path, string body, string code)
    {
        MlflowClient.AssertError(await Mlflow.PostAsync(path, body, HttpStatusCode.BadRequest), code);
    }

    [Fact]
    public async Task A_name_over_the_limit_and_a_description_over_the_limit_are_refused_and_not_stored()
    {
        MlflowClient.AssertError(await Mlflow.PostAsync("registered-models/create", new { name = new string('m', 300) }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE");
        MlflowClient.AssertError(await Mlflow.PostAsync("registered-models/create", new { name = "described", description = new string('d', 5001) }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE");
        await Mlflow.GetAsync("registered-models/get", "name=described", HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Wrong_content_types_wrong_methods_and_unknown_endpoints_answer_in_mlflow_shape()
    {
        using (var response = await _registry.Host.Client.PostAsync("/api/2.0/mlflow/experiments/create", new StringContent("name=x", Encoding.UTF8, "application/x-www-form-urlencoded")))
        {
            MlflowClient.AssertError(await MlflowClient.ReadAsync(response, HttpStatusCode.BadRequest), "BAD_REQUEST");
        }

        using (var response = await _registry.Host.Client.GetAsync("/api/2.0/mlflow/experiments/create"))
        {
            MlflowClient.AssertError(await MlflowClient.ReadAsync(response, HttpStatusCode.MethodNotAllowed), "BAD_REQUEST");
        }

        using (var response = await _registry.Host.Client.GetAsync("/api/2.0/mlflow/experiments/teleport"))
        {
            MlflowClient.AssertError(await MlflowClient.ReadAsync(response, HttpStatusCode.NotFound), "ENDPOINT_NOT_FOUND");
        }

        using (var response = await _registry.Host.Client.DeleteAsync("/api/2.0/mlflow/registered-models/get?name=x"))
        {
            MlflowClient.AssertError(await MlflowClient.ReadAsync(response, HttpStatusCode.MethodNotAllowed), "BAD_REQUEST");
        }
    }

    [Fact]
    public async Task An_oversized_body_is_refused()
    {
        var body = "{\"name\":\"" + new string('x', 17 * 1024 * 1024) + "\"}";
        MlflowClient.AssertError(await Mlflow.PostAsync("experiments/create", body, HttpStatusCode.BadRequest), "BAD_REQUEST");
    }

    [Fact]
    public async Task Logging_to_a_deleted_run_or_experiment_is_refused()
    {
        var experiment = (await Mlflow.PostAsync("experiments/create", new { name = "soon-deleted" })).GetProperty("experiment_id").GetString();
        var run = (await Mlflow.PostAsync("runs/create", new { experiment_id = experiment })).GetProperty("run").GetProperty("info").GetProperty("run_id").GetString();
        await Mlflow.PostAsync("runs/delete", new { run_id = run });
        MlflowClient.AssertError(await Mlflow.PostAsync("runs/log-metric", new { run_id = run, key = "k", value = 1, timestamp = 1 }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE", "must be in the 'active' state");
        await Mlflow.PostAsync("experiments/delete", new { experiment_id = experiment });
        MlflowClient.AssertError(await Mlflow.PostAsync("runs/create", new { experiment_id = experiment }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE", "must be in the 'active' state");
    }
}

[Collection(PlatformServers.Collection)]
public sealed class RegistryMigrationTests(PlatformServers servers)
{
    [Fact]
    public async Task Two_replicas_starting_on_one_empty_database_both_come_up()
    {
        var database = await servers.Postgres.CreateDatabaseAsync("replicas");
        var first = RegistryHost.StartAsync(servers, database);
        var second = RegistryHost.StartAsync(servers, database);
        await using var a = await first;
        await using var b = await second;
        await a.Mlflow.PostAsync("registered-models/create", new { name = "shared" });
        Assert.Equal("shared", (await b.Mlflow.GetAsync("registered-models/get", "name=shared")).GetProperty("registered_model").GetProperty("name").GetString());
    }
}
