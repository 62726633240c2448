using System.Globalization;
using GoblinAspire.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.AppHost.Operations;

/// <summary>
/// The gateway's development conveniences: a development key that is the same on every run, made through the admin
/// API once the gateway is healthy, and a dashboard command that creates a virtual key and shows it once.
/// </summary>
public static class GatewayOperations
{
    public const string CreateKeyCommand = "create-virtual-key";
    public const string DevelopmentKeyName = "development";

    public static IResourceBuilder<ProjectResource> WithKeyCommands(this IResourceBuilder<ProjectResource> gateway, IResourceBuilder<ParameterResource> adminKey) =>
        gateway.WithCommand(CreateKeyCommand, "Create virtual key", async context =>
        {
            using var client = ServiceCalls.Client(gateway.Resource, await adminKey.Resource.GetValueAsync(context.CancellationToken));
            var name = $"dashboard-{DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}";
            using var response = await client.PostAsync(new Uri("/admin/keys", UriKind.Relative), ServiceCalls.Json(new { name, team = DevelopmentKeyName }), context.CancellationToken);
            var (body, error) = await ServiceCalls.ReadAsync(response, context.CancellationToken);
            return error is not null
                ? CommandResults.Failure(error)
                : CommandResults.Success($"Virtual key '{name}' created; it is shown only now.", body.GetProperty("key").GetString()!, CommandResultFormat.Text, displayImmediately: true);
        }, new CommandOptions
        {
            Description = "Creates a virtual key through the gateway's admin API and shows its secret once.",
            IconName = "Key",
            UpdateState = context => context.ResourceSnapshot.HealthStatus is Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy ? ResourceCommandState.Enabled : ResourceCommandState.Disabled,
        });

    /// <summary>
    /// Makes <paramref name="developmentKey"/> a virtual key of the gateway (team <c>development</c>) unless it already
    /// is one; the key's value is a persisted generated parameter, so it stays the same across runs.
    /// </summary>
    public static async Task EnsureDevelopmentKeyAsync(ProjectResource gateway, string adminKey, string developmentKey, ILogger log, CancellationToken cancellationToken)
    {
        using var client = ServiceCalls.Client(gateway, adminKey);
        using var response = await client.PostAsync(
            new Uri("/admin/keys", UriKind.Relative),
            ServiceCalls.Json(new { name = DevelopmentKeyName, team = DevelopmentKeyName, key = developmentKey }),
            cancellationToken);
        var (_, error) = await ServiceCalls.ReadAsync(response, cancellationToken);
        if (error is not null && response.StatusCode != System.Net.HttpStatusCode.Conflict)
        {
            log.LogError("The development key could not be created: {Error}", error);
            throw new HttpRequestException(error);
        }
    }

    /// <summary>The development key's value: a virtual key's prefix and the generated parameter.</summary>
    public static string DevelopmentKey(string generated) => "sk-goblin-dev-" + generated;

    public static string OpenAiBaseUrl(ProjectResource gateway) => gateway.GetEndpoint(PlatformResources.HttpEndpoint).Url.TrimEnd('/') + "/v1";
}
