using System.Net;
using System.Text.Json.Nodes;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace GoblinAspire.Gateway.Tests;

/// <summary>Stored responses last for the configured retention, and the retention settings are checked at start.</summary>
[Collection(PlatformServers.Collection)]
public sealed class ResponsesRetentionTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly ResponsesStandIn _upstream = new(native: false);

    public Task InitializeAsync() => _upstream.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    [Fact]
    public async Task A_response_past_its_retention_is_gone_and_swept()
    {
        var clock = new ShiftedClock();
        await using var gateway = await GatewayTestHost.StartAsync(
            new GatewayConfig(servers)
                .Set("Gateway__Responses__Retention", "00:10:00")
                .Set("Gateway__Responses__SweepInterval", "00:00:01")
                .Provider("chatonly", "openai", _upstream.Url, "chat"),
            builder => builder.Services.AddSingleton<TimeProvider>(clock));

        using var created = await gateway.Client.PostAsync("/v1/responses", GatewayTestHost.Json("""{"model":"chat","input":"keep me"}"""));
        var id = (string)JsonNode.Parse(await created.Content.ReadAsStringAsync())!["id"]!;
        using (var kept = await gateway.Client.GetAsync($"/v1/responses/{id}"))
        {
            Assert.Equal(HttpStatusCode.OK, kept.StatusCode);
        }

        clock.Shift = TimeSpan.FromMinutes(11);
        using (var expired = await gateway.Client.GetAsync($"/v1/responses/{id}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, expired.StatusCode);
        }

        using (var continued = await gateway.Client.PostAsync("/v1/responses", GatewayTestHost.Json($$"""{"model":"chat","input":"more","previous_response_id":"{{id}}"}""")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, continued.StatusCode);
        }

        await using var dataSource = NpgsqlDataSource.Create(servers.Postgres.ConnectionString());
        await Eventually.HoldsAsync(async () =>
        {
            await using var rows = dataSource.CreateCommand("SELECT count(*) FROM stored_responses WHERE id = @id");
            rows.Parameters.AddWithValue("id", id);
            return (long)(await rows.ExecuteScalarAsync())! == 0;
        }, TimeSpan.FromSeconds(30), "the sweep deletes the expired response");
    }

    [Theory]
    [InlineData("Gateway__Responses__Retention", "00:00:01", "Retention")]
    [InlineData("Gateway__Responses__SweepInterval", "00:00:00", "SweepInterval")]
    [InlineData("Gateway__Providers__0__NativeResponses", "true", "NativeResponses")]
    public async Task Bad_settings_stop_the_gateway_at_start(string key, string value, string named)
    {
        var config = new GatewayConfig(servers)
            .Provider("claude", "anthropic", _upstream.Url, "chat", extra: [("ApiKey", "sk-ant-test"), ("Models__0__Capabilities__0", "chat"), ("Models__0__Capabilities__1", "streaming"), ("Models__0__Capabilities__2", "tools")])
            .Set(key, value);
        var error = await Assert.ThrowsAnyAsync<Exception>(async () => await (await GatewayTestHost.StartAsync(config)).DisposeAsync());
        Assert.True(error.ToString().Contains(named, StringComparison.Ordinal), error.ToString());
    }

    private sealed class ShiftedClock : TimeProvider
    {
        public TimeSpan Shift { get; set; }

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + Shift;
    }
}
