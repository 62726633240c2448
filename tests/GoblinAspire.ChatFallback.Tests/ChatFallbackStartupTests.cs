using System.Net;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ChatFallback.Tests;

public sealed class ChatFallbackStartupTests
{
    [Fact]
    public async Task Starts_without_any_database_and_answers_health_alive_and_metrics()
    {
        var app = ChatFallbackApp.Build([], builder => TestWebHost.Configure(builder, new Dictionary<string, string?>()));
        await using var host = await TestWebHost.StartAsync(app);

        await Eventually.HoldsAsync(async () => (await host.Client.GetAsync("/health")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "healthy");
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/alive")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/metrics")).StatusCode);
    }

    [Fact]
    public void A_zero_concurrency_is_rejected_at_start()
    {
        var app = ChatFallbackApp.Build([], builder => TestWebHost.Configure(builder, new Dictionary<string, string?>
        {
            ["ChatFallback__MaxConcurrency"] = "0",
        }));
        var error = Assert.Throws<OptionsValidationException>(() => app.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("MaxConcurrency", error.Message, StringComparison.Ordinal);
    }
}
