using GoblinAspire.ServiceDefaults;

namespace GoblinAspire.ModelRegistry;

public static class ModelRegistryApp
{
    /// <param name="configure">Lets tests and the local host add configuration before the app is built.</param>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        configure?.Invoke(builder);

        builder.AddServiceDefaults();
        builder.AddGoblinNpgsql(PlatformResources.RegistryDatabase);
        builder.AddValidatedOptions<ModelRegistryOptions, ModelRegistryOptionsValidator>(ModelRegistryOptions.SectionName);

        var app = builder.Build();
        app.MapDefaultEndpoints();
        return app;
    }
}
