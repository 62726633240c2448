using System.Net;
using System.Text.Json;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;
using GoblinAspire.Testing.Robustness;
using Npgsql;
using Xunit.Abstractions;

namespace GoblinAspire.Gateway.Tests;

/// <summary>
/// Ten thousand seeded hostile variants of valid requests, keys required: no 5xx, every error in OpenAI's shape, the
/// gateway healthy after, and its tables consistent (a key exists exactly when the admin API said it was created,
/// and every answered request with the test's key is one spend row). ROBUSTNESS_SEED replays a failing run.
/// </summary>
[Collection(PlatformServers.Collection)]
public sealed class RobustnessTests(PlatformServers servers, ITestOutputHelper output) : IAsyncLifetime
{
    public const int Requests = 10_000;
    private const int BodyLimit = 64 * 1024;
    private readonly OpenAiStandIn _upstream = new();

    public Task InitializeAsync() => _upstream.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    [Fact]
    public async Task Ten_thousand_mutated_requests_get_no_5xx_and_leave_nothing_half_written()
    {
        await using var postgres = await PostgresServer.StartAsync();
        var database = await postgres.CreateDatabaseAsync("robustness");
        await using var gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Set("ConnectionStrings__gatewaydb", database)
            .Set("Gateway__Access__RequireKeys", "true")
            .Set("Gateway__Access__AdminKey", AccessTests.AdminKey)
            .Set("Gateway__MaxRequestBodyBytes", BodyLimit.ToString(System.Globalization.CultureInfo.InvariantCulture))
            .Provider("upstream", "openai", _upstream.Url, "chat", extra: [("Models__0__Capabilities__0", "chat"), ("Models__0__Capabilities__1", "completions"), ("Models__0__Capabilities__2", "embeddings")]));
        var (keyId, key) = await AccessTests.CreateKeyAsync(gateway.Client, new { team = "robust", allowed_models = new[] { "chat" } });
        var bearer = new Dictionary<string, string> { ["Authorization"] = "Bearer " + key };
        var admin = new Dictionary<string, string> { ["Authorization"] = "Bearer " + AccessTests.AdminKey };
        RequestTemplate[] templates =
        [
            new(HttpMethod.Post, "/v1/chat/completions", """{"model":"chat","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],"max_tokens":8,"temperature":0.2,"stream":false,"stop":["\n"],"user":"u1"}""", bearer),
            new(HttpMethod.Post, "/v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true,"stream_options":{"include_usage":true},"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}""", bearer),
            new(HttpMethod.Post, "/v1/completions", """{"model":"chat","prompt":"Once upon","max_tokens":4,"n":1,"echo":false}""", bearer),
            new(HttpMethod.Post, "/v1/embeddings", """{"model":"chat","input":["a","b"],"encoding_format":"float"}""", bearer),
            new(HttpMethod.Post, "/v1/responses", """{"model":"chat","instructions":"Be brief.","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]},{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"ok"}],"tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":"auto","max_output_tokens":8,"text":{"format":{"type":"json_schema","name":"s","schema":{"type":"object"}}},"metadata":{"a":"b"}}""", bearer),
            new(HttpMethod.Post, "/v1/responses", """{"model":"chat","input":"hi","stream":true,"store":false,"temperature":0.2,"top_p":0.5,"previous_response_id":null}""", bearer),
            new(HttpMethod.Get, "/v1/responses/resp_0123456789abcdef", null, bearer),
            new(HttpMethod.Get, "/v1/responses/resp_0123456789abcdef/input_items?limit=5&order=asc", null, bearer),
            new(HttpMethod.Get, "/v1/models", null, bearer),
            new(HttpMethod.Get, "/v1/models/chat", null, bearer),
            new(HttpMethod.Post, "/admin/keys", """{"name":"k","team":"robust","allowed_models":["chat"],"rpm":1000,"tpm":100000,"max_parallel":8,"budget_usd":5.5,"budget_period":"day"}""", admin),
            new(HttpMethod.Patch, $"/admin/keys/{keyId}", """{"name":"renamed","rpm":1000}""", admin),
            new(HttpMethod.Get, "/admin/keys?team=robust", null, admin),
            new(HttpMethod.Get, "/admin/spend?group_by=model", null, admin),
        ];

        var created = new System.Collections.Concurrent.ConcurrentBag<string>();
        var answered = 0;
        var report = await RobustnessRun.RunAsync(gateway.Client, new RequestMutator(RobustnessRun.Seed(), templates, BodyLimit), Requests, OpenAiErrorShape.Check, (request, response) =>
        {
            if (request.Path.StartsWith("/admin/keys", StringComparison.OrdinalIgnoreCase) && request.Method == HttpMethod.Post && response.StatusCode == HttpStatusCode.Created)
            {
                using var document = JsonDocument.Parse(response.Content.ReadAsStringAsync().GetAwaiter().GetResult());
                created.Add(document.RootElement.GetProperty("id").GetString()!);
            }

            var keyed = request.Headers.Any(h => h.Key == "Authorization" && h.Value == "Bearer " + key);
            if (keyed && response.StatusCode == HttpStatusCode.OK && request.Method == HttpMethod.Post && request.Path.StartsWith("/v1/", StringComparison.OrdinalIgnoreCase))
            {
                Interlocked.Increment(ref answered);
            }
        });
        output.WriteLine(report.ToString());
        RobustnessRun.AssertClean(report, Requests);

        using (var health = await gateway.Client.GetAsync("/health"))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        using (var chat = await AccessTests.ChatWithKeyAsync(gateway.Client, key))
        {
            Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
            answered++;
        }

        await using var dataSource = NpgsqlDataSource.Create(database);
        await using (var keys = dataSource.CreateCommand("SELECT id::text FROM virtual_keys WHERE id <> @key"))
        {
            keys.Parameters.AddWithValue("key", Guid.Parse(keyId));
            var stored = new List<string>();
            await using var reader = await keys.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                stored.Add(reader.GetString(0));
            }

            Assert.Equal(created.Order().ToList(), stored.Order().ToList());
        }

        await Eventually.HoldsAsync(async () =>
        {
            await using var rows = dataSource.CreateCommand("SELECT count(*) FROM usage_records WHERE key_id = @key AND status = 200");
            rows.Parameters.AddWithValue("key", Guid.Parse(keyId));
            return (long)(await rows.ExecuteScalarAsync())! == answered;
        }, TimeSpan.FromSeconds(30), $"{answered} spend rows for the answered requests");
    }
}
