using GoblinAspire.Gateway.Api;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.Caching;
using GoblinAspire.Gateway.Keys;
using GoblinAspire.Gateway.RateLimiting;
using GoblinAspire.Gateway.Protocols;
using GoblinAspire.Gateway.Stages;
using GoblinAspire.Gateway.Responses;
using GoblinAspire.Gateway.Routing;
using GoblinAspire.Gateway.Spend;
using GoblinAspire.Gateway.Telemetry;
using GoblinAspire.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace GoblinAspire.Gateway.Hosting;

public static class GatewayApp
{
    /// <param name="configure">Lets tests add configuration before the app is built.</param>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        // The content root is where the dll is, not the current folder: `dotnet /srv/gateway/GoblinAspire.Gateway.dll`
        // started from anywhere still reads its own appsettings.json (and its ChatFallback provider).
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        configure?.Invoke(builder);

        builder.AddServiceDefaults();
        // The gateway serves without either (fail-open limits; anonymous or cached keys): their outage is Degraded, never 503.
        builder.AddGoblinRedis(PlatformResources.Redis, settings => settings.ServesWithout = true);
        builder.AddGoblinNpgsql(PlatformResources.GatewayDatabase, settings => settings.ServesWithout = true);
        builder.AddSchemaMigrations(PlatformResources.GatewayDatabase, typeof(GatewayApp).Assembly);
        builder.AddValidatedOptions<GatewayOptions, GatewayOptionsValidator>(GatewayOptions.SectionName);
        builder.AddValidatedOptions<AccessOptions, AccessOptionsValidator>(AccessOptions.SectionName);
        builder.AddValidatedOptions<CacheOptions, CacheOptionsValidator>(CacheOptions.SectionName);
        builder.AddValidatedOptions<ResponsesOptions, ResponsesOptionsValidator>(ResponsesOptions.SectionName);
        builder.AddGatewayCore();

        var app = builder.Build();
        // Unknown routes, wrong methods and requests refused before an endpoint runs answer in OpenAI's shape, as
        // OpenAI's own "Invalid URL" errors do, never with an empty body.
        app.UseStatusCodePages(context => OpenAiError.ForStatus(context.HttpContext).WriteAsync(context.HttpContext.Response));
        app.MapDefaultEndpoints();
        app.MapInference();
        app.MapResponses();
        app.MapProviders();
        app.MapAdmin();
        return app;
    }

    public static IHostApplicationBuilder AddGatewayCore(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        // Tried: a test may bring its own clock (stored responses' retention).
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<OpenAiProtocol>();
        services.AddSingleton<RunPodProtocol>();
        services.AddSingleton<OllamaProtocol>();
        services.AddSingleton<AnthropicProtocol>();
        services.AddSingleton<ProviderProtocols>();
        services.AddSingleton<ProviderHealthBoard>();
        services.AddSingleton<ProviderCatalog>();
        services.AddSingleton<ProviderRouter>();
        services.AddSingleton<GatewayMetrics>();
        services.AddMemoryCache();
        services.AddSingleton<KeyStore>();
        services.AddSingleton<IKeyDirectory>(sp => sp.GetRequiredService<KeyStore>());
        services.AddSingleton<KeyAuthenticator>();
        services.AddHostedService<AnonymousAccessWarning>();
        services.AddSingleton<IRateGate, DistributedRateLimiter>();
        services.AddSingleton<SpendQueries>();
        services.AddSingleton<ISpendHistory>(sp => sp.GetRequiredService<SpendQueries>());
        services.AddSingleton<IAnswerCache, ResponseCache>();
        services.AddSingleton<ResponseStore>();
        services.AddHostedService<ResponseRetention>();
        services.AddSingleton<UsageRecorder>();
        services.AddSingleton<IUsageSink>(sp => sp.GetRequiredService<UsageRecorder>());
        services.AddHostedService(sp => sp.GetRequiredService<UsageRecorder>());

        // The request path: admission, cache, forwarding, outcome (which also observes each attempt).
        services.AddSingleton<AdmissionStage>();
        services.AddSingleton<CacheStage>();
        services.AddSingleton<OutcomeStage>();
        services.AddSingleton<IAttemptObserver>(sp => sp.GetRequiredService<OutcomeStage>());
        services.AddSingleton<ForwardingStage>();
        services.AddSingleton<InferencePipeline>();
        services.AddSingleton<ProviderProbeService>();
        services.AddHostedService(sp => sp.GetRequiredService<ProviderProbeService>());

        // Failover, timeouts and circuits are the gateway's own policy, per provider. The standard resilience
        // handler that every other client gets would retry the same provider instead, and time out streams.
#pragma warning disable EXTEXP0001 // Experimental, but the supported way to opt one client out of ConfigureHttpClientDefaults.
        services.AddHttpClient(ProviderCatalog.UpstreamClientName, client => client.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                PooledConnectionLifetime = TimeSpan.FromMinutes(2),
                ConnectTimeout = TimeSpan.FromSeconds(5),
                AutomaticDecompression = System.Net.DecompressionMethods.None,
                AllowAutoRedirect = false,
                UseCookies = false,
                EnableMultipleHttp2Connections = true,
            })
            .RemoveAllResilienceHandlers()
            // Per-request logging scopes cost more than forwarding itself; the outcome stage logs failures on its own.
            .RemoveAllLoggers();
#pragma warning restore EXTEXP0001

        var providers = builder.Configuration.GetSection($"{GatewayOptions.SectionName}:Providers").Get<List<ProviderOptions>>() ?? [];
        foreach (var name in providers.Select(p => p.Name).Where(n => !string.IsNullOrWhiteSpace(n)).Distinct(StringComparer.Ordinal))
        {
            services.AddResiliencePipeline(ProviderCatalog.PipelineKey(name), (pipeline, context) =>
            {
                var provider = context.ServiceProvider.GetRequiredService<IOptions<GatewayOptions>>().Value.Providers.First(p => p.Name == name);
                var health = context.ServiceProvider.GetRequiredService<ProviderHealthBoard>().For(name);
                var logger = context.ServiceProvider.GetRequiredService<ILogger<ProviderCatalog>>();
                var breaker = provider.CircuitBreaker;
                pipeline
                    .AddCircuitBreaker(new CircuitBreakerStrategyOptions
                    {
                        FailureRatio = breaker.FailureRatio,
                        MinimumThroughput = breaker.MinimumThroughput,
                        SamplingDuration = breaker.SamplingDuration,
                        BreakDuration = breaker.BreakDuration,
                        // Attempts return their failures as values (UpstreamFailure); only the timeout is an exception.
                        ShouldHandle = new PredicateBuilder()
                            .HandleResult(result => result is UpstreamFailure { CountsAgainstCircuit: true })
                            .Handle<TimeoutRejectedException>(),
                        OnOpened = _ => Changed(health, logger, CircuitState.Open),
                        OnHalfOpened = _ => Changed(health, logger, CircuitState.HalfOpen),
                        OnClosed = _ => Changed(health, logger, CircuitState.Closed),
                    })
                    .AddTimeout(provider.Timeout);
            });
        }

        return builder;
    }

    private static ValueTask Changed(ProviderHealth health, ILogger logger, CircuitState state)
    {
        health.SetCircuit(state);
        GatewayLog.CircuitChanged(logger, health.Name, state.ToString());
        return ValueTask.CompletedTask;
    }
}
