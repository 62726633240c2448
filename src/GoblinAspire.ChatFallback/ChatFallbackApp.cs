using GoblinAspire.ChatFallback.Api;
using GoblinAspire.ChatFallback.Serving;
using Microsoft.Extensions.Http.Resilience;

namespace GoblinAspire.ChatFallback;

public static class ChatFallbackApp
{
    /// <param name="configure">Lets tests and the local host add configuration before the app is built.</param>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        configure?.Invoke(builder);

        builder.AddServiceDefaults();
        builder.AddValidatedOptions<ChatFallbackOptions, ChatFallbackOptionsValidator>(ChatFallbackOptions.SectionName);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<ModelSlot>();
        builder.Services.AddSingleton<GenerationGate>();
        builder.Services.AddHostedService<ModelLoader>();
        builder.Services.AddHttpClient(ModelLoader.RegistryClient, (services, client) => RegistryCredential(services, client));
        // Model downloads and upstream streams run for as long as they need: no total timeout, no retries mid-stream.
#pragma warning disable EXTEXP0001 // Experimental, but the supported way to opt one client out of ConfigureHttpClientDefaults.
        // Downloads follow the registry's signed URLs, which carry their own signature: no token goes with them.
        builder.Services.AddHttpClient(ModelLoader.DownloadClient, c => c.Timeout = Timeout.InfiniteTimeSpan).RemoveAllResilienceHandlers();
        builder.Services.AddHttpClient(InferenceEndpoints.UpstreamClient, c => c.Timeout = Timeout.InfiniteTimeSpan).RemoveAllResilienceHandlers();
#pragma warning restore EXTEXP0001
        builder.Services.AddHealthChecks().AddCheck<ModelHealthCheck>("model");

        var app = builder.Build();
        // Unknown routes and wrong methods answer in OpenAI's shape, never with an empty body.
        app.UseStatusCodePages(context => Api.OpenAiException.ForStatus(context.HttpContext).WriteAsync(context.HttpContext.Response));
        app.MapDefaultEndpoints();
        app.MapInference();
        return app;
    }

    private static void RegistryCredential(IServiceProvider services, HttpClient client)
    {
        if (services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ChatFallbackOptions>>().Value.RegistryToken is { Length: > 0 } token)
        {
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }
    }
}
