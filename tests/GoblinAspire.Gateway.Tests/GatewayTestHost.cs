using System.Net.Http.Headers;
using System.Text;
using GoblinAspire.Gateway.Hosting;
using GoblinAspire.Testing;

namespace GoblinAspire.Gateway.Tests;

/// <summary>Builds the gateway's configuration the way an operator writes it, in environment-variable form.</summary>
public sealed class GatewayConfig(PlatformServers servers)
{
    private readonly Dictionary<string, string?> _values = new()
    {
        ["ConnectionStrings__redis"] = servers.Redis.ConnectionString,
        ["ConnectionStrings__gatewaydb"] = servers.Postgres.ConnectionString(),
        ["Logging__LogLevel__Default"] = "Warning",
        // Keys are required by default; tests of routing and protocols opt out explicitly, as an operator would.
        ["Gateway__Access__RequireKeys"] = "false",
    };

    private int _providers;

    public GatewayConfig Provider(string name, string kind, string? baseUrl, string model, string? upstreamModel = null, int priority = 0, params (string Key, string Value)[] extra)
    {
        var at = $"Gateway__Providers__{_providers++}__";
        _values[at + "Name"] = name;
        _values[at + "Kind"] = kind;
        if (baseUrl is not null)
        {
            _values[at + "BaseUrl"] = baseUrl;
        }

        _values[at + "Priority"] = priority.ToString(System.Globalization.CultureInfo.InvariantCulture);
        _values[at + "HealthProbe"] = "false";
        _values[at + "Models__0__Name"] = model;
        if (upstreamModel is not null)
        {
            _values[at + "Models__0__UpstreamModel"] = upstreamModel;
        }

        foreach (var (key, value) in extra)
        {
            _values[at + key] = value;
        }

        return this;
    }

    public GatewayConfig Set(string key, string? value)
    {
        _values[key] = value;
        return this;
    }

    /// <summary>Leaves <paramref name="key"/> unset, so the gateway's own default applies.</summary>
    public GatewayConfig Unset(string key)
    {
        _values.Remove(key);
        return this;
    }

    public IReadOnlyDictionary<string, string?> Values => _values;
}

public static class GatewayTestHost
{
    public static async Task<TestWebHost> StartAsync(GatewayConfig config, Action<Microsoft.AspNetCore.Builder.WebApplicationBuilder>? extra = null)
    {
        var app = GatewayApp.Build([], builder =>
        {
            TestWebHost.Configure(builder, config.Values);
            extra?.Invoke(builder);
        });
        return await TestWebHost.StartAsync(app);
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, new MediaTypeHeaderValue("application/json"));

    public static Task<HttpResponseMessage> ChatAsync(this HttpClient client, string model, string text = "hello there", bool stream = false, string extra = "", HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead, CancellationToken cancellationToken = default)
    {
        var body = $$"""{"model":"{{model}}","messages":[{"role":"user","content":"{{text}}"}],"stream":{{(stream ? "true" : "false")}}{{extra}}}""";
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json(body) };
        return client.SendAsync(request, completion, cancellationToken);
    }

    /// <summary>The <c>data:</c> payloads of an SSE body, in order.</summary>
    public static List<string> SseData(string body) =>
        body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => string.Join("\n", e.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l[6..])))
            .Where(d => d.Length > 0)
            .ToList();
}

public static class StreamText
{
    /// <summary>The text an OpenAI stream carries: chat deltas' content or completion chunks' text, concatenated.</summary>
    public static string Of(string sseBody)
    {
        var text = new System.Text.StringBuilder();
        foreach (var data in GatewayTestHost.SseData(sseBody).Where(d => d != "[DONE]"))
        {
            using var chunk = System.Text.Json.JsonDocument.Parse(data);
            if (!chunk.RootElement.TryGetProperty("choices", out var choices))
            {
                continue;
            }

            foreach (var choice in choices.EnumerateArray())
            {
                if (choice.TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content) && content.ValueKind == System.Text.Json.JsonValueKind.String)
                {
                    text.Append(content.GetString());
                }
                else if (choice.TryGetProperty("text", out var piece))
                {
                    text.Append(piece.GetString());
                }
            }
        }

        return text.ToString();
    }
}
