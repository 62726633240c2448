using System.Diagnostics;
using System.Net.Http.Json;
using Npgsql;

namespace GoblinAspire.Bench;

/// <summary>
/// Submits no-op local jobs to the workers (round-robin, a fixed number in flight), waits until all have succeeded,
/// and reads the timings from the queue's own journal: submit → running latency and dispatch throughput. The
/// baseline is what this machine can do without any queue: starting the same no-op process the same way, with the
/// same parallelism as the workers' slots.
/// </summary>
public static class JobQueueLoad
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length < 4)
        {
            Console.Error.WriteLine("usage: jobs <worker-url,worker-url> <connection-string> <count> <parallelism>");
            return 2;
        }

        var workers = args[0].Split(',').Select(u => new HttpClient { BaseAddress = new Uri(u) }).ToArray();
        var connection = args[1];
        var count = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
        var parallelism = int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture);
        var baseline = await SpawnBaselineAsync(count, parallelism);
        var idle = await IdleLatencyAsync(workers, args[1], 50);

        var run = $"bench-{Guid.NewGuid():N}"[..14];
        var submitted = 0;
        var started = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            using var response = await workers[i % workers.Length].PostAsJsonAsync("/jobs", new { name = $"{run}-{i}", command = new[] { "true" } }, ct);
            response.EnsureSuccessStatusCode();
            Interlocked.Increment(ref submitted);
        });
        var submitSeconds = started.Elapsed.TotalSeconds;

        await using var data = NpgsqlDataSource.Create(connection);
        while (true)
        {
            await using var poll = data.CreateCommand("SELECT count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state IN ('dead', 'failed')) FROM jobs WHERE name LIKE @run");
            poll.Parameters.AddWithValue("run", run + "-%");
            await using var reader = await poll.ExecuteReaderAsync();
            await reader.ReadAsync();
            if (reader.GetInt64(0) + reader.GetInt64(1) >= count)
            {
                break;
            }

            await Task.Delay(100);
        }

        await using var timings = data.CreateCommand("""
            WITH j AS (SELECT id FROM jobs WHERE name LIKE @run),
            e AS (
                SELECT job_id,
                       min(at) FILTER (WHERE kind = 'submitted') AS submitted,
                       min(at) FILTER (WHERE kind = 'claimed') AS claimed,
                       min(at) FILTER (WHERE kind = 'running') AS running,
                       max(at) FILTER (WHERE kind = 'succeeded') AS succeeded
                FROM job_events WHERE job_id IN (SELECT id FROM j) GROUP BY job_id)
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM running - submitted)),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM running - submitted)),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM claimed - submitted)),
                   extract(epoch FROM max(succeeded) - min(claimed)),
                   count(*) FILTER (WHERE succeeded IS NOT NULL),
                   (SELECT count(*) FROM job_events WHERE kind = 'claimed' AND job_id IN (SELECT id FROM j))
            FROM e
            """);
        timings.Parameters.AddWithValue("run", run + "-%");
        await using (var reader = await timings.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            var p50 = reader.GetDouble(0) * 1000;
            var p99 = reader.GetDouble(1) * 1000;
            var claimP50 = reader.GetDouble(2) * 1000;
            var seconds = reader.GetDouble(3);
            var succeeded = reader.GetInt64(4);
            var claims = reader.GetInt64(5);
            Console.WriteLine(FormattableString.Invariant(
                $"idle_submit_to_running_p50_ms={idle.P50:F1} idle_p99_ms={idle.P99:F1} jobs={count} succeeded={succeeded} claims={claims} submit_rate={count / submitSeconds:F0} submit_to_claimed_p50_ms={claimP50:F1} submit_to_running_p50_ms={p50:F1} p99_ms={p99:F1} dispatch_jobs_per_s={count / seconds:F0} baseline_spawn_per_s={baseline:F0} ratio={count / seconds / baseline:F2}"));
        }

        return 0;
    }

    /// <summary>Latency on an idle queue: one job at a time, each submitted once the previous one runs.</summary>
    private static async Task<(double P50, double P99)> IdleLatencyAsync(HttpClient[] workers, string connection, int count)
    {
        await using var data = NpgsqlDataSource.Create(connection);
        var latencies = new List<double>();
        for (var i = 0; i < count; i++)
        {
            using var response = await workers[i % workers.Length].PostAsJsonAsync("/jobs", new { name = $"idle-{Guid.NewGuid():N}", command = new[] { "true" } });
            response.EnsureSuccessStatusCode();
            var id = Guid.Parse((await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("id").GetString()!);
            while (true)
            {
                await using var command = data.CreateCommand("""
                    SELECT extract(epoch FROM max(at) FILTER (WHERE kind = 'running') - min(at) FILTER (WHERE kind = 'submitted'))
                    FROM job_events WHERE job_id = @id HAVING bool_or(kind = 'succeeded')
                    """);
                command.Parameters.AddWithValue("id", id);
                if (await command.ExecuteScalarAsync() is decimal seconds)
                {
                    latencies.Add((double)seconds * 1000);
                    break;
                }

                await Task.Delay(20);
            }
        }

        latencies.Sort();
        return (latencies[latencies.Count / 2], latencies[(int)Math.Ceiling(latencies.Count * 0.99) - 1]);
    }

    private static async Task<double> SpawnBaselineAsync(int count, int parallelism)
    {
        var watch = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = parallelism }, async (_, ct) =>
        {
            using var process = Process.Start(new ProcessStartInfo("setsid", ["--", "true"]) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true })!;
            await process.WaitForExitAsync(ct);
        });
        return count / watch.Elapsed.TotalSeconds;
    }
}
