namespace GoblinAspire.Testing;

/// <summary>
/// One platform service run as its own process (<c>dotnet GoblinAspire.X.dll</c>) with only the wiring it is given,
/// exactly as the AppHost or Kubernetes runs it, listening on <see cref="Port"/>.
/// </summary>
public sealed class ServiceInstance : IAsyncDisposable
{
    private ServiceInstance(ManagedProcess process, int port)
    {
        Process = process;
        Port = port;
        BaseAddress = new Uri($"http://127.0.0.1:{port}");
    }

    public ManagedProcess Process { get; }

    public string Name => Process.Name;

    public int Port { get; }

    public Uri BaseAddress { get; }

    public bool HasExited => Process.HasExited;

    public int ExitCode => Process.ExitCode;

    public IReadOnlyList<string> Output => Process.RecentOutput;

    public IEnumerable<string> StandardError => Output.Where(l => l.StartsWith("stderr: ", StringComparison.Ordinal)).Select(l => l["stderr: ".Length..]);

    /// <summary>
    /// Starts <paramref name="assemblyPath"/> on <paramref name="port"/>. The variables the platform wires (connection
    /// strings, service endpoints, telemetry, ports) are removed from the inherited environment first, so the service
    /// sees only <paramref name="environment"/>'s.
    /// </summary>
    public static ServiceInstance Start(string name, string assemblyPath, int port, IReadOnlyDictionary<string, string> environment, string? workingDirectory = null, Action<OutputLine>? output = null)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var variables = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var key in System.Environment.GetEnvironmentVariables().Keys.Cast<string>().Where(IsPlatformWiring))
        {
            variables[key] = null;
        }

        variables["ASPNETCORE_URLS"] = null;
        variables["HTTP_PORTS"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var (key, value) in environment)
        {
            variables[key] = value;
        }

        var directory = workingDirectory ?? Path.GetDirectoryName(assemblyPath)!;
        Directory.CreateDirectory(directory);
        var process = ManagedProcess.Start(new ProcessLaunch(name, "dotnet", [assemblyPath], directory, variables), output);
        return new ServiceInstance(process, port);
    }

    /// <summary>Waits for <c>/health</c> to answer 200; fails at once, with the output, if the process ends first.</summary>
    public async Task WaitForHealthyAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(2) };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        while (true)
        {
            if (HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with code {ExitCode} while starting:\n{string.Join('\n', Output.TakeLast(40))}");
            }

            try
            {
                using var response = await client.GetAsync(new Uri("/health", UriKind.Relative), deadline.Token);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // A slow answer, or the deadline.
            }

            if (deadline.IsCancellationRequested)
            {
                cancellationToken.ThrowIfCancellationRequested();
                throw new TimeoutException($"{Name} did not become healthy on port {Port} within {timeout}:\n{string.Join('\n', Output.TakeLast(40))}");
            }

            await Task.Delay(100, CancellationToken.None);
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout) => await Process.Exited.WaitAsync(timeout);

    public Task StopAsync(TimeSpan grace) => Process.StopAsync(grace);

    /// <summary>SIGKILL to the service alone, as a crash or an OOM kill would.</summary>
    public void Crash() => Process.CrashAsync().GetAwaiter().GetResult();

    public ValueTask DisposeAsync() => Process.DisposeAsync();

    private static bool IsPlatformWiring(string key) =>
        key.StartsWith("ConnectionStrings__", StringComparison.OrdinalIgnoreCase)
        || key.StartsWith("services__", StringComparison.OrdinalIgnoreCase)
        || key.StartsWith("OTEL_", StringComparison.Ordinal)
        || key.StartsWith("ASPNETCORE_", StringComparison.Ordinal)
        || key.StartsWith("DOTNET_", StringComparison.Ordinal) && key != "DOTNET_ROOT";
}
