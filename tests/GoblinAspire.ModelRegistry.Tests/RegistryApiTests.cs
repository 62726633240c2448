using System.Net;
using System.Text.Json;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace GoblinAspire.ModelRegistry.Tests;

[Collection(PlatformServers.Collection)]
public sealed class RegistryApiTests(PlatformServers servers) : IAsyncLifetime
{
    private RegistryHost _registry = null!;

    private MlflowClient Mlflow => _registry.Mlflow;

    public async Task InitializeAsync() => _registry = await RegistryHost.StartAsync(servers);

    public async Task DisposeAsync() => await _registry.DisposeAsync();

    private async Task<string> CreateVersionAsync(string model, string source = "mlflow-artifacts:/1/run/artifacts/model") =>
        (await Mlflow.PostAsync("model-versions/create", new { name = model, source, run_id = "abc123" })).GetProperty("model_version").GetProperty("version").GetString()!;

    [Fact]
    public async Task Registered_model_lifecycle_with_mlflow_messages()
    {
        var created = (await Mlflow.PostAsync("registered-models/create", new { name = "chat-small", description = "demo", tags = new[] { new { key = "task", value = "chat" } } })).GetProperty("registered_model");
        Assert.Equal("chat-small", created.GetProperty("name").GetString());
        Assert.Equal("demo", created.GetProperty("description").GetString());
        Assert.True(created.GetProperty("creation_timestamp").GetInt64() > 0);

        MlflowClient.AssertError(await Mlflow.PostAsync("registered-models/create", new { name = "chat-small" }, HttpStatusCode.BadRequest), "RESOURCE_ALREADY_EXISTS", "Registered Model (name=chat-small) already exists.");
        MlflowClient.AssertError(await Mlflow.GetAsync("registered-models/get", "name=nope", HttpStatusCode.NotFound), "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=nope not found");

        await CreateVersionAsync("chat-small");
        var updated = (await Mlflow.PatchAsync("registered-models/update", new { name = "chat-small", description = "v2" })).GetProperty("registered_model");
        Assert.Equal("v2", updated.GetProperty("description").GetString());
        await Mlflow.PostAsync("registered-models/set-tag", new { name = "chat-small", key = "owner", value = "ana" });
        await Mlflow.DeleteAsync("registered-models/delete-tag", new { name = "chat-small", key = "task" });

        var renamed = (await Mlflow.PostAsync("registered-models/rename", new { name = "chat-small", new_name = "chat-tiny" })).GetProperty("registered_model");
        Assert.Equal("chat-tiny", renamed.GetProperty("name").GetString());
        Assert.Equal("owner", Assert.Single(renamed.GetProperty("tags").EnumerateArray()).GetProperty("key").GetString());
        var version = (await Mlflow.GetAsync("model-versions/get", "name=chat-tiny&version=1")).GetProperty("model_version");
        Assert.Equal("chat-tiny", version.GetProperty("name").GetString());

        var found = await Mlflow.GetAsync("registered-models/search", "filter=name%20LIKE%20'chat-%25'");
        Assert.Equal("chat-tiny", Assert.Single(found.GetProperty("registered_models").EnumerateArray()).GetProperty("name").GetString());

        await Mlflow.DeleteAsync("registered-models/delete", new { name = "chat-tiny" });
        await Mlflow.GetAsync("registered-models/get", "name=chat-tiny", HttpStatusCode.NotFound);
        await Mlflow.GetAsync("model-versions/get", "name=chat-tiny&version=1", HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Concurrent_version_creates_get_distinct_consecutive_numbers()
    {
        await Mlflow.PostAsync("registered-models/create", new { name = "race" });
        var versions = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => CreateVersionAsync("race")));
        Assert.Equal(Enumerable.Range(1, 20).Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)), versions.OrderBy(v => int.Parse(v, System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact]
    public async Task Transition_with_archive_moves_production_atomically_and_is_audited()
    {
        await Mlflow.PostAsync("registered-models/create", new { name = "ranker" });
        await CreateVersionAsync("ranker");
        await CreateVersionAsync("ranker");
        await CreateVersionAsync("ranker");
        var first = (await Mlflow.PostAsync("model-versions/transition-stage", new { name = "ranker", version = "1", stage = "production", archive_existing_versions = false })).GetProperty("model_version");
        Assert.Equal("Production", first.GetProperty("current_stage").GetString());
        await Mlflow.PostAsync("model-versions/transition-stage", new { name = "ranker", version = "2", stage = "Staging" });

        await Mlflow.PostAsync("model-versions/transition-stage", new { name = "ranker", version = "3", stage = "Production", archive_existing_versions = true });
        var stages = (await Mlflow.GetAsync("model-versions/search", "filter=name%3D'ranker'")).GetProperty("model_versions").EnumerateArray()
            .ToDictionary(v => v.GetProperty("version").GetString()!, v => v.GetProperty("current_stage").GetString());
        Assert.Equal("Archived", stages["1"]);
        Assert.Equal("Staging", stages["2"]);
        Assert.Equal("Production", stages["3"]);

        var latest = await Mlflow.PostAsync("registered-models/get-latest-versions", new { name = "ranker", stages = new[] { "Production", "staging" } });
        Assert.Equal(["2", "3"], latest.GetProperty("model_versions").EnumerateArray().Select(v => v.GetProperty("version").GetString()).Order());

        MlflowClient.AssertError(await Mlflow.PostAsync("model-versions/transition-stage", new { name = "ranker", version = "1", stage = "Prod" }, HttpStatusCode.BadRequest), "INVALID_PARAMETER_VALUE", "Invalid Model Version stage: Prod. Value must be one of None, Staging, Production, Archived.");

        var audit = await _registry.Host.Services.GetRequiredService<Storage.RegistryStore>().AuditAsync("ranker", CancellationToken.None);
        Assert.Contains(audit, e => e is { Change: "stage", Version: 1, From: "Production", To: "Archived" });
        Assert.Contains(audit, e => e is { Change: "stage", Version: 3, From: "None", To: "Production" });
    }

    [Fact]
    public async Task Aliases_are_unique_per_model_move_when_set_again_and_are_audited()
    {
        await Mlflow.PostAsync("registered-models/create", new { name = "aliased" });
        await CreateVersionAsync("aliased");
        await CreateVersionAsync("aliased");
        await Mlflow.PostAsync("registered-models/alias", new { name = "aliased", alias = "champion", version = "1" });
        await Mlflow.PostAsync("registered-models/alias", new { name = "aliased", alias = "champion", version = "2" });

        var byAlias = (await Mlflow.GetAsync("registered-models/alias", "name=aliased&alias=champion")).GetProperty("model_version");
        Assert.Equal("2", byAlias.GetProperty("version").GetString());
        Assert.Equal("champion", Assert.Single(byAlias.GetProperty("aliases").EnumerateArray()).GetString());
        var model = (await Mlflow.GetAsync("registered-models/get", "name=aliased")).GetProperty("registered_model");
        Assert.Equal("2", Assert.Single(model.GetProperty("aliases").EnumerateArray()).GetProperty("version").GetString());

        await Mlflow.DeleteAsync("registered-models/alias", new { name = "aliased", alias = "champion" });
        MlflowClient.AssertError(await Mlflow.GetAsync("registered-models/alias", "name=aliased&alias=champion", HttpStatusCode.NotFound), "RESOURCE_DOES_NOT_EXIST", "Registered model alias champion not found.");

        foreach (var bad in new[] { "v1", "latest", "no spaces", "" })
        {
            await Mlflow.PostAsync("registered-models/alias", new { name = "aliased", alias = bad, version = "1" }, HttpStatusCode.BadRequest);
        }

        var audit = await _registry.Host.Services.GetRequiredService<Storage.RegistryStore>().AuditAsync("aliased", CancellationToken.None);
        Assert.Equal(["alias_set", "alias_set", "alias_deleted"], audit.Select(a => a.Change));
        Assert.Equal("1", audit[1].From);
        Assert.Equal("2", audit[1].To);
    }

    [Theory]
    [InlineData("v1", "Version alias name 'v1' is reserved.")]
    [InlineData("V2", "Version alias name 'V2' is reserved.")]
    [InlineData("v10", "Version alias name 'v10' is reserved.")]
    [InlineData("latest", "'latest' alias name (case insensitive) is reserved.")]
    [InlineData("LaTeSt", "'latest' alias name (case insensitive) is reserved.")]
    [InlineData("no spaces", "Invalid alias name: 'no spaces'. Names may only contain alphanumerics, underscores (_), and dashes (-).")]
    [InlineData("line\n", "Invalid alias name: 'line\n'. Names may only contain alphanumerics, underscores (_), and dashes (-).")]
    public async Task Refused_aliases_get_mlflows_exact_messages(string alias, string message)
    {
        await Mlflow.PostAsync("registered-models/create", new { name = "reserved" });
        await CreateVersionAsync("reserved");
        var error = await Mlflow.PostAsync("registered-models/alias", new { name = "reserved", alias, version = "1" }, HttpStatusCode.BadRequest);
        MlflowClient.AssertError(error, "INVALID_PARAMETER_VALUE");
        Assert.Equal(message, error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Aliases_that_only_look_close_to_reserved_ones_are_accepted_up_to_255_characters()
    {
        await Mlflow.PostAsync("registered-models/create", new { name = "near" });
        await CreateVersionAsync("near");
        foreach (var alias in new[] { "v1a", "version1", "latest-2", "vv1", new string('a', 255) })
        {
            await Mlflow.PostAsync("registered-models/alias", new { name = "near", alias, version = "1" });
        }

        var error = await Mlflow.PostAsync("registered-models/alias", new { name = "near", alias = new string('a', 256), version = "1" }, HttpStatusCode.BadRequest);
        Assert.Equal("'Registered model alias name' exceeds the maximum length of 255 characters", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Versions_update_tag_download_uri_search_and_delete()
    {
        await Mlflow.PostAsync("registered-models/create", new { name = "tagged" });
        await CreateVersionAsync("tagged", "mlflow-artifacts:/models/tagged/1");
        await CreateVersionAsync("tagged", "mlflow-artifacts:/models/tagged/2");
        var updated = (await Mlflow.PatchAsync("model-versions/update", new { name = "tagged", version = "1", description = "first" })).GetProperty("model_version");
        Assert.Equal("first", updated.GetProperty("description").GetString());
        Assert.Equal("READY", updated.GetProperty("status").GetString());
        await Mlflow.PostAsync("model-versions/set-tag", new { name = "tagged", version = "2", key = "validated", value = "true" });
        Assert.Equal("mlflow-artifacts:/models/tagged/2", (await Mlflow.GetAsync("model-versions/get-download-uri", "name=tagged&version=2")).GetProperty("artifact_uri").GetString());

        var tagged = await Mlflow.GetAsync("model-versions/search", "filter=name%3D'tagged'%20AND%20tags.validated%3D'true'");
        Assert.Equal("2", Assert.Single(tagged.GetProperty("model_versions").EnumerateArray()).GetProperty("version").GetString());
        var later = await Mlflow.GetAsync("model-versions/search", "filter=name%3D'tagged'%20AND%20version_number%20%3E%201");
        Assert.Equal("2", Assert.Single(later.GetProperty("model_versions").EnumerateArray()).GetProperty("version").GetString());

        await Mlflow.DeleteAsync("model-versions/delete-tag", new { name = "tagged", version = "2", key = "validated" });
        await Mlflow.DeleteAsync("model-versions/delete", new { name = "tagged", version = "1" });
        MlflowClient.AssertError(await Mlflow.GetAsync("model-versions/get", "name=tagged&version=1", HttpStatusCode.NotFound), "RESOURCE_DOES_NOT_EXIST", "Model Version (name=tagged, version=1) not found");
        // Numbers are never reused after a delete.
        Assert.Equal("3", await CreateVersionAsync("tagged"));
    }
}
