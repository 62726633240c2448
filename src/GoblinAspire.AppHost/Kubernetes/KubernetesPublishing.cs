using Aspire.Hosting.Pipelines;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.AppHost.Kubernetes;

/// <summary>
/// The Kubernetes output as a step of Aspire's publish pipeline, beside the manifest aspirate and azd read: one
/// command (<c>dotnet run --project src/GoblinAspire.AppHost -- --operation publish --step publish --output-path
/// out</c>, or <c>aspire publish -o out</c>) writes <c>out/aspire-manifest.json</c> and <c>out/kubernetes/</c>.
/// </summary>
internal static partial class KubernetesPublishing
{
    public const string StepName = "publish-kubernetes";

    /// <summary>Aspire's own step that writes aspire-manifest.json.</summary>
    public const string ManifestStep = "publish-manifest";

    public static IDistributedApplicationBuilder AddKubernetesPublishing(this IDistributedApplicationBuilder builder)
    {
        if (!builder.ExecutionContext.IsPublishMode)
        {
            return builder;
        }

        // Parameters, so `aspire publish` asks for them like any other and the defaults are on record.
        ParameterResource[] parameters =
        [
            builder.AddParameterWithDefault(KubernetesSettings.ImageRegistryParameter, "localhost:5000").Resource,
            builder.AddParameterWithDefault(KubernetesSettings.ImageTagParameter, "1.0.0").Resource,
            builder.AddParameterWithDefault(KubernetesSettings.NamespaceParameter, "goblinaspire").Resource,
            builder.AddParameterWithDefault(KubernetesSettings.MaxReplicasParameter, "10").Resource,
        ];
#pragma warning disable ASPIREPIPELINES001, ASPIREPIPELINES004 // Aspire 13.6's pipeline API is marked for evaluation; it is the one way to add a publishing step.
        builder.Pipeline.AddStep(StepName, async context =>
        {
            var settings = await KubernetesSettings.ReadAsync(parameters, context.CancellationToken);
            var output = await KubernetesOutput.RenderAsync(context.Model, context.ExecutionContext, settings, context.Logger, context.CancellationToken);
            var directory = Path.Combine(context.Services.GetRequiredService<IPipelineOutputService>().GetOutputDirectory(), "kubernetes");
            await output.WriteAsync(directory, context.CancellationToken);
            LogWritten(context.Logger, directory, settings.Namespace, PodValues.SecretName, string.Join(' ', output.SecretKeys.Select(k => $"--from-literal={k}=…")));
        }, dependsOn: ManifestStep, requiredBy: WellKnownPipelineSteps.Publish);
#pragma warning restore ASPIREPIPELINES001, ASPIREPIPELINES004
        return builder;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Kubernetes output written to {Directory}. Create its secrets first: kubectl create namespace {Namespace}; kubectl create secret generic {Secret} -n {Namespace} {Keys}")]
    private static partial void LogWritten(ILogger logger, string directory, string @namespace, string secret, string keys);
}
