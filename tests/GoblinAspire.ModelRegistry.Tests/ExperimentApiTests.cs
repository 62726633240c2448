using System.Net;
using GoblinAspire.Testing;

namespace GoblinAspire.ModelRegistry.Tests;

[Collection(PlatformServers.Collection)]
public sealed class ExperimentApiTests(PlatformServers servers) : IAsyncLifetime
{
    private RegistryHost _registry = null!;

    private MlflowClient Mlflow => _registry.Mlflow;

    public async Task InitializeAsync() => _registry = await RegistryHost.StartAsync(servers);

    public async Task DisposeAsync() => await _registry.DisposeAsync();

    [Fact]
    public async Task The_default_experiment_exists_from_the_start_and_cannot_be_deleted()
    {
        var experiment = (await Mlflow.GetAsync("experiments/get", "experiment_id=0")).GetProperty("experiment");
        Assert.Equal("Default", experiment.GetProperty("name").GetString());
        Assert.Equal("active", experiment.GetProperty("lifecycle_stage").GetString());
        Assert.Equal("mlflow-artifacts:/0", experiment.GetProperty("artifact_location").GetString());
        MlflowClient.AssertError(await Mlflow.PostAsync("experiments/delete", new { experiment_id = "0" }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE");
    }

    [Fact]
    public async Task Create_get_rename_tag_delete_and_restore()
    {
        var id = (await Mlflow.PostAsync("experiments/create", new { name = "churn", tags = new[] { new { key = "team", value = "growth" } } })).GetProperty("experiment_id").GetString()!;
        Assert.True(long.Parse(id, System.Globalization.CultureInfo.InvariantCulture) > 0);

        var byName = (await Mlflow.GetAsync("experiments/get-by-name", "experiment_name=churn")).GetProperty("experiment");
        Assert.Equal(id, byName.GetProperty("experiment_id").GetString());
        Assert.Equal("growth", byName.GetProperty("tags")[0].GetProperty("value").GetString());
        Assert.Equal($"mlflow-artifacts:/{id}", byName.GetProperty("artifact_location").GetString());

        MlflowClient.AssertError(await Mlflow.PostAsync("experiments/create", new { name = "churn" }, HttpStatusCode.BadRequest), "RESOURCE_ALREADY_EXISTS", "Experiment(name=churn) already exists.");

        await Mlflow.PostAsync("experiments/update", new { experiment_id = id, new_name = "churn-v2" });
        await Mlflow.PostAsync("experiments/set-experiment-tag", new { experiment_id = id, key = "owner", value = "ana" });
        await Mlflow.PostAsync("experiments/delete-experiment-tag", new { experiment_id = id, key = "team" });
        var renamed = (await Mlflow.GetAsync("experiments/get", $"experiment_id={id}")).GetProperty("experiment");
        Assert.Equal("churn-v2", renamed.GetProperty("name").GetString());
        Assert.Equal("owner", Assert.Single(renamed.GetProperty("tags").EnumerateArray()).GetProperty("key").GetString());

        await Mlflow.PostAsync("experiments/delete", new { experiment_id = id });
        var active = await Mlflow.PostAsync("experiments/search", new { view_type = "ACTIVE_ONLY" });
        Assert.DoesNotContain(active.GetProperty("experiments").EnumerateArray(), e => e.GetProperty("experiment_id").GetString() == id);
        var deleted = await Mlflow.PostAsync("experiments/search", new { view_type = "DELETED_ONLY" });
        Assert.Contains(deleted.GetProperty("experiments").EnumerateArray(), e => e.GetProperty("experiment_id").GetString() == id);

        await Mlflow.PostAsync("experiments/restore", new { experiment_id = id });
        Assert.Equal("active", (await Mlflow.GetAsync("experiments/get", $"experiment_id={id}")).GetProperty("experiment").GetProperty("lifecycle_stage").GetString());
    }

    [Fact]
    public async Task Search_filters_orders_and_pages_with_opaque_tokens()
    {
        foreach (var name in new[] { "search-a", "search-b", "search-c", "other" })
        {
            await Mlflow.PostAsync("experiments/create", new { name, tags = new[] { new { key = "kind", value = name.StartsWith("search", StringComparison.Ordinal) ? "s" : "o" } } });
        }

        var names = new List<string>();
        string? token = null;
        var pages = 0;
        do
        {
            var page = await Mlflow.PostAsync("experiments/search", new { filter = "name LIKE 'search-%' AND tags.kind = 's'", order_by = new[] { "name DESC" }, max_results = 2, page_token = token });
            names.AddRange(page.GetProperty("experiments").EnumerateArray().Select(e => e.GetProperty("name").GetString()!));
            token = page.TryGetProperty("next_page_token", out var next) ? next.GetString() : null;
            pages++;
        }
        while (token is not null);

        Assert.Equal(["search-c", "search-b", "search-a"], names);
        Assert.Equal(2, pages);

        var viaGet = await Mlflow.GetAsync("experiments/search", "filter=name%20ILIKE%20'OTHER'&max_results=5");
        Assert.Equal("other", Assert.Single(viaGet.GetProperty("experiments").EnumerateArray()).GetProperty("name").GetString());
    }

    [Fact]
    public async Task The_ajax_api_prefix_serves_the_same_api()
    {
        var ajax = new MlflowClient(_registry.Host.Client, "/ajax-api/2.0/mlflow");
        var experiment = (await ajax.GetAsync("experiments/get", "experiment_id=0")).GetProperty("experiment");
        Assert.Equal("Default", experiment.GetProperty("name").GetString());
    }
}
