using System.Collections.Concurrent;
using System.Net;
using GoblinAspire.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using StackExchange.Redis;

namespace GoblinAspire.ServiceDefaults.Tests;

[Collection(PlatformServers.Collection)]
public sealed class AspireConfigurationTests(PlatformServers servers)
{
    [Fact]
    public async Task Connection_strings_from_real_environment_variables_reach_redis_and_postgres()
    {
        // Real process environment variables under a unique prefix, read by the real environment provider:
        // the same double-underscore mapping the AppHost relies on.
        var prefix = $"GOBLINTEST_{Guid.NewGuid():N}_";
        var database = await servers.Postgres.CreateDatabaseAsync();
        Environment.SetEnvironmentVariable(prefix + "ConnectionStrings__redis", servers.Redis.ConnectionString);
        Environment.SetEnvironmentVariable(prefix + "ConnectionStrings__gatewaydb", database);
        try
        {
            var builder = Host.CreateApplicationBuilder();
            builder.Configuration.AddEnvironmentVariables(prefix);
            builder.AddGoblinRedis(PlatformResources.Redis);
            builder.AddGoblinNpgsql(PlatformResources.GatewayDatabase);
            using var host = builder.Build();

            var redis = host.Services.GetRequiredService<IConnectionMultiplexer>();
            var key = $"{prefix}probe";
            await redis.GetDatabase().StringSetAsync(key, "ok");
            Assert.Equal("ok", (string?)await redis.GetDatabase().StringGetAsync(key));

            var dataSource = host.Services.GetRequiredService<NpgsqlDataSource>();
            await using var command = dataSource.CreateCommand("SELECT current_database()");
            Assert.Equal(new NpgsqlConnectionStringBuilder(database).Database, (string?)await command.ExecuteScalarAsync());
        }
        finally
        {
            Environment.SetEnvironmentVariable(prefix + "ConnectionStrings__redis", null);
            Environment.SetEnvironmentVariable(prefix + "ConnectionStrings__gatewaydb", null);
        }
    }

    [Fact]
    public async Task Aspire_component_sections_are_read_and_connection_strings_win()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Aspire:StackExchange:Redis:ConnectionString"] = "127.0.0.1:1",
            ["Aspire:StackExchange:Redis:redis:ConfigurationOptions:ConnectTimeout"] = "1234",
            ["ConnectionStrings:redis"] = servers.Redis.ConnectionString,
            ["Aspire:Npgsql:gatewaydb:ConnectionString"] = servers.Postgres.ConnectionString(),
        });
        builder.AddGoblinRedis(PlatformResources.Redis);
        builder.AddGoblinNpgsql(PlatformResources.GatewayDatabase);
        using var host = builder.Build();

        var redis = host.Services.GetRequiredService<IConnectionMultiplexer>();
        Assert.True(redis.IsConnected);
        Assert.Equal(1234, ConfigurationOptions.Parse(redis.Configuration).ConnectTimeout);
        await using var command = host.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand("SELECT 1");
        Assert.Equal(1, await command.ExecuteScalarAsync());
    }

    [Fact]
    public void A_missing_connection_string_names_the_key_to_set()
    {
        var builder = Host.CreateApplicationBuilder();
        var error = Assert.Throws<InvalidOperationException>(() => builder.AddGoblinNpgsql(PlatformResources.RegistryDatabase));
        Assert.Contains("ConnectionStrings__registrydb", error.Message, StringComparison.Ordinal);
        error = Assert.Throws<InvalidOperationException>(() => builder.AddGoblinRedis(PlatformResources.Redis));
        Assert.Contains("ConnectionStrings__redis", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Service_discovery_resolves_aspire_endpoint_variables()
    {
        // A stand-in for the model registry on its own port, found only through services__modelregistry__http__0.
        var registryBuilder = WebApplication.CreateSlimBuilder();
        registryBuilder.WebHost.UseUrls("http://127.0.0.1:0");
        var registryApp = registryBuilder.Build();
        registryApp.MapGet("/whoami", () => "modelregistry-stand-in");
        await using var registry = await TestWebHost.StartAsync(registryApp);

        await using var service = await ServiceUnderTest.StartAsync(
            new Dictionary<string, string?> { ["services__modelregistry__http__0"] = registry.BaseAddress.ToString().TrimEnd('/') },
            redis: false,
            postgres: false);

        Assert.Equal("modelregistry-stand-in", await service.Client.GetStringAsync("/call/modelregistry"));
    }

    [Fact]
    public async Task Metrics_endpoint_serves_prometheus_text()
    {
        await using var service = await ServiceUnderTest.StartAsync(new Dictionary<string, string?>(), redis: false, postgres: false);
        await service.Client.GetAsync("/alive");

        using var response = await service.Client.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("# TYPE ", text, StringComparison.Ordinal);
        Assert.Contains("dotnet_", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Otel_variables_send_traces_metrics_and_logs_over_otlp_with_the_service_name()
    {
        var received = new ConcurrentDictionary<string, byte[]>();
        var collectorBuilder = WebApplication.CreateSlimBuilder();
        collectorBuilder.WebHost.UseUrls("http://127.0.0.1:0");
        var collectorApp = collectorBuilder.Build();
        collectorApp.MapPost("/v1/{signal}", async (string signal, HttpRequest request) =>
        {
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer);
            received[signal] = buffer.ToArray();
            return Results.Ok();
        });
        await using var collector = await TestWebHost.StartAsync(collectorApp);

        const string serviceName = "goblin-otel-probe";
        await using var service = await ServiceUnderTest.StartAsync(
            new Dictionary<string, string?>
            {
                ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.BaseAddress.ToString().TrimEnd('/'),
                ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
                ["OTEL_SERVICE_NAME"] = serviceName,
                ["OTEL_BSP_SCHEDULE_DELAY"] = "100",
                ["OTEL_BLRP_SCHEDULE_DELAY"] = "100",
                ["OTEL_METRIC_EXPORT_INTERVAL"] = "200",
            },
            redis: false,
            postgres: false);

        await service.Client.GetAsync("/hello");
        await Eventually.HoldsAsync(
            () => Task.FromResult(received.ContainsKey("traces") && received.ContainsKey("metrics") && received.ContainsKey("logs")),
            TimeSpan.FromSeconds(15),
            "OTLP export of traces, metrics and logs");
        foreach (var (_, payload) in received)
        {
            Assert.Contains(serviceName, System.Text.Encoding.UTF8.GetString(payload), StringComparison.Ordinal);
        }
    }
}
