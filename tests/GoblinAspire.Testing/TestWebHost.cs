using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.Testing;

/// <summary>
/// Starts a service on a real loopback port (Kestrel, port 0), configured the way the AppHost configures it:
/// through environment-style keys (<c>ConnectionStrings__redis</c>, <c>services__x__http__0</c>).
/// </summary>
public sealed class TestWebHost : IAsyncDisposable
{
    private TestWebHost(WebApplication app, Uri baseAddress)
    {
        App = app;
        BaseAddress = baseAddress;
        Client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public WebApplication App { get; }

    public Uri BaseAddress { get; }

    public HttpClient Client { get; }

    public IServiceProvider Services => App.Services;

    /// <summary>
    /// Applies environment-variable-style settings (double underscores for sections) exactly as the
    /// environment-variable configuration provider would, and binds to 127.0.0.1 on a free port.
    /// </summary>
    public static void Configure(WebApplicationBuilder builder, IReadOnlyDictionary<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(environment);
        builder.Configuration.AddInMemoryCollection(environment.Select(kv => KeyValuePair.Create(kv.Key.Replace("__", ":", StringComparison.Ordinal), kv.Value)));
        builder.WebHost.UseUrls("http://127.0.0.1:0");
    }

    public static async Task<TestWebHost> StartAsync(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestWebHost(app, new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal)));
    }

    /// <summary>A stand-in for an outside service: a bare app on a free loopback port, its routes from <paramref name="map"/>, no logging.</summary>
    public static async Task<TestWebHost> StartStandInAsync(Action<WebApplication> map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        map(app);
        return await StartAsync(app);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
