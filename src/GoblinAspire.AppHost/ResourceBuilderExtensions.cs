namespace GoblinAspire.AppHost;

internal static class ResourceBuilderExtensions
{
    /// <summary>
    /// Each secret as <c>AddParameter(…, secret: true)</c> into its setting. An optional one is composed, with the
    /// settings that come with it, only where the operator gives it: in run mode when <c>Parameters:{name}</c> has a
    /// value, when publishing when it is set at all, so a manifest carries exactly the features its operator asked for.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithSecrets(this IResourceBuilder<ProjectResource> project, params PlatformSecret[] secrets)
    {
        var builder = project.ApplicationBuilder;
        foreach (var secret in secrets)
        {
            var given = builder.Configuration[$"Parameters:{secret.Parameter}"];
            if (secret.Optional && (builder.ExecutionContext.IsRunMode ? string.IsNullOrEmpty(given) : given is null))
            {
                continue;
            }

            var parameter = builder.Resources.OfType<ParameterResource>().FirstOrDefault(p => p.Name == secret.Parameter) is { } existing
                ? builder.CreateResourceBuilder(existing)
                : secret.Optional
                    ? builder.AddParameter(secret.Parameter, secret: true)
                    : builder.AddParameter(secret.Parameter, new GenerateParameterDefault { MinLength = 40, Special = false }, secret: true, persist: true);
            project.WithEnvironment(secret.Variable, parameter);
            foreach (var (name, value) in secret.Settings)
            {
                project.WithEnvironment(name, value);
            }
        }

        return project;
    }

    /// <summary>
    /// A plain parameter with a default an operator can override (<c>Parameters:{name}</c>): Aspire's
    /// <c>AddParameter(name, value)</c> alone fixes the value, whatever the configuration says.
    /// </summary>
    public static IResourceBuilder<ParameterResource> AddParameterWithDefault(this IDistributedApplicationBuilder builder, string name, string defaultValue) =>
        builder.AddParameter(name, builder.Configuration[$"Parameters:{name}"] is { Length: > 0 } given ? given : defaultValue, publishValueAsDefault: true);

    /// <summary>
    /// Replicas in the manifest as in run mode: Aspire's <c>project.v0</c> has no word for them, so the project is
    /// written as Aspire writes it (path, arguments, environment, bindings) plus <c>replicas</c>, which aspirate and
    /// azd read past and an operator's tooling can take.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithReplicasInManifest(this IResourceBuilder<ProjectResource> project, int replicas)
    {
        project.WithReplicas(replicas);
        return project.WithAnnotation(new ManifestPublishingCallbackAnnotation(async context =>
        {
            context.Writer.WriteString("type", "project.v0");
            context.Writer.WriteString("path", context.GetManifestRelativePath(project.Resource.GetProjectMetadata().ProjectPath));
            await context.WriteCommandLineArgumentsAsync(project.Resource);
            await context.WriteEnvironmentVariablesAsync(project.Resource);
            context.WriteBindings(project.Resource);
            context.Writer.WriteNumber("replicas", replicas);
        }), ResourceAnnotationMutationBehavior.Replace);
    }

    /// <summary>The parameter a required secret was composed as (by <see cref="WithSecrets"/>), for the AppHost's own calls.</summary>
    public static ParameterResource SecretParameter(this IDistributedApplicationBuilder builder, PlatformSecret secret) =>
        builder.Resources.OfType<ParameterResource>().Single(p => p.Name == secret.Parameter);
}
