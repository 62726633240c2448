using System.Globalization;
using System.Text.Json;
using GoblinAspire.ServiceDefaults;

namespace GoblinAspire.AppHost.Operations;

/// <summary>
/// Dashboard commands on the registry for the chat model: promote its newest version (through the registry's gated
/// promote) and roll production back to the version before.
/// </summary>
public static class RegistryOperations
{
    public const string PromoteCommand = "promote-newest-chat-model";
    public const string RollbackCommand = "rollback-chat-model";

    private const string Models = $"/api/v1/models/{PlatformResources.ChatModel}";

    public static IResourceBuilder<ProjectResource> WithModelCommands(this IResourceBuilder<ProjectResource> registry, PlatformSecret registryToken)
    {
        var token = registry.ApplicationBuilder.SecretParameter(registryToken);
        registry.WithCommand(PromoteCommand, $"Promote newest {PlatformResources.ChatModel}", async context =>
        {
            using var client = ServiceCalls.Client(registry.Resource, await token.GetValueAsync(context.CancellationToken));
            var newest = (await VersionsAsync(client, context.CancellationToken)).DefaultIfEmpty(0).Max();
            if (newest == 0)
            {
                return CommandResults.Failure($"{PlatformResources.ChatModel} has no registered version.");
            }

            using var promoted = await client.PostAsync(new Uri($"{Models}/versions/{newest.ToString(CultureInfo.InvariantCulture)}/promote", UriKind.Relative), null, context.CancellationToken);
            var (_, error) = await ServiceCalls.ReadAsync(promoted, context.CancellationToken);
            return error is null ? CommandResults.Success($"Version {newest} of {PlatformResources.ChatModel} is in production.") : CommandResults.Failure(error);
        }, Options($"Promotes the newest registered version of {PlatformResources.ChatModel} to production, through the registry's promotion gates.", "ArrowUp"));

        return registry.WithCommand(RollbackCommand, $"Roll back {PlatformResources.ChatModel}", async context =>
        {
            using var client = ServiceCalls.Client(registry.Resource, await token.GetValueAsync(context.CancellationToken));
            using var current = await client.GetAsync(new Uri($"{Models}/production", UriKind.Relative), context.CancellationToken);
            var (production, error) = await ServiceCalls.ReadAsync(current, context.CancellationToken);
            var versions = error is null ? await VersionsAsync(client, context.CancellationToken) : [];
            var inProduction = Version(production) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : 0;
            var target = versions.Where(v => v < inProduction).DefaultIfEmpty(0).Max();
            if (error is not null || target == 0)
            {
                return CommandResults.Failure(error ?? $"{PlatformResources.ChatModel} has no version older than {inProduction} to roll back to.");
            }

            using var response = await client.PostAsync(new Uri($"{Models}/rollback", UriKind.Relative), ServiceCalls.Json(new { version = target.ToString(CultureInfo.InvariantCulture) }), context.CancellationToken);
            (_, error) = await ServiceCalls.ReadAsync(response, context.CancellationToken);
            return error is null
                ? CommandResults.Success($"Version {target} of {PlatformResources.ChatModel} is in production again.")
                : CommandResults.Failure(error);
        }, Options("Puts the newest version older than the one in production back into production.", "ArrowUndo"));
    }

    private static async Task<IReadOnlyList<int>> VersionsAsync(HttpClient client, CancellationToken cancellationToken)
    {
        var filter = Uri.EscapeDataString($"name='{PlatformResources.ChatModel}'");
        using var search = await client.GetAsync(new Uri($"/api/2.0/mlflow/model-versions/search?filter={filter}", UriKind.Relative), cancellationToken);
        var (body, error) = await ServiceCalls.ReadAsync(search, cancellationToken);
        return error is null && body.TryGetProperty("model_versions", out var list)
            ? [.. list.EnumerateArray().Select(v => int.Parse(v.GetProperty("version").GetString()!, CultureInfo.InvariantCulture))]
            : [];
    }

    private static string? Version(JsonElement body) =>
        body.ValueKind == JsonValueKind.Object && body.TryGetProperty("model_version", out var version) ? version.GetProperty("version").GetString() : null;

    private static CommandOptions Options(string description, string icon) => new()
    {
        Description = description,
        IconName = icon,
        IsHighlighted = false,
        UpdateState = context => context.ResourceSnapshot.HealthStatus is Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy ? ResourceCommandState.Enabled : ResourceCommandState.Disabled,
    };
}
