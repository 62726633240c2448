using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using GoblinAspire.Testing;
using GoblinAspire.Testing.Robustness;
using GoblinAspire.TrainingWorker.Queue;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace GoblinAspire.TrainingWorker.Tests;

/// <summary>
/// Thousands of seeded, mutated calls to the job API: never a 5xx, every error a problem, the worker healthy after,
/// and the jobs it said it created, and only those, stored whole.
/// </summary>
[Collection(PlatformServers.Collection)]
public sealed class JobApiRobustnessTests(PlatformServers servers, ITestOutputHelper output) : IAsyncLifetime
{
    private const int Requests = 10_000;
    private const int MaxSpecBytes = 16 * 1024;
    private TrainingPlatform _platform = null!;
    private TestWebHost _worker = null!;

    public async Task InitializeAsync()
    {
        _platform = await TrainingPlatform.StartAsync(servers);
        // No slots on any queue: what is submitted here is stored and never run, so every request stays cheap.
        var settings = new Dictionary<string, string?> { ["TrainingWorker__MaxSpecBytes"] = MaxSpecBytes.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        foreach (var queue in Jobs.JobQueues.ByRank)
        {
            settings[$"TrainingWorker__QueueConcurrency__{queue}"] = "0";
        }

        _worker = await _platform.StartWorkerAsync(settings);
    }

    public async Task DisposeAsync() => await _platform.DisposeAsync();

    [Fact]
    public async Task Ten_thousand_mutated_requests_get_no_5xx_only_problem_details_and_leave_no_half_written_job()
    {
        var existing = (await TrainingPlatform.SubmitAsync(_worker.Client, new { name = "existing", command = new[] { "true" } })).GetProperty("id").GetString()!;
        var spec = """
            {"name": "fuzzed", "queue": "default", "priority": 3, "executor": "local", "command": ["sh", "-c", "exit 0"],
             "env": {"EPOCHS": "2"}, "max_attempts": 2, "timeout_seconds": 60, "checkpoint_interval_seconds": 30,
             "experiment": "fuzz", "registered_model": "fuzz-model", "output_artifact": "model/model.json", "register_stage": "Staging"}
            """;
        RequestTemplate[] templates =
        [
            new(HttpMethod.Post, "/jobs", spec),
            new(HttpMethod.Post, "/jobs", """{"name": "tiny", "command": ["true"]}"""),
            new(HttpMethod.Post, "/jobs", """{"name": "keyed", "command": ["true"], "idempotency_key": "fuzz-key", "resources": {"gpu_count": 0, "disk_gb": 10}}"""),
            new(HttpMethod.Get, "/jobs?state=queued&queue=default&limit=5"),
            new(HttpMethod.Get, $"/jobs?limit=2&before={existing}"),
            new(HttpMethod.Get, $"/jobs/{existing}"),
            new(HttpMethod.Get, $"/jobs/{existing}/events?after=0&limit=10"),
            new(HttpMethod.Get, $"/jobs/{existing}/logs?attempt=1&after=0"),
            new(HttpMethod.Post, $"/jobs/{Guid.NewGuid()}/cancel"),
            new(HttpMethod.Get, "/budget"),
        ];
        var seed = RobustnessRun.Seed();
        var created = new ConcurrentDictionary<string, string>();
        var report = await RobustnessRun.RunAsync(_worker.Client, new RequestMutator(seed, templates, MaxSpecBytes), Requests, (request, response, body) =>
        {
            var status = (int)response.StatusCode;
            if (status >= 400)
            {
                if (request.Method == HttpMethod.Head)
                {
                    return null;
                }

                if (response.Content.Headers.ContentType?.MediaType != "application/problem+json")
                {
                    return $"{status} as {response.Content.Headers.ContentType?.MediaType ?? "no content type"}: {RobustnessRun.Excerpt(body)}";
                }

                try
                {
                    using var problem = JsonDocument.Parse(body);
                    return problem.RootElement.TryGetProperty("status", out var s) && s.GetInt32() == status && problem.RootElement.TryGetProperty("title", out _)
                        ? null
                        : $"{status} with a problem lacking status or title: {RobustnessRun.Excerpt(body)}";
                }
                catch (JsonException)
                {
                    return $"{status} with a body that is not a problem: {RobustnessRun.Excerpt(body)}";
                }
            }

            // Only a submission that stored a new job answers 201, whatever the path's spelling.
            if (response.StatusCode is HttpStatusCode.Created)
            {
                using var job = JsonDocument.Parse(body);
                created[job.RootElement.GetProperty("id").GetString()!] = job.RootElement.GetProperty("name").GetString()!;
            }

            return null;
        });
        output.WriteLine(report.ToString());
        RobustnessRun.AssertClean(report, Requests);

        using var health = await _worker.Client.GetAsync("/health");
        Assert.True(health.StatusCode == HttpStatusCode.OK, $"seed {seed}: /health answered {(int)health.StatusCode} after the run");

        // Every job the API said it created is readable and whole; nothing else was stored.
        foreach (var (id, name) in created)
        {
            var job = await _worker.Client.GetFromJsonAsync<JsonElement>($"/jobs/{id}");
            Assert.Equal(name, job.GetProperty("name").GetString());
            Assert.Equal(name, job.GetProperty("spec").GetProperty("name").GetString());
        }

        var dataSource = _worker.Services.GetRequiredService<JobQueue>().DataSource;
        await using var command = dataSource.CreateCommand("""
            SELECT count(*), count(*) FILTER (WHERE (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.kind = 'submitted') <> 1)
            FROM jobs j WHERE j.id <> @existing
            """);
        command.Parameters.AddWithValue("existing", Guid.Parse(existing));
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.True(reader.GetInt64(0) == created.Count, $"seed {seed}: {reader.GetInt64(0)} jobs stored, {created.Count} reported created");
        Assert.True(reader.GetInt64(1) == 0, $"seed {seed}: {reader.GetInt64(1)} jobs without exactly one 'submitted' event");
    }
}
