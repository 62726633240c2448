using System.Text;
using GoblinAspire.AppHost.ChatModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.AppHost.Operations;

/// <summary>
/// What a developer needs to start calling the platform, printed once everything is healthy: the dashboard, the
/// gateway's OpenAI base URL and a development key that stays the same across runs.
/// </summary>
internal static class DevelopmentAccess
{
    public static IResourceBuilder<ProjectResource> WithDevelopmentAccess(this IResourceBuilder<ProjectResource> gateway, IResourceBuilder<ParameterResource> adminKey, IResourceBuilder<ParameterResource> developmentKey, IResourceBuilder<ChatModelResource> chatModel) =>
        gateway.OnResourceReady(async (resource, @event, cancellationToken) =>
        {
            var log = @event.Services.GetRequiredService<ResourceLoggerService>().GetLogger(resource);
            var key = GatewayOperations.DevelopmentKey(await developmentKey.Resource.GetValueAsync(cancellationToken) ?? string.Empty);
            try
            {
                await GatewayOperations.EnsureDevelopmentKeyAsync(resource, await adminKey.Resource.GetValueAsync(cancellationToken) ?? string.Empty, key, log, cancellationToken);
                await @event.Services.GetRequiredService<ResourceNotificationService>().WaitForResourceAsync(chatModel.Resource.Name, KnownResourceStates.Running, cancellationToken);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // No banner then, but the reason shows in the gateway's log; the platform itself runs on.
                log.LogError("The development key could not be made ready: {Error}", ex.Message);
                return;
            }

            var configuration = @event.Services.GetRequiredService<IConfiguration>();
            var banner = new StringBuilder()
                .AppendLine()
                .AppendLine("GoblinAspire is up.")
                .AppendLine($"  Dashboard:        {DashboardLogin(configuration) ?? "(disabled)"}")
                .AppendLine($"  OpenAI base URL:  {GatewayOperations.OpenAiBaseUrl(resource)}")
                .AppendLine($"  API key:          {key}")
                .AppendLine($"  Try: curl {GatewayOperations.OpenAiBaseUrl(resource)}/chat/completions -H 'authorization: Bearer {key}' -H 'content-type: application/json' -d '{{\"model\":\"goblin-chat\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'");
            await Console.Out.WriteLineAsync(banner.ToString());
        });

    /// <summary>The dashboard's address with its login token, as the AppHost's own start line gives it.</summary>
    private static string? DashboardLogin(IConfiguration configuration)
    {
        if (configuration["ASPNETCORE_URLS"]?.Split(';', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() is not { } url)
        {
            return null;
        }

        return configuration["AppHost:BrowserToken"] is { Length: > 0 } token ? $"{url.TrimEnd('/')}/login?t={token}" : url;
    }
}
