using System.Net;
using GoblinAspire.ServiceDefaults;

namespace GoblinAspire.AppHost.Tests;

public sealed class AppHostTests
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Fails when a service needs configuration the AppHost does not give it: every connection string and service
    /// endpoint in <see cref="PlatformTopology"/> must appear in the project's environment. Needs no container runtime.
    /// </summary>
    [Fact]
    public async Task Every_service_gets_the_connection_strings_and_endpoints_the_topology_requires()
    {
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.GoblinAspire_AppHost>(["--publisher", "manifest", "--output-path", Path.GetTempPath()]);
        foreach (var wiring in PlatformTopology.Services)
        {
            var project = Assert.Single(appHost.Resources.OfType<ProjectResource>(), r => r.Name == wiring.Name);
            var environment = await project.GetEnvironmentVariableValuesAsync(DistributedApplicationOperation.Publish);
            foreach (var database in wiring.Databases)
            {
                Assert.Contains(PlatformTopology.ConnectionStringVariable(database), environment.Keys);
            }

            if (wiring.UsesRedis)
            {
                Assert.Contains(PlatformTopology.ConnectionStringVariable(PlatformResources.Redis), environment.Keys);
            }

            foreach (var reference in wiring.ServiceReferences)
            {
                Assert.Contains(PlatformTopology.ServiceEndpointVariable(reference), environment.Keys);
            }

            foreach (var secret in wiring.RequiredSecrets)
            {
                Assert.Contains(secret.Variable, environment.Keys);
            }

            foreach (var (name, value) in wiring.FixedSettings)
            {
                Assert.Equal(value, environment[name]);
            }
        }
    }

    [Fact]
    [Trait("Category", "RequiresContainerRuntime")]
    public async Task Every_resource_becomes_healthy_and_the_gateway_answers_health()
    {
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.GoblinAspire_AppHost>();
        appHost.Configuration["Parameters:postgres-password"] = "goblin-test-" + Guid.NewGuid().ToString("N");
        foreach (var secret in PlatformTopology.Services.SelectMany(s => s.RequiredSecrets))
        {
            appHost.Configuration[$"Parameters:{secret.Parameter}"] = "goblin-test-" + Guid.NewGuid().ToString("N");
        }
        await using var app = await appHost.BuildAsync();
        using var cts = new CancellationTokenSource(StartTimeout);
        await app.StartAsync(cts.Token);

        foreach (var service in PlatformResources.Services)
        {
            await app.ResourceNotifications.WaitForResourceHealthyAsync(service, cts.Token);
        }

        using var gateway = app.CreateHttpClient(PlatformResources.Gateway);
        Assert.Equal(HttpStatusCode.OK, (await gateway.GetAsync("/health", cts.Token)).StatusCode);
        using var registry = app.CreateHttpClient(PlatformResources.ModelRegistry);
        Assert.Equal(HttpStatusCode.OK, (await registry.GetAsync("/health", cts.Token)).StatusCode);
    }
}
