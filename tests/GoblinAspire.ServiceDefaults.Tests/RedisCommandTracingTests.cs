using System.Collections.Concurrent;
using System.Diagnostics;
using GoblinAspire.ServiceDefaults.Redis;
using GoblinAspire.Testing;
using StackExchange.Redis;

namespace GoblinAspire.ServiceDefaults.Tests;

[Collection(PlatformServers.Collection)]
public sealed class RedisCommandTracingTests(PlatformServers servers)
{
    [Fact]
    public async Task Commands_become_client_spans_under_the_calling_activity_without_keys_or_values()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is RedisCommandTracing.ActivitySourceName or "probe",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);

        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(servers.Redis.ConnectionString);
        using var tracing = new RedisCommandTracing(multiplexer, TimeProvider.System);
        using var probe = new ActivitySource("probe");

        ActivityTraceId traceId;
        using (var parent = probe.StartActivity("request"))
        {
            traceId = parent!.TraceId;
            await multiplexer.GetDatabase().StringSetAsync("secret-key", "secret-value");
            await multiplexer.GetDatabase().StringGetAsync("secret-key");
        }

        tracing.Drain();
        var redisSpans = spans.Where(s => s.Source.Name == RedisCommandTracing.ActivitySourceName && s.TraceId == traceId).ToList();
        Assert.Contains(redisSpans, s => s.DisplayName == "SET");
        Assert.Contains(redisSpans, s => s.DisplayName == "GET");
        Assert.All(redisSpans, s =>
        {
            Assert.Equal(ActivityKind.Client, s.Kind);
            Assert.Equal("redis", s.GetTagItem("db.system.name"));
            Assert.DoesNotContain(s.TagObjects, tag => tag.Value?.ToString()?.Contains("secret", StringComparison.Ordinal) == true);
        });
    }
}
