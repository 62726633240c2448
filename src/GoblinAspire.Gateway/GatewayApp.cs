using GoblinAspire.ServiceDefaults;

namespace GoblinAspire.Gateway;

public static class GatewayApp
{
    /// <param name="configure">Lets tests and the local host add configuration before the app is built.</param>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        configure?.Invoke(builder);

        builder.AddServiceDefaults();
        builder.AddGoblinRedis(PlatformResources.Redis);
        builder.AddGoblinNpgsql(PlatformResources.GatewayDatabase);
        builder.AddValidatedOptions<GatewayOptions, GatewayOptionsValidator>(GatewayOptions.SectionName);

        var app = builder.Build();
        app.MapDefaultEndpoints();
        return app;
    }
}
