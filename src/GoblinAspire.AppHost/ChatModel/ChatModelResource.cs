using System.Collections.Immutable;
using GoblinAspire.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.AppHost.ChatModel;

/// <summary>
/// The production version of <see cref="PlatformResources.ChatModel"/> as a resource of its own: it shows in the
/// dashboard while the model is registered, turns Running with the version once one is in production, and lets the
/// ChatFallback wait for a model to serve rather than answer "model not loaded" on the first run.
/// </summary>
public sealed class ChatModelResource(string name) : Resource(name);

public static class ChatModelResourceExtensions
{
    /// <summary>
    /// Once the registry is healthy, makes sure <see cref="PlatformResources.ChatModel"/> has a production version
    /// through the registry's own API: the GGUF file of the <c>chat-model-path</c> parameter when given, else the demo
    /// model (random weights) when none is in production yet.
    /// </summary>
    public static IResourceBuilder<ChatModelResource> AddChatModel(this IDistributedApplicationBuilder builder, IResourceBuilder<ProjectResource> registry, ParameterResource registryToken, string demoDirectory)
    {
        var chatModel = builder.AddResource(new ChatModelResource($"{PlatformResources.ChatModel}-model"))
            .WithInitialState(new CustomResourceSnapshot
            {
                ResourceType = "Model",
                State = KnownResourceStates.Waiting,
                Properties = [new("registered_model", PlatformResources.ChatModel)],
            })
            .ExcludeFromManifest();
        var modelPath = builder.Configuration["Parameters:chat-model-path"] is { Length: > 0 } path ? path : null;
        // Provisioning runs beside the registry's ready event, not inside it: services that wait for the registry
        // (the worker) need not wait for an upload, and only the ChatFallback waits for the model.
        registry.OnResourceReady((resource, @event, readyToken) =>
        {
            var stopping = @event.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
            _ = Task.Run(() => ProvisionAsync(resource, chatModel.Resource, registryToken, modelPath, demoDirectory, @event.Services, stopping), stopping);
            return Task.CompletedTask;
        });
        return chatModel;
    }

    private static async Task ProvisionAsync(ProjectResource registry, ChatModelResource chatModel, ParameterResource registryToken, string? modelPath, string demoDirectory, IServiceProvider services, CancellationToken cancellationToken)
    {
        var notifications = services.GetRequiredService<ResourceNotificationService>();
        var log = services.GetRequiredService<ResourceLoggerService>().GetLogger(chatModel);
        await notifications.PublishUpdateAsync(chatModel, s => s with { State = KnownResourceStates.Starting });
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri(registry.GetEndpoint(PlatformResources.HttpEndpoint).Url), Timeout = TimeSpan.FromMinutes(5) };
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", await registryToken.GetValueAsync(cancellationToken));
            var version = await new ChatModelProvisioner(client, line => log.LogInformation("{Line}", line)).EnsureAsync(modelPath, demoDirectory, cancellationToken);
            await notifications.PublishUpdateAsync(chatModel, s => s with
            {
                State = KnownResourceStates.Running,
                StartTimeStamp = DateTime.UtcNow,
                Properties = [.. s.Properties.Where(p => p.Name != "production_version"), new("production_version", version)],
            });
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // A bad chat-model-path, an unreadable file, a registry that refuses: say why, and let waiters fail fast.
            log.LogError("{Error}", ex.Message);
            await notifications.PublishUpdateAsync(chatModel, s => s with { State = KnownResourceStates.FailedToStart });
        }
    }
}
