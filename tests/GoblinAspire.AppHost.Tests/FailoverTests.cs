using System.Net;
using GoblinAspire.AppHost.Tests.Platform;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace GoblinAspire.AppHost.Tests;

/// <summary>A primary provider (a stand-in for vLLM) that lists its model but fails every chat with OpenAI's error body.</summary>
public sealed class FailingPrimaryPlatform : PlatformFixture
{
    private int _calls;

    public TestWebHost Primary { get; private set; } = null!;

    public int Calls => Volatile.Read(ref _calls);

    public override async Task InitializeAsync()
    {
        Primary = await TestWebHost.StartStandInAsync(app =>
        {
            app.MapGet("/v1/models", () => Results.Json(new { @object = "list", data = new[] { new { id = "llama", @object = "model" } } }));
            app.MapPost("/v1/chat/completions", () =>
            {
                Interlocked.Increment(ref _calls);
                return Results.Json(new { error = new { message = "CUDA error: out of memory", type = "server_error", param = (string?)null, code = (string?)null } }, statusCode: 500);
            });
        });
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        try
        {
            await base.DisposeAsync();
        }
        finally
        {
            await Primary.DisposeAsync();
        }
    }

    /// <summary>The primary added beside the ChatFallback under its own name, as the AppHost adds vLLM with a GPU.</summary>
    protected override void Configure(IDistributedApplicationTestingBuilder appHost)
    {
        var gateway = appHost.CreateResourceBuilder<ProjectResource>(PlatformResources.Gateway);
        foreach (var (name, value) in GatewayProviders.Entry(PlatformResources.Vllm, kind: "openai", baseUrl: Primary.BaseAddress.AbsoluteUri, priority: 0, upstreamModel: "llama"))
        {
            gateway.WithEnvironment(name, value);
        }
    }
}

/// <summary>Every GPU provider failing: the same request is answered by the ChatFallback, and the gateway opens the primary's circuit.</summary>
[Collection(WholePlatformCollection.Name)]
public sealed class FailoverTests(FailingPrimaryPlatform platform) : IClassFixture<FailingPrimaryPlatform>
{
    [Fact]
    public async Task A_failing_primary_is_answered_by_the_fallback_in_the_same_request_and_its_circuit_opens()
    {
        // One replica, so one circuit breaker sees every failure.
        using var gateway = (await platform.ReplicaClientsAsync(PlatformResources.Gateway, platform.DevelopmentKey))[0];
        for (var i = 0; i < 8; i++)
        {
            var callsBefore = platform.Calls;
            using var response = await gateway.PostAsync("/v1/chat/completions", PlatformFixture.Json("""{"model":"goblin-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":3}"""));
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}\n{platform.Output}");
            Assert.Equal(PlatformResources.ChatFallback, response.Headers.GetValues("x-goblin-provider").Single());
            if (i == 0)
            {
                Assert.Equal(callsBefore + 1, platform.Calls);
            }
        }

        var providers = await PlatformFixture.ReadJsonAsync(await gateway.GetAsync("/providers"));
        Assert.Equal("circuit_open", providers.GetProperty(PlatformResources.Vllm).GetProperty("status").GetString());
        Assert.Contains("500", providers.GetProperty(PlatformResources.Vllm).GetProperty("last_error").GetString(), StringComparison.Ordinal);
        Assert.Equal("healthy", providers.GetProperty(PlatformResources.ChatFallback).GetProperty("status").GetString());

        // With the circuit open the primary is not called at all, and the fallback still answers.
        var calls = platform.Calls;
        using var more = await gateway.PostAsync("/v1/chat/completions", PlatformFixture.Json("""{"model":"goblin-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":3}"""));
        Assert.Equal(HttpStatusCode.OK, more.StatusCode);
        Assert.Equal(calls, platform.Calls);
        Assert.True(calls < 8, $"the primary was called {calls} times in 8 requests: its circuit never opened");
    }
}
