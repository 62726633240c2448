using System.ClientModel;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using GoblinAspire.AppHost.Tests.Platform;
using GoblinAspire.Testing;
using OpenAI;
using OpenAI.Chat;
using Xunit.Abstractions;

namespace GoblinAspire.AppHost.Tests;

/// <summary>
/// The AppHost as a developer runs it: <c>dotnet run --project src/GoblinAspire.AppHost</c> with its launch profile
/// and the dashboard, the printed base URL and key answering the official OpenAI SDK, Ctrl-C and a crash leaving no
/// process behind, and a missing server binary stopping the start with one line.
/// </summary>
[Collection(WholePlatformCollection.Name)]
public sealed partial class AppHostRunTests(ITestOutputHelper output)
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task The_run_command_prints_a_working_base_url_and_key_and_nothing_outlives_ctrl_c_or_a_crash()
    {
        var dataDirectory = TestParameters.DataDirectory();
        var parameters = TestParameters.All();
        try
        {
            // Cold: initdb, the demo model's registration, the development key.
            var cold = Stopwatch.StartNew();
            await using (var run = Run(dataDirectory, parameters))
            {
                // The banner's last line: its lines reach the test one at a time, so the first alone does not mean the key's is here.
                await run.WaitForLineAsync("Try: curl", StartTimeout);
                Assert.Contains(run.Lines, l => l.Trim() == "GoblinAspire is up.");
                output.WriteLine($"cold start to healthy: {cold.Elapsed.TotalSeconds:0.0} s");
                Assert.Contains(run.Lines, l => DashboardLine().IsMatch(l));
                var baseUrl = new Uri(run.Value("OpenAI base URL:"));
                var key = run.Value("API key:");
                var gatewayPort = global::Platform.GatewayPort;
                Assert.Equal($"http://localhost:{gatewayPort}/v1", baseUrl.AbsoluteUri.TrimEnd('/'));

                var client = new ChatClient("goblin-chat", new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = baseUrl });
                var result = await client.CompleteChatAsync([new UserChatMessage("hello")], new ChatCompletionOptions { MaxOutputTokenCount = 4 });
                Assert.Equal("chatfallback", result.GetRawResponse().Headers.TryGetValue("x-goblin-provider", out var provider) ? provider : null);
                Assert.NotEmpty(result.Value.Content);

                run.Process.SignalGroup(ManagedProcess.SigInt);
                Assert.True(await Task.WhenAny(run.Process.Exited, Task.Delay(TimeSpan.FromSeconds(90))) == run.Process.Exited, "the AppHost did not stop on Ctrl-C");
            }

            var left = await LeftoverServers.WaitForNoneAsync(dataDirectory, TimeSpan.FromSeconds(30), parameters["postgres-password"]);
            Assert.True(left.Count == 0, $"outlived Ctrl-C: {string.Join(", ", left)}");

            // Warm: the cluster, the model and the key are there; then the AppHost dies without any clean-up. The fixed
            // ports of the launch profile must be free again first.
            await Eventually.HoldsAsync(() => Task.FromResult(new[] { global::Platform.GatewayPort, 15300, 19300, 20300 }.All(FreePort.IsFree)), TimeSpan.FromSeconds(60), "the launch profile's ports free");
            var warm = Stopwatch.StartNew();
            await using (var run = Run(dataDirectory, parameters))
            {
                await run.WaitForLineAsync("Try: curl", StartTimeout);
                output.WriteLine($"warm start to healthy: {warm.Elapsed.TotalSeconds:0.0} s");
                Assert.Equal(run.Value("API key:"), Operations.GatewayOperations.DevelopmentKey(parameters["gateway-development-key"]));
                ProcessTree.Kill(ProcessTree.Descendants(run.Process.ProcessId).Single(pid => ProcessTree.Executable(pid)?.EndsWith("/GoblinAspire.AppHost", StringComparison.Ordinal) == true));
                await Task.WhenAny(run.Process.Exited, Task.Delay(TimeSpan.FromSeconds(30)));
            }

            left = await LeftoverServers.WaitForNoneAsync(dataDirectory, TimeSpan.FromSeconds(60), parameters["postgres-password"]);
            Assert.True(left.Count == 0, $"outlived a crash of the AppHost: {string.Join(", ", left)}");
        }
        finally
        {
            foreach (var leftover in LeftoverServers.Find(dataDirectory, parameters["postgres-password"]))
            {
                ProcessTree.Kill(int.Parse(leftover.Split(':')[0], System.Globalization.CultureInfo.InvariantCulture));
            }

            Directory.Delete(dataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task A_missing_server_binary_stops_the_start_with_one_line_naming_the_package()
    {
        var lines = new ConcurrentQueue<OutputLine>();
        await using var process = ManagedProcess.Start(
            new ProcessLaunch("apphost", ServerBinaries.FindOnPath("dotnet") ?? "/usr/bin/dotnet", [AppHostAssembly, "--DataStores:Mode=processes", $"--DataStores:DataDirectory={TestParameters.DataDirectory()}"], AppContext.BaseDirectory, new Dictionary<string, string?> { ["PATH"] = "/nonexistent" }),
            lines.Enqueue);
        Assert.True(await Task.WhenAny(process.Exited, Task.Delay(TimeSpan.FromSeconds(60))) == process.Exited, "the AppHost did not stop");
        await Task.Delay(200);
        Assert.Equal(2, process.ExitCode);
        var errors = lines.Where(l => l.Kind == OutputKind.Error && l.Text.Length > 0).Select(l => l.Text).ToList();
        var line = Assert.Single(errors);
        Assert.Contains("apt-get install -y redis-server", line, StringComparison.Ordinal);
    }

    private static string AppHostAssembly => Path.Combine(ServiceProcess.RepositoryRoot(), "src", "GoblinAspire.AppHost", "bin", Configuration, "net10.0", "GoblinAspire.AppHost.dll");

    private static string Configuration => Path.GetFileName(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)))!;

    private static Console Run(string dataDirectory, IReadOnlyDictionary<string, string> parameters)
    {
        var lines = new ConcurrentQueue<string>();
        var process = ManagedProcess.Start(
            new ProcessLaunch(
                "apphost",
                "dotnet",
                ["run", "--project", Path.Combine(ServiceProcess.RepositoryRoot(), "src", "GoblinAspire.AppHost"), "--no-build", "-c", Configuration, "--", .. TestParameters.Arguments(dataDirectory, parameters)],
                ServiceProcess.RepositoryRoot(),
                // The dashboard's browser is not opened from a test, and every line comes without colour codes.
                new Dictionary<string, string?> { ["NO_COLOR"] = "1", ["DOTNET_LAUNCH_PROFILE"] = null, ["ASPIRE_DASHBOARD_LAUNCH_BROWSER"] = "false" }),
            line => lines.Enqueue(line.Text));
        return new Console(process, lines);
    }

    private sealed class Console(ManagedProcess process, ConcurrentQueue<string> lines) : IAsyncDisposable
    {
        public ManagedProcess Process { get; } = process;

        public IReadOnlyList<string> Lines => [.. lines];

        public string Value(string label) => Lines.Select(l => l.Trim()).Single(l => l.StartsWith(label, StringComparison.Ordinal))[label.Length..].Trim();

        public async Task WaitForLineAsync(string start, TimeSpan timeout) =>
            await Eventually.HoldsAsync(() =>
            {
                var found = Lines.Any(l => l.Trim().StartsWith(start, StringComparison.Ordinal));
                if (!found && Process.HasExited)
                {
                    throw new InvalidOperationException($"the AppHost exited with {Process.ExitCode}:\n{string.Join('\n', Lines.TakeLast(60))}");
                }

                return Task.FromResult(found);
            }, timeout, $"a line starting '{start}'");

        public async ValueTask DisposeAsync()
        {
            // A failed test still stops the AppHost, which stops everything it started.
            if (!Process.HasExited)
            {
                Process.SignalGroup(ManagedProcess.SigInt);
                await Task.WhenAny(Process.Exited, Task.Delay(TimeSpan.FromSeconds(60)));
            }

            await Process.DisposeAsync();
        }
    }

    [GeneratedRegex(@"Dashboard:\s+http://localhost:\d+/login\?t=[0-9a-f]+")]
    private static partial Regex DashboardLine();
}
