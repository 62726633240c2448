using System.Text.RegularExpressions;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;

namespace GoblinAspire.SystemTests;

/// <summary>
/// The AppHost cannot be built where the Aspire packages do not restore, so this reads its source instead: every
/// service must get, through <c>WithReference</c>, each database, Redis and service that <see cref="PlatformTopology"/>
/// says it needs, and must wait for it. A service needing configuration the AppHost does not provide fails here.
/// </summary>
public sealed partial class AppHostWiringTests
{
    private static readonly string Source = File.ReadAllText(Path.Combine(ServiceProcess.RepositoryRoot(), "src", "GoblinAspire.AppHost", "AppHost.cs"));

    public static TheoryData<string> Services => new(PlatformResources.Services);

    [Theory]
    [MemberData(nameof(Services))]
    public void Each_service_gets_every_reference_the_topology_requires(string service)
    {
        var resources = ResourceVariables();
        var chain = ProjectChain(service);
        var references = WithReference().Matches(chain).Select(m => resources.GetValueOrDefault(m.Groups[1].Value, m.Groups[1].Value)).ToHashSet();
        var waits = WaitFor().Matches(chain).Select(m => resources.GetValueOrDefault(m.Groups[1].Value, m.Groups[1].Value)).ToHashSet();

        var wiring = PlatformTopology.For(service);
        var required = wiring.Databases.Concat(wiring.ServiceReferences).Concat(wiring.UsesRedis ? [PlatformResources.Redis] : []).ToList();
        foreach (var resource in required)
        {
            Assert.True(references.Contains(resource), $"{service} needs a WithReference to {resource}");
            Assert.True(waits.Contains(resource), $"{service} should WaitFor {resource}");
        }

        Assert.Contains(".WithHttpHealthCheck(", chain, StringComparison.Ordinal);
        if (wiring.SecretParameters.Count > 0)
        {
            Assert.True(chain.Contains(".WithTopologySecrets()", StringComparison.Ordinal), $"{service} needs its secrets: {string.Join(", ", wiring.SecretParameters.Select(s => s.Parameter))}");
        }

        if (wiring.FixedSettings.Count > 0)
        {
            Assert.True(chain.Contains(".WithTopologySettings()", StringComparison.Ordinal), $"{service} needs its fixed settings: {string.Join(", ", wiring.FixedSettings.Keys)}");
        }
    }

    [Fact]
    public void Topology_secrets_become_secret_parameters_with_their_settings()
    {
        var extension = Source[Source.IndexOf("WithTopologySecrets(this", StringComparison.Ordinal)..];
        extension = extension[..extension.IndexOf("return project;", StringComparison.Ordinal)];
        Assert.Matches(@"WithEnvironment\(secret\.Variable,\s*builder\.AddParameter\(secret\.Parameter,\s*secret:\s*true\)\)", extension);
        Assert.Contains("secret.Settings", extension, StringComparison.Ordinal);
        Assert.Contains("secret.Optional", extension, StringComparison.Ordinal);

        // One parameter each, one variable each, and no secret among another's fixed settings.
        var secrets = PlatformTopology.Services.SelectMany(s => s.SecretParameters).ToList();
        Assert.Equal(secrets.Count, secrets.Select(s => s.Parameter).Distinct().Count());
        Assert.Equal(secrets.Count, secrets.Select(s => s.Variable).Distinct().Count());
        var settings = PlatformTopology.Services.SelectMany(s => s.FixedSettings.Keys).Concat(secrets.SelectMany(s => s.Settings.Keys)).ToList();
        Assert.Empty(settings.Intersect(secrets.Select(s => s.Variable)));
        Assert.All(typeof(PlatformSecrets).GetFields().Select(f => (PlatformSecret)f.GetValue(null)!), secret => Assert.Contains(secret, secrets));
    }

    [Fact]
    public void The_gateway_is_external_and_replicated_and_no_secret_is_a_literal()
    {
        var gateway = ProjectChain(PlatformResources.Gateway);
        Assert.Contains(".WithExternalHttpEndpoints()", gateway, StringComparison.Ordinal);
        Assert.Contains(".WithReplicas(PlatformTopology.For(PlatformResources.Gateway).Replicas)", gateway, StringComparison.Ordinal);
        Assert.True(PlatformTopology.For(PlatformResources.Gateway).Replicas >= 2);
        Assert.DoesNotMatch(@"(?i)password\s*[:=]\s*""", Source);
    }

    /// <summary>Variable name → resource name, for <c>var x = ….Add…(PlatformResources.Y)</c> and project variables.</summary>
    private static Dictionary<string, string> ResourceVariables()
    {
        var names = typeof(PlatformResources).GetFields().Where(f => f.IsLiteral).ToDictionary(f => f.Name, f => (string)f.GetRawConstantValue()!);
        return Declaration().Matches(Source).ToDictionary(m => m.Groups["var"].Value, m => names[m.Groups["const"].Value]);
    }

    private static string ProjectChain(string service)
    {
        var constant = typeof(PlatformResources).GetFields().Single(f => f.IsLiteral && (string)f.GetRawConstantValue()! == service).Name;
        var start = Source.IndexOf($"(PlatformResources.{constant})", StringComparison.Ordinal);
        Assert.True(start >= 0 && Source.LastIndexOf("AddProject<", start, StringComparison.Ordinal) > Source.LastIndexOf(';', start), $"the AppHost adds no project named {service}");
        return Source[start..Source.IndexOf(';', start)];
    }

    [GeneratedRegex(@"var\s+(?<var>\w+)\s*=\s*[\w.]+\s*\.Add\w+(?:<[\w.]+>)?\(PlatformResources\.(?<const>\w+)")]
    private static partial Regex Declaration();

    [GeneratedRegex(@"\.WithReference\((\w+)\)")]
    private static partial Regex WithReference();

    [GeneratedRegex(@"\.WaitFor\((\w+)\)")]
    private static partial Regex WaitFor();
}
