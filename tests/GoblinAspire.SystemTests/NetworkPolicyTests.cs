using System.Text.RegularExpressions;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;

namespace GoblinAspire.SystemTests;

/// <summary>
/// The network policies under deploy/kubernetes open ingress along the AppHost's references and nothing else: a new
/// reference in <see cref="PlatformTopology"/> without its policy, or a policy nobody needs, fails here.
/// </summary>
public sealed partial class NetworkPolicyTests
{
    private static readonly string Policies = File.ReadAllText(Path.Combine(ServiceProcess.RepositoryRoot(), "deploy", "kubernetes", "network-policies.yaml"));

    [Fact]
    public void Each_resource_accepts_ingress_exactly_from_the_services_that_reference_it()
    {
        var allowed = new Dictionary<string, HashSet<string>>();
        foreach (var document in Policies.Split("\n---\n"))
        {
            var target = Component().Match(document.Split("ingress:")[0]);
            if (!target.Success || !document.Contains("  ingress:\n    - from:", StringComparison.Ordinal) || document.Contains("namespaceSelector", StringComparison.Ordinal))
            {
                continue;
            }

            allowed[target.Groups[1].Value] = [.. Component().Matches(document.Split("ingress:")[1]).Select(m => m.Groups[1].Value)];
        }

        var expected = new Dictionary<string, HashSet<string>>();
        void Allow(string target, string source)
        {
            if (!expected.TryGetValue(target, out var sources))
            {
                expected[target] = sources = [];
            }

            sources.Add(source);
        }

        foreach (var service in PlatformTopology.Services)
        {
            service.ServiceReferences.ToList().ForEach(reference => Allow(reference, service.Name));
            if (service.Databases.Count > 0)
            {
                Allow(PlatformResources.Postgres, service.Name);
            }

            if (service.UsesRedis)
            {
                Allow(PlatformResources.Redis, service.Name);
            }
        }

        // vLLM exists only with a GPU; the gateway is its one client.
        Allow(PlatformResources.Vllm, PlatformResources.Gateway);
        Assert.Equal(expected.Keys.Order(), allowed.Keys.Order());
        foreach (var (target, sources) in expected)
        {
            Assert.True(sources.SetEquals(allowed[target]), $"{target}: policy allows {string.Join(", ", allowed[target])}, the topology needs {string.Join(", ", sources)}");
        }
    }

    [Fact]
    public void Everything_else_is_denied_and_only_the_gateway_is_open()
    {
        Assert.Contains("name: goblinaspire-default-deny-ingress", Policies, StringComparison.Ordinal);
        var open = Policies.Split("\n---\n").Where(d => d.Contains("    - {}", StringComparison.Ordinal)).ToList();
        Assert.Equal(PlatformResources.Gateway, Component().Match(Assert.Single(open)).Groups[1].Value);
    }

    [GeneratedRegex(@"app\.kubernetes\.io/component: ([a-z0-9-]+)")]
    private static partial Regex Component();
}
