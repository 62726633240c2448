using System.Text.RegularExpressions;
using GoblinAspire.Testing;

namespace GoblinAspire.Gateway.Tests.Stages;

/// <summary>
/// The gateway's folders form layers: no folder depends on another that depends back on it, and nothing below the
/// API reaches up into it. Read from the sources, where every cross-folder use needs a using directive or a
/// qualified name (the root folder holds only the options every layer reads, and the entry point).
/// </summary>
public sealed partial class FolderDependencyTests
{
    [Fact]
    public void No_folder_of_the_gateway_depends_on_itself_through_another()
    {
        var graph = Graph();
        var cycles = new List<string>();
        foreach (var start in graph.Keys)
        {
            var path = FindPath(graph, start, start, []);
            if (path is not null)
            {
                cycles.Add(string.Join(" → ", path));
            }
        }

        Assert.True(cycles.Count == 0, "Folder cycles:\n" + string.Join("\n", cycles));
    }

    [Fact]
    public void Only_hosting_reaches_the_api_and_the_stages_are_reached_only_from_above()
    {
        var graph = Graph();
        Assert.Equal(["Hosting"], graph.Where(g => g.Value.Contains("Api")).Select(g => g.Key).Order(StringComparer.Ordinal));
        Assert.Equal(["Api", "Hosting"], graph.Where(g => g.Value.Contains("Stages")).Select(g => g.Key).Order(StringComparer.Ordinal));
        Assert.DoesNotContain("Stages", graph["Protocols"]);
        Assert.DoesNotContain("Routing", graph["Protocols"]);
        Assert.Empty(graph["Telemetry"]);
    }

    [Fact]
    public void The_root_holds_only_options_and_the_entry_point()
    {
        var root = Path.Combine(ServiceProcess.RepositoryRoot(), "src", "GoblinAspire.Gateway");
        Assert.Equal(["GatewayOptions.cs", "Program.cs"], Directory.GetFiles(root, "*.cs").Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.DoesNotMatch(Reference(), File.ReadAllText(Path.Combine(root, "GatewayOptions.cs")));
    }

    private static Dictionary<string, HashSet<string>> Graph()
    {
        var root = Path.Combine(ServiceProcess.RepositoryRoot(), "src", "GoblinAspire.Gateway");
        var graph = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var folder in Directory.GetDirectories(root).Select(Path.GetFileName).Where(f => f is not ("bin" or "obj" or "Migrations")))
        {
            var uses = new HashSet<string>(StringComparer.Ordinal);
            foreach (var file in Directory.GetFiles(Path.Combine(root, folder!), "*.cs", SearchOption.AllDirectories))
            {
                foreach (Match match in Reference().Matches(File.ReadAllText(file)))
                {
                    uses.Add(match.Groups[1].Value);
                }
            }

            uses.Remove(folder!);
            graph[folder!] = uses;
        }

        Assert.Contains("Stages", graph.Keys);
        return graph;
    }

    /// <summary>A path from <paramref name="current"/> back to <paramref name="start"/>, or null if there is none.</summary>
    private static List<string>? FindPath(Dictionary<string, HashSet<string>> graph, string current, string start, List<string> path)
    {
        path = [.. path, current];
        foreach (var next in graph.GetValueOrDefault(current) ?? [])
        {
            if (next == start)
            {
                return [.. path, start];
            }

            if (!path.Contains(next) && FindPath(graph, next, start, path) is { } found)
            {
                return found;
            }
        }

        return null;
    }

    [GeneratedRegex(@"\bGoblinAspire\.Gateway\.([A-Z][A-Za-z]+)\b")]
    private static partial Regex Reference();
}
