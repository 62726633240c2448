using System.Net;
using GoblinAspire.AppHost.Tests.Platform;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;

namespace GoblinAspire.AppHost.Tests;

/// <summary>An hour-long rate window, so no test's requests straddle a window's edge (windows align to the clock).</summary>
public sealed class LimitsPlatform : PlatformFixture
{
    protected override void Configure(IDistributedApplicationTestingBuilder appHost) =>
        appHost.CreateResourceBuilder<ProjectResource>(PlatformResources.Gateway).WithEnvironment("Gateway__Access__RateWindow", "01:00:00");
}

/// <summary>The gateway's two replicas share one rate limit through Redis, and keep answering while Redis is stopped.</summary>
[Collection(WholePlatformCollection.Name)]
public sealed class SharedLimitTests(LimitsPlatform platform) : IClassFixture<LimitsPlatform>
{
    private const string Question = """{"model":"goblin-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":2}""";

    [Fact]
    public async Task Two_gateway_replicas_enforce_one_requests_per_minute_limit()
    {
        var key = await platform.CreateKeyAsync(rpm: 4);
        var replicas = await platform.ReplicaClientsAsync(PlatformResources.Gateway, key);
        Assert.Equal(2, replicas.Count);
        var statuses = await AlternateAsync(replicas, 10);
        Assert.Equal(4, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(6, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
        Assert.All(statuses.Take(4), s => Assert.Equal(HttpStatusCode.OK, s));
    }

    [Fact]
    public async Task With_redis_stopped_by_its_command_the_gateway_keeps_answering_and_shared_limits_return()
    {
        var key = await platform.CreateKeyAsync(rpm: 1000);
        var replicas = await platform.ReplicaClientsAsync(PlatformResources.Gateway, key);
        var redis = (await platform.ReplicasAsync(PlatformResources.Redis)).Single().ResourceId;
        var stopped = await platform.App.ResourceCommands.ExecuteCommandAsync(redis, KnownResourceCommands.StopCommand);
        Assert.True(stopped.Success, stopped.Message);
        try
        {
            using var exited = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await platform.App.ResourceNotifications.WaitForResourceAsync(PlatformResources.Redis, e => e.Snapshot.State?.Text is "Exited" or "Finished" or "Stopped", exited.Token);
            var statuses = await AlternateAsync(replicas, 6);
            Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        }
        finally
        {
            var started = await platform.App.ResourceCommands.ExecuteCommandAsync(redis, KnownResourceCommands.StartCommand);
            Assert.True(started.Success, started.Message);
        }

        using (var healthy = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            await platform.App.ResourceNotifications.WaitForResourceHealthyAsync(PlatformResources.Redis, healthy.Token);
        }

        // A fresh key each try: once both replicas admit through Redis again, the two together allow exactly the limit.
        await Eventually.HoldsAsync(async () =>
        {
            var statuses = await AlternateAsync(await platform.ReplicaClientsAsync(PlatformResources.Gateway, await platform.CreateKeyAsync(rpm: 2)), 6);
            return statuses.Count(s => s == HttpStatusCode.OK) == 2 && statuses.Count(s => s == HttpStatusCode.TooManyRequests) == 4;
        }, TimeSpan.FromSeconds(60), "one shared limit again");
    }

    /// <summary>Sends <paramref name="count"/> requests, alternating between the replicas.</summary>
    private static async Task<List<HttpStatusCode>> AlternateAsync(IReadOnlyList<HttpClient> replicas, int count)
    {
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < count; i++)
        {
            using var response = await replicas[i % replicas.Count].PostAsync("/v1/chat/completions", PlatformFixture.Json(Question));
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.Contains("rate_limit_exceeded", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            statuses.Add(response.StatusCode);
        }

        return statuses;
    }
}
