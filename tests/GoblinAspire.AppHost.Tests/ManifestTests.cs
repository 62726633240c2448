using System.Text.Json;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;

namespace GoblinAspire.AppHost.Tests;

/// <summary>
/// The manifest aspirate and azd deploy from (<c>--publisher manifest</c>), written by the AppHost as an operator
/// runs it: the data stores as containers with volumes whatever run mode does here, the services with their
/// environment and bindings, and every secret a secret parameter, never a literal.
/// </summary>
public sealed class ManifestTests
{
    private static string Configuration => Path.GetFileName(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)))!;

    [Fact]
    public async Task The_manifest_has_the_data_stores_as_containers_the_services_with_their_wiring_and_only_secret_parameters()
    {
        var output = Directory.CreateTempSubdirectory("goblin-manifest-").FullName;
        try
        {
            await ChildProcess.RunAsync(
                "dotnet",
                ["run", "--project", Path.Combine(ServiceProcess.RepositoryRoot(), "src", "GoblinAspire.AppHost"), "--no-build", "-c", Configuration, "--", "--publisher", "manifest", "--output-path", output],
                TimeSpan.FromMinutes(3),
                workingDirectory: ServiceProcess.RepositoryRoot(),
                environment: new Dictionary<string, string?> { ["NO_COLOR"] = "1" });
            using var manifest = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "aspire-manifest.json")));
            var resources = manifest.RootElement.GetProperty("resources");

            foreach (var (store, port) in new[] { (PlatformResources.Postgres, 5432), (PlatformResources.Redis, 6379) })
            {
                var container = resources.GetProperty(store);
                Assert.Equal("container.v0", container.GetProperty("type").GetString());
                Assert.DoesNotContain(":latest", container.GetProperty("image").GetString(), StringComparison.Ordinal);
                var volume = Assert.Single(container.GetProperty("volumes").EnumerateArray());
                Assert.False(string.IsNullOrEmpty(volume.GetProperty("target").GetString()));
                Assert.Equal(port, container.GetProperty("bindings").GetProperty("tcp").GetProperty("targetPort").GetInt32());
            }

            (string Service, string Project, string[] Variables)[] wiring =
            [
                (PlatformResources.Gateway, "Gateway", ["ConnectionStrings__redis", "ConnectionStrings__gatewaydb", "services__chatfallback__http__0"]),
                (PlatformResources.ModelRegistry, "ModelRegistry", ["ConnectionStrings__registrydb"]),
                (PlatformResources.TrainingWorker, "TrainingWorker", ["ConnectionStrings__trainingdb", "services__modelregistry__http__0"]),
                (PlatformResources.ChatFallback, "ChatFallback", ["services__modelregistry__http__0"]),
            ];
            foreach (var (service, projectName, variables) in wiring)
            {
                var project = resources.GetProperty(service);
                Assert.Equal("project.v0", project.GetProperty("type").GetString());
                Assert.EndsWith($"/GoblinAspire.{projectName}/GoblinAspire.{projectName}.csproj", project.GetProperty("path").GetString(), StringComparison.Ordinal);
                Assert.Equal("http", project.GetProperty("bindings").GetProperty(PlatformResources.HttpEndpoint).GetProperty("scheme").GetString());
                var environment = project.GetProperty("env");
                foreach (var variable in variables)
                {
                    Assert.True(environment.TryGetProperty(variable, out _), $"{service} lacks {variable}");
                }
            }

            Assert.True(resources.GetProperty(PlatformResources.Gateway).GetProperty("bindings").GetProperty(PlatformResources.HttpEndpoint).GetProperty("external").GetBoolean());
            Assert.Equal(2, resources.GetProperty(PlatformResources.Gateway).GetProperty("replicas").GetInt32());

            // Every secret is a parameter marked secret, and anything secret-looking in any environment is a reference.
            string[] generated = ["postgres-password", "redis-password"];
            foreach (var name in PlatformSecrets.All.Where(s => !s.Optional).Select(s => s.Parameter).Concat(generated).Distinct())
            {
                var parameter = resources.GetProperty(name);
                Assert.Equal("parameter.v0", parameter.GetProperty("type").GetString());
                Assert.True(parameter.GetProperty("inputs").GetProperty("value").GetProperty("secret").GetBoolean(), name);
            }

            foreach (var resource in resources.EnumerateObject())
            {
                if (!resource.Value.TryGetProperty("env", out var environment))
                {
                    continue;
                }

                foreach (var variable in environment.EnumerateObject().Where(v => System.Text.RegularExpressions.Regex.IsMatch(v.Name, "(PASSWORD|Secret|Token|Key|ApiKey)$", System.Text.RegularExpressions.RegexOptions.IgnoreCase)))
                {
                    Assert.Matches(@"^\{[a-z0-9-]+\.value\}$", variable.Value.GetString());
                }
            }
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }
}
