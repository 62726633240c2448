using System.Collections.Concurrent;
using System.Net;
using System.Text;

namespace GoblinAspire.Testing.Robustness;

/// <summary>What one robustness run sent and got back.</summary>
public sealed record RobustnessReport(int Seed, int Sent, IReadOnlyDictionary<HttpStatusCode, int> Statuses, IReadOnlyList<string> Failures)
{
    public override string ToString() =>
        $"seed {Seed}: {Sent} requests, statuses {string.Join(", ", Statuses.OrderBy(s => (int)s.Key).Select(s => $"{(int)s.Key}×{s.Value}"))}";
}

/// <summary>
/// Sends a fixed number of mutated requests with a few in flight at once and checks every answer with the API's own
/// rule (status below 500, errors in the API's shape). The count is the bound; the deadline only stops a run that hangs.
/// </summary>
public static class RobustnessRun
{
    public static async Task<RobustnessReport> RunAsync(
        HttpClient client,
        RequestMutator mutator,
        int count,
        Func<MutatedRequest, HttpResponseMessage, byte[], string?> check,
        Action<MutatedRequest, HttpResponseMessage>? observe = null,
        int parallelism = 4,
        TimeSpan? deadline = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(mutator);
        ArgumentNullException.ThrowIfNull(check);
        // The requests are made up front, on one thread, so the seed alone fixes the sequence.
        var requests = Enumerable.Range(0, count).Select(_ => mutator.Next()).ToArray();
        var statuses = new ConcurrentDictionary<HttpStatusCode, int>();
        var failures = new ConcurrentQueue<string>();
        var sent = 0;
        using var stop = new CancellationTokenSource(deadline ?? TimeSpan.FromMinutes(5));
        try
        {
            await Parallel.ForEachAsync(requests, new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = stop.Token }, async (request, ct) =>
            {
                using var message = request.ToMessage();
                string? failure;
                try
                {
                    using var response = await client.SendAsync(message, HttpCompletionOption.ResponseContentRead, ct);
                    var body = await response.Content.ReadAsByteArrayAsync(ct);
                    statuses.AddOrUpdate(response.StatusCode, 1, (_, n) => n + 1);
                    observe?.Invoke(request, response);
                    failure = (int)response.StatusCode >= 500
                        ? $"{(int)response.StatusCode}: {Excerpt(body)}"
                        : IsServerRefusal(request, response, body) ? null : check(request, response, body);
                }
                catch (HttpRequestException ex)
                {
                    // Kestrel closes the connection on a malformed target while a large body is still being sent.
                    failure = request.MalformedTarget ? null : $"connection failed: {ex.Message}";
                }

                Interlocked.Increment(ref sent);
                if (failure is not null && failures.Count < 20)
                {
                    failures.Enqueue($"{request.Description} → {failure}");
                }
            });
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            failures.Enqueue($"the run stopped at its deadline after {sent} of {count} requests");
        }

        return new RobustnessReport(mutator.Seed, sent, statuses, [.. failures]);
    }

    /// <summary>Fails with every recorded failure and the seed that reproduces them.</summary>
    public static void AssertClean(RobustnessReport report, int minimum)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (report.Failures.Count > 0 || report.Sent < minimum)
        {
            throw new Xunit.Sdk.XunitException($"{report}\n{string.Join("\n", report.Failures)}");
        }
    }

    /// <summary>The seed: ROBUSTNESS_SEED to replay a failure, else a fresh one, printed by the report.</summary>
    public static int Seed() =>
        int.TryParse(Environment.GetEnvironmentVariable("ROBUSTNESS_SEED"), out var seed) ? seed : Random.Shared.Next();

    /// <summary>Kestrel's own bare 400 for a malformed request target: HTTP refused it, the API never saw it.</summary>
    private static bool IsServerRefusal(MutatedRequest request, HttpResponseMessage response, byte[] body) =>
        request.MalformedTarget && response.StatusCode == HttpStatusCode.BadRequest && body.Length == 0 && response.Headers.ConnectionClose == true;

    public static string Excerpt(byte[] body) =>
        body.Length == 0 ? "(empty body)" : Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, 300));
}
