using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.LocalHost;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.SystemTests.Platform;
using GoblinAspire.Testing;

namespace GoblinAspire.SystemTests;

/// <summary>The local host's console as a user runs it: one command, its endpoints printed, deaths reported, Ctrl-C stopping everything.</summary>
[Collection(WholePlatformCollection.Name)]
public sealed partial class LocalHostConsoleTests : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(3);
    private readonly string _data = Path.Combine(WholePlatform.Traversable(Directory.CreateTempSubdirectory("goblin-console-").FullName), "data");

    [Fact]
    public async Task Bad_options_get_one_line_and_the_usage_with_exit_code_2()
    {
        await using var host = Console("--port-base", "seventy");
        Assert.Equal(2, await host.Process.Exited.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(host.Lines, l => l.Contains("--port-base takes a number", StringComparison.Ordinal));
        Assert.Contains(host.Lines, l => l.Contains("usage: goblin-local", StringComparison.Ordinal));
    }

    [Fact]
    public async Task One_command_runs_the_platform_reports_a_dead_child_stops_on_ctrl_c_and_keeps_its_data()
    {
        await using (var host = Console("--data", _data, "--port-base", "0", "--gateway-replicas", "1"))
        {
            await host.WaitForLineAsync("[host]           ready: ", StartTimeout);
            var gateway = host.Endpoint("gateway-0");
            using (var client = new HttpClient { BaseAddress = gateway })
            {
                using var answer = await client.PostAsync("/v1/chat/completions", WholePlatform.Json("""{"model":"goblin-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":3}"""));
                Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
                Assert.Equal("chatfallback", answer.Headers.GetValues("x-goblin-provider").Single());
            }

            Assert.Contains(host.Lines, l => l.Contains(ChatModelProvisioner.DemoModelName, StringComparison.Ordinal));
            Assert.All(host.Lines, l => Assert.DoesNotContain(File.ReadAllText(Path.Combine(_data, "secrets", "postgres-password")), l, StringComparison.Ordinal));

            // A child that dies is reported, not hidden, and the rest keeps running.
            var chatFallback = LocalPlatform.MarkedProcesses(_data).Single(pid => File.ReadAllText($"/proc/{pid}/cmdline").Contains("GoblinAspire.ChatFallback.dll", StringComparison.Ordinal));
            using (var victim = System.Diagnostics.Process.GetProcessById(chatFallback))
            {
                victim.Kill();
            }

            await host.WaitForLineAsync("[host]           chatfallback exited unexpectedly with code 137", TimeSpan.FromSeconds(30));

            host.Process.Signal(2);
            Assert.Equal(0, await host.Process.Exited.WaitAsync(TimeSpan.FromSeconds(90)));
            Assert.Contains(host.Lines, l => l.EndsWith("stopped", StringComparison.Ordinal));
            Assert.Empty(LocalPlatform.MarkedProcesses(_data));
        }

        // Again on the same data: the registry still has the demo model (no second registration), and --fresh --model
        // wipes it and serves the given file instead.
        var model = Path.Combine(Path.GetDirectoryName(_data)!, "my-model.gguf");
        SyntheticLlama.Writer(GgmlType.Q8_0, seed: 99, name: "my-model").Write(model);
        await using (var host = Console("--data", _data, "--port-base", "0", "--gateway-replicas", "1", "--fresh", "--model", model))
        {
            await host.WaitForLineAsync("[host]           ready: ", StartTimeout);
            Assert.Contains(host.Lines, l => l.Contains("--fresh: wiping", StringComparison.Ordinal));
            using var registry = new HttpClient { BaseAddress = host.Endpoint(PlatformResources.ModelRegistry) };
            var production = await registry.GetFromJsonAsync<JsonElement>($"/api/v1/models/{PlatformResources.ChatModel}/production");
            Assert.Equal("1", production.GetProperty("model_version").GetProperty("version").GetString());
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(model))), production.GetProperty("sha256").GetString());
            Assert.False(File.Exists(Path.Combine(_data, "demo", ChatModelProvisioner.DemoModelName + ".gguf")));

            host.Process.Signal(ManagedProcess.SigTerm);
            Assert.Equal(0, await host.Process.Exited.WaitAsync(TimeSpan.FromSeconds(90)));
            Assert.Empty(LocalPlatform.MarkedProcesses(_data));
        }
    }

    public void Dispose()
    {
        LocalPlatform.StopLeftoversAsync(_data).GetAwaiter().GetResult();
        try
        {
            Directory.Delete(Path.GetDirectoryName(_data)!, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static ConsoleRun Console(params string[] arguments)
    {
        var lines = new ConcurrentQueue<string>();
        var host = ServiceProjects.AssemblyPath("GoblinAspire.LocalHost");
        var process = ManagedProcess.Start(
            new ProcessLaunch("goblin-local", "dotnet", [host, .. arguments], Path.GetDirectoryName(host)!, new Dictionary<string, string?> { ["NO_COLOR"] = "1" }),
            line => lines.Enqueue(line.Text));
        return new ConsoleRun(process, lines);
    }

    private sealed partial class ConsoleRun(ManagedProcess process, ConcurrentQueue<string> lines) : IAsyncDisposable
    {
        public ManagedProcess Process { get; } = process;

        public IReadOnlyList<string> Lines => [.. lines];

        public async Task WaitForLineAsync(string start, TimeSpan timeout)
        {
            await Eventually.HoldsAsync(() =>
            {
                if (Process.HasExited && !Lines.Any(l => l.StartsWith(start, StringComparison.Ordinal)))
                {
                    throw new InvalidOperationException($"the host exited with {Process.ExitCode}:\n{string.Join('\n', Lines.TakeLast(60))}");
                }

                return Task.FromResult(Lines.Any(l => l.StartsWith(start, StringComparison.Ordinal)));
            }, timeout, $"a line starting '{start}'");
        }

        /// <summary>An address from the endpoint table the host prints: <c>[host]  gateway-0   http://localhost:N</c>.</summary>
        public Uri Endpoint(string name) =>
            Lines.Select(l => EndpointLine().Match(l)).Where(m => m.Success && m.Groups["name"].Value == name).Select(m => new Uri(m.Groups["url"].Value.Replace("localhost", "127.0.0.1", StringComparison.Ordinal))).Single();

        public async ValueTask DisposeAsync()
        {
            // A failed test still stops the host, which stops its children.
            if (!Process.HasExited)
            {
                Process.Signal(ManagedProcess.SigTerm);
                await Task.WhenAny(Process.Exited, Task.Delay(TimeSpan.FromSeconds(60)));
            }

            await Process.DisposeAsync();
        }

        [GeneratedRegex(@"^\[host\]\s+(?<name>[a-z0-9-]+)\s+(?<url>http://localhost:\d+)$")]
        private static partial Regex EndpointLine();
    }
}
