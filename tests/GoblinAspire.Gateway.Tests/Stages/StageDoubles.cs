using System.Collections.Concurrent;
using System.Net;
using System.Text;
using GoblinAspire.Gateway.Caching;
using GoblinAspire.Gateway.Hosting;
using GoblinAspire.Gateway.Keys;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.RateLimiting;
using GoblinAspire.Gateway.Routing;
using GoblinAspire.Gateway.Spend;
using GoblinAspire.Gateway.Stages;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace GoblinAspire.Gateway.Tests.Stages;

/// <summary>
/// The stages wired as the gateway wires them (<see cref="GatewayApp.AddGatewayCore"/>), with the shared stores
/// replaced by in-memory doubles and the upstream HTTP client by a handler: no server, Redis or PostgreSQL.
/// </summary>
internal sealed class StageRig : IDisposable
{
    private readonly ServiceProvider _services;

    public StageRig(Dictionary<string, string?> configuration, Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>>? upstream = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(configuration);
        builder.Services.AddOptions<GatewayOptions>().Bind(builder.Configuration.GetSection(GatewayOptions.SectionName));
        builder.Services.AddOptions<AccessOptions>().Bind(builder.Configuration.GetSection(AccessOptions.SectionName));
        builder.Services.AddOptions<CacheOptions>().Bind(builder.Configuration.GetSection(CacheOptions.SectionName));
        builder.Services.AddLogging();
        builder.Services.AddMetrics();
        builder.AddGatewayCore();
        builder.Services.AddSingleton<IRateGate>(Gate);
        builder.Services.AddSingleton<IUsageSink>(Usage);
        builder.Services.AddSingleton<ISpendHistory>(Spend);
        builder.Services.AddSingleton<IKeyDirectory>(Keys);
        builder.Services.AddSingleton<IAnswerCache>(Cache);
        builder.Services.AddHttpClient(ProviderCatalog.UpstreamClientName)
            .ConfigurePrimaryHttpMessageHandler(() => new Upstream(upstream ?? ((_, _) => Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound)))));
        _services = builder.Services.BuildServiceProvider();
    }

    public FakeRateGate Gate { get; } = new();

    public FakeUsageSink Usage { get; } = new();

    public FakeSpendHistory Spend { get; } = new();

    public FakeKeyDirectory Keys { get; } = new();

    public FakeAnswerCache Cache { get; } = new();

    public T Get<T>() where T : notnull => _services.GetRequiredService<T>();

    public Provider Provider(string name) => Get<ProviderCatalog>().Providers.Single(p => p.Name == name);

    public static Dictionary<string, string?> Providers(params string[] names)
    {
        var configuration = new Dictionary<string, string?> { ["Gateway:Routing:DefaultStrategy"] = "failover" };
        for (var i = 0; i < names.Length; i++)
        {
            configuration[$"Gateway:Providers:{i}:Name"] = names[i];
            configuration[$"Gateway:Providers:{i}:BaseUrl"] = $"http://{names[i]}.test";
            configuration[$"Gateway:Providers:{i}:HealthProbe"] = "false";
            configuration[$"Gateway:Providers:{i}:Priority"] = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            configuration[$"Gateway:Providers:{i}:Models:0:Name"] = "m";
        }

        return configuration;
    }

    public static InferenceRequest Chat(bool stream = false, double temperature = 0.7, int? maxTokens = 16)
    {
        var json = $$"""{"model":"m","messages":[{"role":"user","content":"hello there"}],"stream":{{(stream ? "true" : "false")}},"temperature":{{temperature.ToString(System.Globalization.CultureInfo.InvariantCulture)}}{{(maxTokens is { } m ? $",\"max_tokens\":{m}" : "")}}}""";
        return InferenceRequest.Parse(Encoding.UTF8.GetBytes(json), InferenceOperation.Chat, out var error) ?? throw new InvalidOperationException(error!.Message);
    }

    public static DefaultHttpContext Client()
    {
        var http = new DefaultHttpContext();
        http.Response.Body = new MemoryStream();
        return http;
    }

    public static string Body(HttpContext http)
    {
        http.Response.BodyWriter.FlushAsync().AsTask().GetAwaiter().GetResult();
        return Encoding.UTF8.GetString(((MemoryStream)http.Response.Body).ToArray());
    }

    public static HttpResponseMessage Json(HttpStatusCode status, string json) =>
        new(status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

    public static string Completion(string text) =>
        """{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""" + "\"" + text + "\"" +
        """},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}""";

    public void Dispose() => _services.Dispose();

    private sealed class Upstream(Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> answer) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => answer(request, cancellationToken);
    }
}

internal sealed class FakeRateGate : IRateGate
{
    public Func<RateLimits, RateDecision> Decide { get; set; } = _ => new RateDecision(RateLimitKind.None, 1, 1, 1, TimeSpan.FromSeconds(60));

    public bool Unavailable { get; set; }

    public ConcurrentQueue<(RateLimits Limits, long Reserved)> Admitted { get; } = new();

    public ConcurrentQueue<(RateLease Lease, long? Tokens, decimal Cost)> Released { get; } = new();

    public Task<(RateDecision Decision, RateLease? Lease)> AdmitAsync(RateLimits limits, long reserveTokens, Func<CancellationToken, Task<decimal>> spentSoFar, CancellationToken cancellationToken)
    {
        if (Unavailable)
        {
            throw new RateLimiterUnavailableException("redis is away");
        }

        Admitted.Enqueue((limits, reserveTokens));
        var decision = Decide(limits);
        return Task.FromResult((decision, decision.Allowed ? new RateLease(limits, 0, reserveTokens, Local: true) : null));
    }

    public Task ReleaseAsync(RateLease lease, long? actualTokens, decimal costUsd)
    {
        Released.Enqueue((lease, actualTokens, costUsd));
        return Task.CompletedTask;
    }
}

internal sealed class FakeUsageSink : IUsageSink
{
    public ConcurrentQueue<UsageRecord> Records { get; } = new();

    public void Record(UsageRecord record) => Records.Enqueue(record);
}

internal sealed class FakeSpendHistory : ISpendHistory
{
    public decimal Spent { get; set; }

    public Task<decimal> SpentSinceAsync(Guid keyId, DateTimeOffset from, CancellationToken cancellationToken) => Task.FromResult(Spent);
}

internal sealed class FakeKeyDirectory : IKeyDirectory
{
    public Dictionary<string, VirtualKey> BySecret { get; } = new(StringComparer.Ordinal);

    public Task<VirtualKey?> FindBySecretAsync(string secret, CancellationToken cancellationToken) =>
        Task.FromResult(BySecret.GetValueOrDefault(secret));
}

internal sealed class FakeAnswerCache : IAnswerCache
{
    public Dictionary<string, CachedAnswer> Entries { get; } = new(StringComparer.Ordinal);

    public int Reads { get; private set; }

    public long MaxEntryBytes => 1024;

    /// <summary>Deterministic requests only, keyed by their body: the stage's decisions are under test, not the hash.</summary>
    public string? KeyFor(InferenceRequest request, string? requestHeader, string? team) =>
        request.Temperature is 0 || requestHeader == "force" ? $"{team}:{Encoding.UTF8.GetString(request.Body.Span)}" : null;

    public Task<CachedAnswer?> GetAsync(string key, CancellationToken cancellationToken)
    {
        Reads++;
        return Task.FromResult(Entries.GetValueOrDefault(key));
    }

    public Task SetAsync(string key, CachedAnswer answer)
    {
        Entries[key] = answer;
        return Task.CompletedTask;
    }
}

internal static class TestKeys
{
    public static VirtualKey Key(int? rpm = null, int? tpm = null, decimal? budget = null, IReadOnlyList<string>? models = null, DateTimeOffset? revokedAt = null) =>
        new(Guid.NewGuid(), "sk-goblin-ab", "test", "owner", "team-a", models ?? [], rpm, tpm, null, budget, budget is null ? null : "day", null, false, DateTimeOffset.UnixEpoch, revokedAt);
}
