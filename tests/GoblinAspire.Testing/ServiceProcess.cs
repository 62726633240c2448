using System.Collections.Concurrent;
using System.Diagnostics;

namespace GoblinAspire.Testing;

/// <summary>
/// One platform service run as its own process (<c>dotnet GoblinAspire.X.dll</c>) with only the environment it is
/// given, exactly as the AppHost or Kubernetes runs it. Output is kept for assertions and failure messages.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private ServiceProcess(Process process, int port)
    {
        _process = process;
        Port = port;
        BaseAddress = new Uri($"http://127.0.0.1:{port}");
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) { _output.Enqueue(e.Data); } };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { _output.Enqueue("stderr: " + e.Data); } };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Port { get; }

    public Uri BaseAddress { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>SIGKILL to the service alone, as a crash or an OOM kill would: its children are left to fend for themselves.</summary>
    public void Crash()
    {
        _process.Kill(entireProcessTree: false);
        _process.WaitForExit();
    }

    public int ExitCode => _process.ExitCode;

    public IReadOnlyList<string> Output => [.. _output];

    public IEnumerable<string> StandardError => _output.Where(l => l.StartsWith("stderr: ", StringComparison.Ordinal)).Select(l => l["stderr: ".Length..]);

    /// <param name="project">The project name without the GoblinAspire prefix, e.g. "Gateway".</param>
    public static ServiceProcess Start(string project, IReadOnlyDictionary<string, string> environment, int? port = null)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var httpPort = port ?? FreePort.Next();
        var startInfo = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { ServiceAssemblyPath(project) },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(ServiceAssemblyPath(project))!,
        };
        // Start from a clean slate so nothing from the test runner's environment leaks into the service.
        foreach (var key in startInfo.Environment.Keys.Where(k => k.StartsWith("ASPNETCORE_", StringComparison.Ordinal) || k.StartsWith("DOTNET_", StringComparison.Ordinal) || k.StartsWith("OTEL_", StringComparison.Ordinal)).ToList())
        {
            startInfo.Environment.Remove(key);
        }

        startInfo.Environment["HTTP_PORTS"] = httpPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        startInfo.Environment["ASPNETCORE_URLS"] = null;
        foreach (var (key, value) in environment)
        {
            startInfo.Environment[key] = value;
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"could not start {project}");
        return new ServiceProcess(process, httpPort);
    }

    public async Task WaitForHealthyAsync(TimeSpan timeout)
    {
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(2) };
        await Eventually.HoldsAsync(async () =>
        {
            if (HasExited)
            {
                throw new InvalidOperationException($"service on port {Port} exited with {ExitCode}:\n{string.Join('\n', Output)}");
            }

            try
            {
                using var response = await client.GetAsync("/health");
                return response.IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
            catch (TaskCanceledException)
            {
                return false;
            }
        }, timeout, $"/health on port {Port}");
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        // The parameterless wait also drains the redirected output.
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    public static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "GoblinAspire.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("GoblinAspire.sln not found above the test assembly.");
    }

    private static string ServiceAssemblyPath(string project)
    {
        // Same configuration and framework as the test assembly: .../bin/{Configuration}/{tfm}/
        var testOutput = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var framework = testOutput.Name;
        var configuration = testOutput.Parent!.Name;
        var name = $"GoblinAspire.{project}";
        var path = Path.Combine(RepositoryRoot(), "src", name, "bin", configuration, framework, name + ".dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path} is not built; build the solution first.", path);
    }
}
