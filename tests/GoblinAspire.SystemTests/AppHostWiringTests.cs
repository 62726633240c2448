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
        foreach (var secret in wiring.RequiredSecrets)
        {
            var constant = typeof(PlatformSecrets).GetFields().Single(f => Equals(f.GetValue(null), secret)).Name;
            Assert.True(chain.Contains($".WithEnvironment(PlatformSecrets.{constant}.Variable, ", StringComparison.Ordinal), $"{service} needs the secret {secret.Parameter} as {secret.Variable}");
            Assert.Matches($@"AddParameter\(PlatformSecrets\.{constant}\.Parameter,\s*secret:\s*true\)", Source);
        }

        if (wiring.FixedSettings.Count > 0)
        {
            Assert.True(chain.Contains(".WithTopologySettings()", StringComparison.Ordinal), $"{service} needs its fixed settings: {string.Join(", ", wiring.FixedSettings.Keys)}");
        }
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
