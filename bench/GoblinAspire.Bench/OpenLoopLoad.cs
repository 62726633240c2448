using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace GoblinAspire.Bench;

/// <summary>
/// Sends requests at a fixed rate whatever the server does (open loop), and measures each from its scheduled send
/// time, so a slow server cannot hide its queueing by slowing the sender (no coordinated omission). wrk2 would do this,
/// but it is not packaged here. Prints achieved rate, p50, p99 and max in milliseconds, and the error count.
/// </summary>
internal static class OpenLoopLoad
{
    public static async Task<int> RunAsync(string[] args)
    {
        var url = new Uri(args[0]);
        var rate = double.Parse(args[1], CultureInfo.InvariantCulture);
        var seconds = double.Parse(args[2], CultureInfo.InvariantCulture);
        var method = new HttpMethod(args[3]);
        var body = args.Length > 4 ? args[4] : null;

        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 512, PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = TimeSpan.FromSeconds(30) };
        var total = (int)(rate * seconds);
        var latencies = new double[total];
        var errors = 0;
        var tasks = new List<Task>(total);
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < total; i++)
        {
            var scheduled = start + (long)(i / rate * Stopwatch.Frequency);
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), scheduled);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }

            var index = i;
            tasks.Add(Task.Run(async () =>
            {
                using var request = new HttpRequestMessage(method, url);
                if (body is not null)
                {
                    request.Content = new StringContent(body.Replace("{n}", index.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal), Encoding.UTF8, "application/json");
                }

                try
                {
                    using var response = await client.SendAsync(request);
                    await response.Content.ReadAsByteArrayAsync();
                    if (!response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    Interlocked.Increment(ref errors);
                }

                latencies[index] = Stopwatch.GetElapsedTime(scheduled).TotalMilliseconds;
            }));
        }

        await Task.WhenAll(tasks);
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        Array.Sort(latencies);
        double Percentile(double p) => latencies[Math.Min(latencies.Length - 1, (int)Math.Ceiling(p * latencies.Length) - 1)];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"requests={total} rate={total / elapsed:0.0} p50_ms={Percentile(0.50):0.00} p99_ms={Percentile(0.99):0.00} max_ms={latencies[^1]:0.00} errors={errors}"));
        return errors == 0 ? 0 : 1;
    }
}
