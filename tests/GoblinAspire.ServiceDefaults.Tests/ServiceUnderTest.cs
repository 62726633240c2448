using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.ServiceDefaults.Tests;

/// <summary>A minimal service on ServiceDefaults, wired the way the platform's services are.</summary>
internal static class ServiceUnderTest
{
    public static async Task<TestWebHost> StartAsync(IReadOnlyDictionary<string, string?> environment, bool redis = true, bool postgres = true)
    {
        var builder = WebApplication.CreateSlimBuilder();
        TestWebHost.Configure(builder, environment);
        builder.AddServiceDefaults();
        if (redis)
        {
            builder.AddGoblinRedis(PlatformResources.Redis);
        }

        if (postgres)
        {
            builder.AddGoblinNpgsql(PlatformResources.GatewayDatabase);
        }

        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapGet("/hello", (ILoggerFactory loggers) =>
        {
            loggers.CreateLogger("GoblinAspire.Probe").LogInformation("hello from the probe");
            return "hello";
        });
        app.MapGet("/call/{service}", async (string service, IHttpClientFactory factory, CancellationToken ct) =>
        {
            var client = factory.CreateClient();
            var body = await client.GetStringAsync(new Uri(PlatformResources.ServiceUri(service), "/whoami"), ct);
            return Results.Text(body);
        });
        return await TestWebHost.StartAsync(app);
    }
}
