using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.Gateway.Tests;

/// <summary>Virtual keys and the admin API, against real PostgreSQL and Redis.</summary>
[Collection(PlatformServers.Collection)]
public sealed class AccessTests(PlatformServers servers) : IAsyncLifetime
{
    internal const string AdminKey = "admin-secret-for-tests-7d1f";
    private readonly OpenAiStandIn _upstream = new();
    private TestWebHost _gateway = null!;

    public async Task InitializeAsync()
    {
        await _upstream.StartAsync();
        _gateway = await GatewayTestHost.StartAsync(Config(servers, _upstream, requireKeys: true));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    internal static GatewayConfig Config(PlatformServers servers, OpenAiStandIn upstream, bool requireKeys, string? redis = null) =>
        new GatewayConfig(servers)
            .Set("Gateway__Access__RequireKeys", requireKeys ? "true" : "false")
            .Set("Gateway__Access__AdminKey", AdminKey)
            .Set("Gateway__Access__KeyCacheDuration", "00:00:00.300")
            .Set("Gateway__Access__RateWindow", "00:10:00")
            .Set("ConnectionStrings__redis", redis ?? servers.Redis.ConnectionString)
            .Provider("vllm", "openai", upstream.Url, "chat")
            .Provider("vllm2", "openai", upstream.Url, "other");

    internal static async Task<(string Id, string Secret)> CreateKeyAsync(HttpClient client, object settings)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/admin/keys") { Content = JsonContent.Create(settings) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, text);
        using var document = JsonDocument.Parse(text);
        return (document.RootElement.GetProperty("id").GetString()!, document.RootElement.GetProperty("key").GetString()!);
    }

    internal static async Task<HttpResponseMessage> ChatWithKeyAsync(HttpClient client, string? key, string model = "chat", string extra = "")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayTestHost.Json($$"""{"model":"{{model}}","messages":[{"role":"user","content":"hi"}]{{extra}}}""") };
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return await client.SendAsync(request);
    }

    private async Task<HttpResponseMessage> AdminAsync(HttpMethod method, string path, object? body = null, string? adminKey = AdminKey)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        if (adminKey is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
        }

        return await _gateway.Client.SendAsync(request);
    }

    private static async Task AssertOpenAiErrorAsync(HttpResponseMessage response, HttpStatusCode status, string? code)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, text);
        using var document = JsonDocument.Parse(text);
        var error = document.RootElement.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        if (code is not null)
        {
            Assert.Equal(code, error.GetProperty("code").GetString());
        }
    }

    /// <summary>Secure by default: with nothing said about keys, anonymous, Basic and garbage credentials are all 401.</summary>
    [Fact]
    public async Task Keys_are_required_unless_an_operator_opts_out_and_the_opt_out_is_logged()
    {
        var logs = new CapturingLoggerProvider();
        await using (var secure = await GatewayTestHost.StartAsync(Config(servers, _upstream, requireKeys: true).Unset("Gateway__Access__RequireKeys"), b => b.Logging.AddProvider(logs)))
        {
            foreach (var header in new string?[] { null, "Basic dXNlcjpwYXNz", "Bearer", "garbage", "Bearer not-a-goblin-key" })
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayTestHost.Json("""{"model":"chat","messages":[{"role":"user","content":"hi"}]}""") };
                if (header is not null)
                {
                    request.Headers.TryAddWithoutValidation("Authorization", header);
                }

                await AssertOpenAiErrorAsync(await secure.Client.SendAsync(request), HttpStatusCode.Unauthorized, null);
            }

            Assert.DoesNotContain(logs.Lines, m => m.Contains("RequireKeys is false", StringComparison.Ordinal));
        }

        var optOut = new CapturingLoggerProvider();
        await using var open = await GatewayTestHost.StartAsync(Config(servers, _upstream, requireKeys: false), b => b.Logging.AddProvider(optOut));
        Assert.Equal(HttpStatusCode.OK, (await ChatWithKeyAsync(open.Client, null)).StatusCode);
        Assert.Single(optOut.Lines, m => m.Contains("RequireKeys is false", StringComparison.Ordinal));
    }

    /// <summary>At the default level nothing is logged per request: a load test once wrote a Polly line for each one.</summary>
    [Fact]
    public async Task Nothing_is_logged_per_request_at_information()
    {
        var logs = new CapturingLoggerProvider();
        await using var gateway = await GatewayTestHost.StartAsync(Config(servers, _upstream, requireKeys: false).Unset("Logging__LogLevel__Default"), b => b.Logging.AddProvider(logs));
        Assert.Equal(HttpStatusCode.OK, (await ChatWithKeyAsync(gateway.Client, null)).StatusCode);
        var before = logs.Lines.Count;
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await ChatWithKeyAsync(gateway.Client, null)).StatusCode);
        }

        var perRequest = logs.Lines.Skip(before).Where(l => !l.Contains(" scope: ", StringComparison.Ordinal)).ToList();
        Assert.True(perRequest.Count == 0, string.Join('\n', perRequest.Take(10)));
    }

    [Fact]
    public async Task A_key_restricted_to_some_models_lists_and_retrieves_only_those()
    {
        var (_, restricted) = await CreateKeyAsync(_gateway.Client, new { name = "narrow", allowed_models = new[] { "chat" } });
        var (_, open) = await CreateKeyAsync(_gateway.Client, new { name = "wide" });
        async Task<HttpResponseMessage> GetAsync(string path, string? key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            if (key is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            }

            return await _gateway.Client.SendAsync(request);
        }

        static async Task<List<string>> IdsAsync(HttpResponseMessage response)
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return [.. document.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()!)];
        }

        Assert.Equal(["chat"], await IdsAsync(await GetAsync("/v1/models", restricted)));
        Assert.Equal(["chat", "other"], await IdsAsync(await GetAsync("/v1/models", open)));

        // OpenAI's models.retrieve: the model object, or 404 model_not_found for one the key may not use.
        using (var chat = await GetAsync("/v1/models/chat", restricted))
        using (var document = JsonDocument.Parse(await chat.Content.ReadAsStringAsync()))
        {
            Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
            Assert.Equal("chat", document.RootElement.GetProperty("id").GetString());
            Assert.Equal("model", document.RootElement.GetProperty("object").GetString());
        }

        await AssertOpenAiErrorAsync(await GetAsync("/v1/models/other", restricted), HttpStatusCode.NotFound, "model_not_found");
        await AssertOpenAiErrorAsync(await GetAsync("/v1/models/no-such-model", open), HttpStatusCode.NotFound, "model_not_found");
        await AssertOpenAiErrorAsync(await GetAsync("/v1/models", null), HttpStatusCode.Unauthorized, null);
    }

    [Fact]
    public async Task The_admin_api_refuses_callers_without_the_admin_key()
    {
        await AssertOpenAiErrorAsync(await AdminAsync(HttpMethod.Get, "/admin/keys", adminKey: null), HttpStatusCode.Unauthorized, "invalid_admin_key");
        await AssertOpenAiErrorAsync(await AdminAsync(HttpMethod.Get, "/admin/keys", adminKey: "admin-secret-for-tests-7d1e"), HttpStatusCode.Unauthorized, "invalid_admin_key");
        var (_, userKey) = await CreateKeyAsync(_gateway.Client, new { name = "user" });
        await AssertOpenAiErrorAsync(await AdminAsync(HttpMethod.Get, "/admin/keys", adminKey: userKey), HttpStatusCode.Unauthorized, "invalid_admin_key");
    }

    /// <summary>A NUL in a filter is the caller's error (PostgreSQL cannot even compare it), not a 500 with no body.</summary>
    [Fact]
    public async Task Team_filters_with_control_characters_are_400()
    {
        await AssertOpenAiErrorAsync(await AdminAsync(HttpMethod.Get, "/admin/keys?team=a%00b"), HttpStatusCode.BadRequest, "invalid_value");
        await AssertOpenAiErrorAsync(await AdminAsync(HttpMethod.Get, "/admin/spend?team=a%00b"), HttpStatusCode.BadRequest, "invalid_value");
    }

    [Fact]
    public async Task A_key_is_shown_once_then_listed_updated_and_revoked_without_its_secret()
    {
        var (id, secret) = await CreateKeyAsync(_gateway.Client, new { name = "ana", owner = "ana@example.com", team = "search", allowed_models = new[] { "chat" }, rpm = 100 });
        Assert.StartsWith("sk-goblin-", secret, StringComparison.Ordinal);

        var listed = await (await AdminAsync(HttpMethod.Get, "/admin/keys?team=search")).Content.ReadAsStringAsync();
        Assert.Contains(id, listed, StringComparison.Ordinal);

        // Without a team filter every key is listed (this once answered 500: an untyped NULL parameter, 42P08).
        using var all = await AdminAsync(HttpMethod.Get, "/admin/keys");
        Assert.Equal(HttpStatusCode.OK, all.StatusCode);
        Assert.Contains(id, await all.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // A key the caller chose (as the AppHost's development key): accepted once, then a 409 in OpenAI's shape.
        var chosen = "sk-goblin-chosen-" + Guid.NewGuid().ToString("N");
        using (var created = await AdminAsync(HttpMethod.Post, "/admin/keys", new { name = "chosen", key = chosen }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            Assert.Contains(chosen, await created.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await AssertOpenAiErrorAsync(await AdminAsync(HttpMethod.Post, "/admin/keys", new { name = "again", key = chosen }), HttpStatusCode.Conflict, "key_exists");

        // Refused, never dropped or stored: an unknown field, a wrong type, an expiry in the past.
        await AssertOpenAiErrorAsync(await AdminAsync(HttpMethod.Post, "/admin/keys", new { name = "typo", rpn = 5 }), HttpStatusCode.BadRequest, "invalid_value");
        await AssertOpenAiErrorAsync(await AdminAsync(HttpMethod.Post, "/admin/keys", new { name = "typed", rpm = "five" }), HttpStatusCode.BadRequest, "invalid_value");
        await AssertOpenAiErrorAsync(await AdminAsync(HttpMethod.Post, "/admin/keys", new { name = "stale", expires_at = DateTimeOffset.UtcNow.AddDays(-1) }), HttpStatusCode.BadRequest, "invalid_value");
        using (var weak = await AdminAsync(HttpMethod.Post, "/admin/keys", new { name = "weak", key = "sk-goblin-short" }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, weak.StatusCode);
        }
        Assert.DoesNotContain(secret, listed, StringComparison.Ordinal);
        Assert.DoesNotContain("\"key\":", listed, StringComparison.Ordinal);

        using var updated = await AdminAsync(HttpMethod.Patch, $"/admin/keys/{id}", new { rpm = 5, allowed_models = new[] { "chat", "other" } });
        using (var document = JsonDocument.Parse(await updated.Content.ReadAsStringAsync()))
        {
            Assert.Equal(5, document.RootElement.GetProperty("rpm").GetInt32());
            Assert.Equal("search", document.RootElement.GetProperty("team").GetString());
            Assert.Equal(2, document.RootElement.GetProperty("allowed_models").GetArrayLength());
        }

        Assert.Equal(HttpStatusCode.OK, (await ChatWithKeyAsync(_gateway.Client, secret)).StatusCode);
        using var revoked = await AdminAsync(HttpMethod.Post, $"/admin/keys/{id}/revoke");
        Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        await Eventually.HoldsAsync(async () => (await ChatWithKeyAsync(_gateway.Client, secret)).StatusCode == HttpStatusCode.Unauthorized, TimeSpan.FromSeconds(5), "the revoke to take effect");
        await AssertOpenAiErrorAsync(await AdminAsync(HttpMethod.Get, $"/admin/keys/{Guid.NewGuid()}"), HttpStatusCode.NotFound, "key_not_found");
        await AssertOpenAiErrorAsync(await AdminAsync(HttpMethod.Post, "/admin/keys", new { rpm = -1 }), HttpStatusCode.BadRequest, null);
    }

    [Fact]
    public async Task Missing_unknown_expired_disabled_and_wrong_model_keys_are_refused_in_openai_shape()
    {
        await AssertOpenAiErrorAsync(await ChatWithKeyAsync(_gateway.Client, null), HttpStatusCode.Unauthorized, null);
        await AssertOpenAiErrorAsync(await ChatWithKeyAsync(_gateway.Client, "sk-goblin-" + new string('0', 64)), HttpStatusCode.Unauthorized, "invalid_api_key");
        await AssertOpenAiErrorAsync(await ChatWithKeyAsync(_gateway.Client, "not-even-a-goblin-key"), HttpStatusCode.Unauthorized, "invalid_api_key");

        // A key cannot be made already expired; this one expires a moment after it is made.
        var (_, expired) = await CreateKeyAsync(_gateway.Client, new { expires_at = DateTimeOffset.UtcNow.AddSeconds(3) });
        await Task.Delay(TimeSpan.FromSeconds(3.5));
        await AssertOpenAiErrorAsync(await ChatWithKeyAsync(_gateway.Client, expired), HttpStatusCode.Unauthorized, "invalid_api_key");
        var (_, disabled) = await CreateKeyAsync(_gateway.Client, new { disabled = true });
        await AssertOpenAiErrorAsync(await ChatWithKeyAsync(_gateway.Client, disabled), HttpStatusCode.Unauthorized, "invalid_api_key");

        var (_, narrow) = await CreateKeyAsync(_gateway.Client, new { allowed_models = new[] { "other" } });
        await AssertOpenAiErrorAsync(await ChatWithKeyAsync(_gateway.Client, narrow, "chat"), HttpStatusCode.Forbidden, "model_not_allowed");
        Assert.Equal(HttpStatusCode.OK, (await ChatWithKeyAsync(_gateway.Client, narrow, "other")).StatusCode);
        Assert.Equal(0, _upstream.Requests.Count(r => r.Method == "POST" && r.Json.GetProperty("model").GetString() == "chat"));
    }

    [Fact]
    public async Task Keys_are_optional_unless_required_but_a_presented_goblin_key_is_always_checked()
    {
        await using var open = await GatewayTestHost.StartAsync(Config(servers, _upstream, requireKeys: false));
        Assert.Equal(HttpStatusCode.OK, (await ChatWithKeyAsync(open.Client, null)).StatusCode);
        await AssertOpenAiErrorAsync(await ChatWithKeyAsync(open.Client, "sk-goblin-" + new string('1', 64)), HttpStatusCode.Unauthorized, "invalid_api_key");
    }
}
