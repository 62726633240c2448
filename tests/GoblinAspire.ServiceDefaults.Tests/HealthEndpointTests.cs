using System.Net;
using GoblinAspire.Testing;

namespace GoblinAspire.ServiceDefaults.Tests;

/// <summary>Each test owns its servers, because it stops them.</summary>
public sealed class HealthEndpointTests
{
    private static readonly TimeSpan TurnsRedWithin = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task Health_turns_unhealthy_when_redis_stops_and_recovers_when_it_returns_while_alive_stays_up()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var service = await ServiceUnderTest.StartAsync(
            new Dictionary<string, string?> { ["ConnectionStrings__redis"] = redis.ConnectionString },
            postgres: false);

        await Eventually.HoldsAsync(() => IsStatusAsync(service, "/health", HttpStatusCode.OK), TimeSpan.FromSeconds(10), "healthy at start");

        await redis.StopAsync();
        var tookToTurnRed = await Eventually.HoldsAsync(() => IsStatusAsync(service, "/health", HttpStatusCode.ServiceUnavailable), TimeSpan.FromSeconds(5), "unhealthy after Redis stopped");
        Assert.True(tookToTurnRed < TurnsRedWithin, $"took {tookToTurnRed}");
        Assert.Equal(HttpStatusCode.OK, (await service.Client.GetAsync("/alive")).StatusCode);

        var body = await service.Client.GetStringAsync("/alive");
        Assert.Contains("\"status\":\"Healthy\"", body, StringComparison.Ordinal);
        Assert.DoesNotContain(redis.Password, await (await service.Client.GetAsync("/health")).Content.ReadAsStringAsync(), StringComparison.Ordinal);

        await redis.StartAgainAsync();
        await Eventually.HoldsAsync(() => IsStatusAsync(service, "/health", HttpStatusCode.OK), TimeSpan.FromSeconds(20), "healthy after Redis returned");
    }

    [Fact]
    public async Task Health_turns_unhealthy_when_postgres_stops_and_recovers_when_it_returns_while_alive_stays_up()
    {
        await using var postgres = await PostgresServer.StartAsync();
        await using var service = await ServiceUnderTest.StartAsync(
            new Dictionary<string, string?> { ["ConnectionStrings__gatewaydb"] = postgres.ConnectionString() },
            redis: false);

        await Eventually.HoldsAsync(() => IsStatusAsync(service, "/health", HttpStatusCode.OK), TimeSpan.FromSeconds(10), "healthy at start");

        await postgres.StopAsync();
        var tookToTurnRed = await Eventually.HoldsAsync(() => IsStatusAsync(service, "/health", HttpStatusCode.ServiceUnavailable), TimeSpan.FromSeconds(5), "unhealthy after PostgreSQL stopped");
        Assert.True(tookToTurnRed < TurnsRedWithin, $"took {tookToTurnRed}");
        Assert.Equal(HttpStatusCode.OK, (await service.Client.GetAsync("/alive")).StatusCode);
        Assert.DoesNotContain(postgres.Password, await (await service.Client.GetAsync("/health")).Content.ReadAsStringAsync(), StringComparison.Ordinal);

        await postgres.StartAgainAsync();
        await Eventually.HoldsAsync(() => IsStatusAsync(service, "/health", HttpStatusCode.OK), TimeSpan.FromSeconds(20), "healthy after PostgreSQL returned");
    }

    [Fact]
    public async Task A_redis_that_never_started_does_not_hold_the_health_probe()
    {
        var unusedPort = FreePort.Next();
        await using var service = await ServiceUnderTest.StartAsync(
            new Dictionary<string, string?> { ["ConnectionStrings__redis"] = $"127.0.0.1:{unusedPort},password=x,connectTimeout=500" },
            postgres: false);

        var started = DateTime.UtcNow;
        var response = await service.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.True(DateTime.UtcNow - started < TurnsRedWithin);
        Assert.Equal(HttpStatusCode.OK, (await service.Client.GetAsync("/alive")).StatusCode);
    }

    private static async Task<bool> IsStatusAsync(TestWebHost service, string path, HttpStatusCode expected)
    {
        using var response = await service.Client.GetAsync(path);
        return response.StatusCode == expected;
    }
}
