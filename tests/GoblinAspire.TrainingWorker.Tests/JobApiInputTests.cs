using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GoblinAspire.Testing;

namespace GoblinAspire.TrainingWorker.Tests;

/// <summary>Malformed, oversized and hostile specs: a problem-details answer with the right status, and nothing stored.</summary>
[Collection(PlatformServers.Collection)]
public sealed class JobApiInputTests(PlatformServers servers) : IAsyncLifetime
{
    private TrainingPlatform _platform = null!;
    private TestWebHost _worker = null!;

    public async Task InitializeAsync()
    {
        _platform = await TrainingPlatform.StartAsync(servers);
        // No slots: nothing submitted here should ever run.
        _worker = await _platform.StartWorkerAsync(new Dictionary<string, string?>
        {
            ["TrainingWorker__QueueConcurrency__default"] = "0",
            ["TrainingWorker__QueueConcurrency__training"] = "0",
        });
    }

    public async Task DisposeAsync() => await _platform.DisposeAsync();

    [Fact]
    public async Task An_invalid_spec_lists_every_problem_at_once()
    {
        using var response = await _worker.Client.PostAsJsonAsync("/jobs", new
        {
            name = "../etc/passwd",
            queue = "gpu_party",
            executor = "vastai",
            command = new[] { "python", "bad\0arg" },
            env = new Dictionary<string, string> { ["MLFLOW_RUN_ID"] = "forged", ["1BAD"] = "x" },
            max_usd_per_hour = 5.0,
            max_attempts = 0,
            timeout_seconds = -1,
            registered_model = "m",
            image = "pytorch/pytorch:latest",
        });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        var fields = problem.GetProperty("errors").EnumerateObject().Select(p => p.Name).ToHashSet();
        Assert.Superset(new HashSet<string> { "name", "queue", "executor", "command", "env", "max_usd_per_hour", "max_attempts", "timeout_seconds", "output_artifact", "image" }, fields);
        var env = string.Join(" ", problem.GetProperty("errors").GetProperty("env").EnumerateArray().Select(e => e.GetString()));
        Assert.Contains("reserved", env, StringComparison.Ordinal);
        Assert.Empty((await _worker.Client.GetFromJsonAsync<JsonElement>("/jobs")).GetProperty("jobs").EnumerateArray());
    }

    [Theory]
    [InlineData("{\"name\": \"x\", \"command\": [\"true\"]", "not valid JSON")]
    [InlineData("[1, 2, 3]", "not valid JSON")]
    [InlineData("{\"name\": \"x\", \"command\": \"rm -rf /\"}", "not valid JSON")]
    [InlineData("{\"name\": \"x\", \"command\": [\"true\"], \"shell\": true}", "not valid JSON")]
    [InlineData("null", "not valid JSON")]
    public async Task Malformed_json_and_unknown_fields_are_400_problems(string body, string title)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await _worker.Client.PostAsync("/jobs", content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains(title, problem.GetProperty("title").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_oversized_spec_is_413_whether_or_not_it_declares_its_length()
    {
        var huge = "{\"name\": \"x\", \"command\": [\"" + new string('a', 300 * 1024) + "\"]}";
        using var declared = new StringContent(huge, Encoding.UTF8, "application/json");
        using var response = await _worker.Client.PostAsync("/jobs", declared);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);

        using var chunked = new PushStreamContent(huge);
        using var streamed = await _worker.Client.PostAsync("/jobs", chunked);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, streamed.StatusCode);
        Assert.Equal("application/problem+json", streamed.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Other_content_types_unknown_ids_and_bad_ids_get_problems()
    {
        using var text = new StringContent("name=x", Encoding.UTF8, "application/x-www-form-urlencoded");
        using var unsupported = await _worker.Client.PostAsync("/jobs", text);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, unsupported.StatusCode);

        foreach (var path in new[] { $"/jobs/{Guid.NewGuid()}", "/jobs/not-a-guid", $"/jobs/{Guid.NewGuid()}/events", $"/jobs/{Guid.NewGuid()}/logs" })
        {
            using var missing = await _worker.Client.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
        }

        using var cancel = await _worker.Client.PostAsync($"/jobs/{Guid.NewGuid()}/cancel", null);
        Assert.Equal(HttpStatusCode.NotFound, cancel.StatusCode);
        using var badLimit = await _worker.Client.GetAsync("/jobs?limit=lots");
        Assert.Equal(HttpStatusCode.BadRequest, badLimit.StatusCode);
    }

    [Fact]
    public async Task Budget_shows_the_month()
    {
        var budget = await _worker.Client.GetFromJsonAsync<JsonElement>("/budget");
        Assert.Equal(100m, budget.GetProperty("monthly_budget_usd").GetDecimal());
        Assert.Equal(0.80m, budget.GetProperty("max_usd_per_hour").GetDecimal());
    }

    /// <summary>A body without Content-Length (chunked), as a streaming client sends.</summary>
    private sealed class PushStreamContent : HttpContent
    {
        private readonly string _text;

        public PushStreamContent(string text)
        {
            _text = text;
            Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        }

        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) => stream.WriteAsync(Encoding.UTF8.GetBytes(_text)).AsTask();

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }
}
