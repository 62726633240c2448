using System.Net;
using System.Net.Http.Headers;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.SystemTests.Platform;
using GoblinAspire.Testing;

namespace GoblinAspire.SystemTests;

public sealed class LimitsPlatform : WholePlatform;

/// <summary>The gateway's replicas share one rate limit through Redis, and keep answering while Redis is away.</summary>
[Collection(WholePlatformCollection.Name)]
public sealed class SharedLimitTests(LimitsPlatform platform) : IClassFixture<LimitsPlatform>
{
    private const string Question = """{"model":"goblin-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":2}""";

    [Fact]
    public async Task Two_gateway_replicas_enforce_one_requests_per_minute_limit()
    {
        Assert.Equal(2, platform.Platform.Replicas);
        var key = await CreateKeyAsync(rpm: 4);
        var statuses = await AlternateAsync(key, 10);
        Assert.Equal(4, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(6, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
        Assert.All(statuses.Take(4), s => Assert.Equal(HttpStatusCode.OK, s));
    }

    [Fact]
    public async Task Without_redis_the_gateway_keeps_answering_and_shared_limits_return_with_redis()
    {
        var key = await CreateKeyAsync(rpm: 1000);
        await platform.Platform.Redis.StopAsync(graceful: false);
        try
        {
            using var gateway = platform.Client(PlatformResources.Gateway);
            await Eventually.HoldsAsync(async () => (await gateway.GetAsync("/health")).StatusCode != HttpStatusCode.OK, TimeSpan.FromSeconds(20), "the gateway noticing Redis is gone");
            var statuses = await AlternateAsync(key, 6);
            Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        }
        finally
        {
            await platform.Platform.Redis.StartAsync();
        }

        for (var replica = 0; replica < platform.Platform.Replicas; replica++)
        {
            using var gateway = platform.Client(PlatformResources.Gateway, replica);
            await Eventually.HoldsAsync(async () => (await gateway.GetAsync("/health")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(30), $"gateway-{replica} back on Redis");
        }

        // A fresh key each try: once both replicas admit through Redis again, the two together allow exactly the limit.
        await Eventually.HoldsAsync(async () =>
        {
            var statuses = await AlternateAsync(await CreateKeyAsync(rpm: 2), 6);
            return statuses.Count(s => s == HttpStatusCode.OK) == 2 && statuses.Count(s => s == HttpStatusCode.TooManyRequests) == 4;
        }, TimeSpan.FromSeconds(30), "one shared limit again");
    }

    private async Task<string> CreateKeyAsync(int rpm)
    {
        using var admin = platform.Client(PlatformResources.Gateway);
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", platform.AdminKey);
        using var response = await admin.PostAsync("/admin/keys", WholePlatform.Json($$"""{"name":"system-{{Guid.NewGuid():N}}","team":"platform","rpm":{{rpm}}}"""));
        var body = await WholePlatform.ReadJsonAsync(response);
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode} {body}");
        return body.GetProperty("key").GetString()!;
    }

    /// <summary>Sends <paramref name="count"/> requests with <paramref name="key"/>, alternating between the replicas.</summary>
    private async Task<List<HttpStatusCode>> AlternateAsync(string key, int count)
    {
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < count; i++)
        {
            using var gateway = platform.Client(PlatformResources.Gateway, i % platform.Platform.Replicas);
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = WholePlatform.Json(Question) };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var response = await gateway.SendAsync(request);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.Contains("rate_limit_exceeded", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            statuses.Add(response.StatusCode);
        }

        return statuses;
    }
}
