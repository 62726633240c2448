using System.Text.RegularExpressions;
using GoblinAspire.Testing;

namespace GoblinAspire.AppHost.Tests;

/// <summary>
/// The Prometheus rules and Grafana dashboards in deploy/observability: valid (<c>promtool check rules</c>), behaving
/// as their unit tests say (<c>promtool test rules</c>), and naming only metrics the services really export.
/// </summary>
public sealed partial class ObservabilityTests
{
    private static readonly string Folder = Path.Combine(ServiceProcess.RepositoryRoot(), "deploy", "observability", "prometheus");

    private static readonly HashSet<string> PromQlWords = new(StringComparer.Ordinal)
    {
        "sum", "min", "max", "avg", "count", "rate", "increase", "irate", "histogram_quantile", "and", "or", "unless",
        "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "abs", "clamp_min",
    };

    [Fact]
    public async Task Promtool_checks_the_rules_and_the_configuration_and_their_unit_tests_pass()
    {
        var check = await ChildProcess.RunAsync("promtool", ["check", "rules", "alerts.yml"], TimeSpan.FromMinutes(1), workingDirectory: Folder);
        Assert.Contains("SUCCESS", check, StringComparison.Ordinal);
        await ChildProcess.RunAsync("promtool", ["check", "config", "prometheus.yml"], TimeSpan.FromMinutes(1), workingDirectory: Folder);
        var tests = await ChildProcess.RunAsync("promtool", ["test", "rules", "alerts.test.yml"], TimeSpan.FromMinutes(2), workingDirectory: Folder);
        Assert.Contains("SUCCESS", tests, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_metric_an_alert_or_a_dashboard_names_is_exported_by_a_service()
    {
        var exported = DeclaredInstruments();
        // ASP.NET Core's, Kestrel's and the runtime's metrics, and health_check_status, as a real service process serves them.
        await using (var service = ServiceProcess.Start("ChatFallback", new Dictionary<string, string>()))
        {
            await service.WaitForHealthyAsync(TimeSpan.FromSeconds(60));
            using var client = new HttpClient { BaseAddress = service.BaseAddress };
            await client.GetAsync("/v1/models");
            await Eventually.HoldsAsync(async () => (await client.GetStringAsync("/metrics")).Contains("health_check_status", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "the health gauge");
            foreach (Match family in TypeLine().Matches(await client.GetStringAsync("/metrics")))
            {
                exported.Add(family.Groups[1].Value);
            }
        }

        var rules = File.ReadAllText(Path.Combine(Folder, "alerts.yml"));
        var sources = new Dictionary<string, IEnumerable<string>> { ["alerts.yml"] = Expression().Matches(rules).Select(m => m.Groups[1].Value) };
        foreach (var dashboard in Directory.EnumerateFiles(Path.Combine(Folder, "..", "grafana", "dashboards"), "*.json"))
        {
            using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(dashboard));
            var panels = json.RootElement.GetProperty("panels").EnumerateArray().ToList();
            Assert.NotEmpty(panels);
            sources[Path.GetFileName(dashboard)] = panels.SelectMany(p => p.GetProperty("targets").EnumerateArray()).Select(t => t.GetProperty("expr").GetString()!).ToList();
        }

        Assert.Equal(7, sources.Count);
        foreach (var (source, expressions) in sources)
        {
            var named = Metrics(expressions);
            Assert.NotEmpty(named);
            foreach (var metric in named)
            {
                var family = HistogramSuffix().Replace(metric, "");
                Assert.True(metric == "up" || exported.Contains(metric) || exported.Contains(family), $"{source} names {metric}, which no service exports");
            }
        }
    }

    /// <summary>Metric names in PromQL expressions: label matchers, groupings, ranges, numbers and PromQL's own words removed.</summary>
    private static HashSet<string> Metrics(IEnumerable<string> expressions)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var expression in expressions)
        {
            var text = expression;
            text = Regex.Replace(text, @"\{[^}]*\}", " ");
            text = Regex.Replace(text, @"\[[^\]]*\]", " ");
            text = Regex.Replace(text, @"\b(by|on|without|ignoring)\s*\([^)]*\)", " ");
            text = Regex.Replace(text, @"\boffset\s+\w+", " ");
            text = Regex.Replace(text, @"\b\d+(\.\d+)?(e[+-]?\d+)?\b", " ");
            foreach (Match token in Regex.Matches(text, "[a-z_][a-z0-9_]*"))
            {
                if (!PromQlWords.Contains(token.Value))
                {
                    names.Add(token.Value);
                }
            }
        }

        return names;
    }

    /// <summary>The instruments the services create: <c>Create…("name"</c> in src/.</summary>
    private static HashSet<string> DeclaredInstruments()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(ServiceProcess.RepositoryRoot(), "src"), "*.cs", SearchOption.AllDirectories))
        {
            foreach (Match match in Instrument().Matches(File.ReadAllText(file)))
            {
                names.Add(match.Groups[1].Value);
            }
        }

        return names;
    }

    /// <summary>An <c>expr:</c> on one line, or a <c>|</c> block of lines indented deeper than the rule's keys.</summary>
    [GeneratedRegex(@"expr:\s*\|?\s*((?:.*\n)(?:[ ]{10,}.*\n)*)")]
    private static partial Regex Expression();

    [GeneratedRegex(@"^# TYPE ([a-z_][a-z0-9_]*) ", RegexOptions.Multiline)]
    private static partial Regex TypeLine();

    [GeneratedRegex(@"\.Create(?:Observable)?(?:Counter|Histogram|Gauge|UpDownCounter)(?:<[^>]+>)?\(\s*""([a-z_][a-z0-9_]*)""")]
    private static partial Regex Instrument();

    [GeneratedRegex("_(bucket|count|sum)$")]
    private static partial Regex HistogramSuffix();
}
