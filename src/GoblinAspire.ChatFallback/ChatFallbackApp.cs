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

        var app = builder.Build();
        app.MapDefaultEndpoints();
        return app;
    }
}
