using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;
using Npgsql;

namespace GoblinAspire.Gateway.Tests;

/// <summary>Usage recorded in PostgreSQL off the request path, reported by the admin API, and budgets enforced.</summary>
[Collection(PlatformServers.Collection)]
public sealed class SpendTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly OpenAiStandIn _upstream = new();

    public Task InitializeAsync() => _upstream.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    // The stand-in reports 11 input and 7 output tokens per answer: 18 tokens at 10 USD per 1K = 0.18 USD.
    private GatewayConfig Priced() => AccessTests.Config(servers, _upstream, requireKeys: true)
        .Set("Gateway__Providers__0__InputPricePer1K", "10")
        .Set("Gateway__Providers__0__OutputPricePer1K", "10");

    private async Task<long> StoredRequestsAsync(string keyId)
    {
        await using var dataSource = NpgsqlDataSource.Create(servers.Postgres.ConnectionString());
        await using var command = dataSource.CreateCommand("SELECT count(*) FROM usage_records WHERE key_id = @key");
        command.Parameters.AddWithValue("key", Guid.Parse(keyId));
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>
    /// PostgreSQL stopped for 10 s under load: keys already seen keep working from their last known state, an unknown
    /// key gets 503 with Retry-After in OpenAI's shape, nothing is a 500, and every answer becomes a spend row.
    /// </summary>
    [Fact]
    public async Task With_postgres_stopped_seen_keys_keep_working_and_every_answer_is_recorded()
    {
        await using var postgres = await PostgresServer.StartAsync();
        var database = await postgres.CreateDatabaseAsync("outage");
        await using var gateway = await GatewayTestHost.StartAsync(Priced().Set("ConnectionStrings__gatewaydb", database));
        var (id, key) = await AccessTests.CreateKeyAsync(gateway.Client, new { team = "outage" });
        var (_, unseen) = await AccessTests.CreateKeyAsync(gateway.Client, new { team = "outage" });
        Assert.Equal(HttpStatusCode.OK, (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode);

        var answered = 1;
        var statuses = new List<HttpStatusCode>();
        await postgres.StopAsync();
        var outage = DateTime.UtcNow;
        while (DateTime.UtcNow - outage < TimeSpan.FromSeconds(10))
        {
            using var response = await AccessTests.ChatWithKeyAsync(gateway.Client, key);
            statuses.Add(response.StatusCode);
            answered += response.StatusCode == HttpStatusCode.OK ? 1 : 0;
        }

        using (var refused = await AccessTests.ChatWithKeyAsync(gateway.Client, unseen))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter);
            using var error = System.Text.Json.JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
            Assert.Equal("key_store_unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        await postgres.StartAgainAsync();
        Assert.True(statuses.Count > 10, $"only {statuses.Count} requests in 10 s");
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        await Eventually.HoldsAsync(async () =>
        {
            await using var dataSource = NpgsqlDataSource.Create(database);
            await using var command = dataSource.CreateCommand("SELECT count(*) FROM usage_records WHERE key_id = @key");
            command.Parameters.AddWithValue("key", Guid.Parse(id));
            return (long)(await command.ExecuteScalarAsync())! == answered;
        }, TimeSpan.FromSeconds(60), $"{answered} spend rows");
    }

    [Fact]
    public async Task Usage_is_recorded_with_cost_and_reported_by_key_and_model()
    {
        await using var gateway = await GatewayTestHost.StartAsync(Priced());
        var (id, key) = await AccessTests.CreateKeyAsync(gateway.Client, new { team = "spenders" });
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).StatusCode);
        }

        await Eventually.HoldsAsync(async () => await StoredRequestsAsync(id) == 3, TimeSpan.FromSeconds(10), "the usage records");
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/admin/spend?key={id}&group_by=model");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AccessTests.AdminKey);
        using var response = await gateway.Client.SendAsync(request);
        using var report = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var row = Assert.Single(report.RootElement.GetProperty("data").EnumerateArray());
        Assert.Equal("chat", row.GetProperty("group").GetString());
        Assert.Equal(3, row.GetProperty("requests").GetInt64());
        Assert.Equal(33, row.GetProperty("input_tokens").GetInt64());
        Assert.Equal(21, row.GetProperty("output_tokens").GetInt64());
        Assert.Equal(0.54m, row.GetProperty("cost_usd").GetDecimal());

        using var byTeam = new HttpRequestMessage(HttpMethod.Get, "/admin/spend?team=spenders&group_by=day");
        byTeam.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AccessTests.AdminKey);
        using var teamResponse = await gateway.Client.SendAsync(byTeam);
        Assert.Contains(DateTime.UtcNow.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), await teamResponse.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Matches("(?m)^spend_usd_total\\{[^}]*team=\"spenders\"[^}]*\\} 0\\.54", await gateway.Client.GetStringAsync("/metrics"));
    }

    [Fact]
    public async Task A_key_over_its_budget_gets_insufficient_quota()
    {
        await using var gateway = await GatewayTestHost.StartAsync(Priced());
        var (_, key) = await AccessTests.CreateKeyAsync(gateway.Client, new { budget_usd = 0.5m, budget_period = "day" });

        var accepted = 0;
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 10 && refused is null; i++)
        {
            var response = await AccessTests.ChatWithKeyAsync(gateway.Client, key);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                accepted++;
                // Spend is added just after each answer, off the request path.
                await Task.Delay(100);
            }
            else
            {
                refused = response;
            }
        }

        // 0.18 USD a request: three requests leave 0.54 spent against 0.50, so the fourth is refused.
        Assert.Equal(3, accepted);
        Assert.NotNull(refused);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
        Assert.Equal("insufficient_quota", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.NotNull(refused.Headers.RetryAfter);
    }

    [Fact]
    public async Task A_graceful_shutdown_writes_every_accepted_record()
    {
        string id;
        await using (var gateway = await GatewayTestHost.StartAsync(Priced()))
        {
            (id, var key) = await AccessTests.CreateKeyAsync(gateway.Client, new { name = "shutdown" });
            await Task.WhenAll(Enumerable.Range(0, 25).Select(async _ => (await AccessTests.ChatWithKeyAsync(gateway.Client, key)).EnsureSuccessStatusCode()));
        }

        Assert.Equal(25, await StoredRequestsAsync(id));
    }
}
