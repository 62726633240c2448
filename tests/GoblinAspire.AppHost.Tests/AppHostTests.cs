using System.Net;
using GoblinAspire.LocalHost;
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
        // Every optional secret set, as an operator who wants every feature publishes: each must arrive with its settings.
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.GoblinAspire_AppHost>(["--publisher", "manifest", "--output-path", Path.GetTempPath()]);
        foreach (var secret in PlatformTopology.Services.SelectMany(s => s.SecretParameters))
        {
            appHost.Configuration[$"Parameters:{secret.Parameter}"] = "";
        }

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

            foreach (var secret in wiring.SecretParameters)
            {
                Assert.Contains(secret.Variable, environment.Keys);
                foreach (var (name, value) in secret.Settings)
                {
                    Assert.Equal(value, environment[name]);
                }
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
        GiveRequiredParameters(appHost);
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

        // Without a GPU there is no vLLM: goblin-chat is answered by the ChatFallback, found through service discovery,
        // once the registry has a production model (the local host's demo model, registered through the registry's API).
        await new ChatModelProvisioner(registry, _ => { }).EnsureAsync(null, Directory.CreateTempSubdirectory("goblin-demo-").FullName, cts.Token);
        while (true)
        {
            using var answer = await gateway.PostAsync("/v1/chat/completions", new StringContent("""{"model":"goblin-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":3}""", System.Text.Encoding.UTF8, "application/json"), cts.Token);
            if (answer.StatusCode == HttpStatusCode.OK)
            {
                Assert.Equal(PlatformResources.ChatFallback, answer.Headers.GetValues("x-goblin-provider").Single());
                break;
            }

            // The ChatFallback looks at the registry every 30 s; until then it answers 503 model_not_loaded.
            await Task.Delay(TimeSpan.FromSeconds(2), cts.Token);
        }
    }

    /// <summary>
    /// <c>aspire publish</c>'s output: a Helm chart whose service pods are hardened, with the gateway's autoscaler and
    /// the registry's artifact claim. Publishing builds the projects' container images, hence the container runtime.
    /// </summary>
    [Fact]
    [Trait("Category", "RequiresContainerRuntime")]
    public async Task Publishing_writes_a_helm_chart_with_hardened_pods_an_autoscaler_and_persistent_claims()
    {
        var output = Directory.CreateTempSubdirectory("goblin-chart-").FullName;
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.GoblinAspire_AppHost>(["--operation", "publish", "--step", "publish", "--output-path", output]);
        GiveRequiredParameters(appHost);

        await using var app = await appHost.BuildAsync();
        using var cts = new CancellationTokenSource(StartTimeout);
        await app.RunAsync(cts.Token);

        Assert.True(File.Exists(Path.Combine(output, "Chart.yaml")));
        Assert.Contains("name: goblinaspire", await File.ReadAllTextAsync(Path.Combine(output, "Chart.yaml"), cts.Token), StringComparison.Ordinal);
        foreach (var service in PlatformResources.Services)
        {
            var deployment = await File.ReadAllTextAsync(Path.Combine(output, "templates", service, "deployment.yaml"), cts.Token);
            foreach (var expected in new[] { "runAsNonRoot: true", "readOnlyRootFilesystem: true", "allowPrivilegeEscalation: false", "- ALL", "mountPath: /tmp", "path: /alive", "path: /health", "requests:", "limits:" })
            {
                Assert.Contains(expected, deployment, StringComparison.Ordinal);
            }
        }

        var templates = Directory.EnumerateFiles(Path.Combine(output, "templates"), "*.yaml", SearchOption.AllDirectories).Select(File.ReadAllText).ToList();
        Assert.Contains(templates, t => t.Contains("kind: HorizontalPodAutoscaler", StringComparison.Ordinal) && t.Contains("gateway-deployment", StringComparison.Ordinal));
        Assert.Contains(templates, t => t.Contains("kind: PersistentVolumeClaim", StringComparison.Ordinal) && t.Contains("modelregistry-artifacts", StringComparison.Ordinal));
        Assert.DoesNotContain(templates, t => t.Contains("vllm", StringComparison.Ordinal));
    }

    /// <summary>What an operator must give the AppHost: the PostgreSQL password and every required secret; no optional one.</summary>
    private static void GiveRequiredParameters(IDistributedApplicationTestingBuilder appHost)
    {
        appHost.Configuration["Parameters:postgres-password"] = "goblin-test-" + Guid.NewGuid().ToString("N");
        foreach (var secret in PlatformTopology.Services.SelectMany(s => s.SecretParameters).Where(s => !s.Optional))
        {
            appHost.Configuration[$"Parameters:{secret.Parameter}"] = "goblin-test-" + Guid.NewGuid().ToString("N");
        }
    }
}
