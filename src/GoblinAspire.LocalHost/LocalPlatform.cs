using System.Collections.Concurrent;
using GoblinAspire.ServiceDefaults;

namespace GoblinAspire.LocalHost;

/// <summary>What the local host runs and where its data lives.</summary>
public sealed class LocalPlatformOptions
{
    /// <summary>The PostgreSQL cluster, Redis's append-only file, secrets and the services' working folders.</summary>
    public string DataDirectory { get; set; } = DefaultDataDirectory();

    /// <summary>Wipe <see cref="DataDirectory"/> first.</summary>
    public bool Fresh { get; set; }

    /// <summary>Consecutive ports from here (gateway replicas first); null: free ports the OS picks.</summary>
    public int? PortBase { get; set; }

    /// <summary>A GGUF file to register and promote as the chat model; null: the demo model when none is in production.</summary>
    public string? ModelPath { get; set; }

    /// <summary>PostgreSQL with fsync and Redis with an append-only file; off for tests, which need speed, not durability.</summary>
    public bool Durable { get; set; } = true;

    /// <summary>Gateway processes; the topology's count (the AppHost's replicas) when null.</summary>
    public int? GatewayReplicas { get; set; }

    public TelemetryExport? Telemetry { get; set; }

    /// <summary>Extra settings per service (environment-variable form), on top of the AppHost's wiring.</summary>
    public Dictionary<string, Dictionary<string, string>> ServiceSettings { get; } = new(StringComparer.Ordinal);

    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromMinutes(2);

    public TimeSpan StopGracePeriod { get; set; } = TimeSpan.FromSeconds(15);

    public Action<OutputLine>? Output { get; set; }

    /// <summary><c>$XDG_DATA_HOME/goblinaspire</c>; as root, <c>/var/lib/goblinaspire</c>, which the postgres user can reach.</summary>
    public static string DefaultDataDirectory()
    {
        if (ChildProcess.IsRoot)
        {
            return "/var/lib/goblinaspire";
        }

        var dataHome = Environment.GetEnvironmentVariable("XDG_DATA_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        return Path.Combine(dataHome, "goblinaspire");
    }
}

/// <summary>A resource's address, as the host prints it.</summary>
public sealed record PlatformEndpoint(string Name, string Address);

/// <summary>
/// The AppHost's topology as local processes: Redis and PostgreSQL found on the machine, then the four services with
/// exactly the environment the AppHost gives them, each started once the services it references are healthy (the
/// AppHost's WaitFor order, derived from <see cref="PlatformTopology"/>). vLLM is not started: there is no GPU, and the
/// gateway answers through the ChatFallback. A child that dies is reported; stopping stops everything, dependants
/// first.
/// </summary>
public sealed class LocalPlatform : IAsyncDisposable
{
    /// <summary>Every child carries this variable (the data folder), so leftovers of a killed host can be found and stopped.</summary>
    public const string MarkerVariable = "GOBLIN_LOCALHOST_DATA";
    public const string HostSource = "host";

    /// <summary>What the AppHost keeps in volumes, kept here in the data folder.</summary>
    private static readonly (string Service, string Setting, string Folder)[] DataFolders =
    [
        (PlatformResources.ModelRegistry, "ModelRegistry__ArtifactRoot", "artifacts"),
        (PlatformResources.ChatFallback, "ChatFallback__CacheDirectory", "model-cache"),
        (PlatformResources.TrainingWorker, "TrainingWorker__WorkDirectory", "jobs"),
    ];

    private static readonly string[] QuietCategories = ["Microsoft.AspNetCore", "Npgsql", "System.Net.Http.HttpClient", "Microsoft.Extensions.Http", "Polly"];

    private readonly LocalPlatformOptions _options;
    private readonly Action<OutputLine> _output;
    private readonly Dictionary<string, int> _ports = new(StringComparer.Ordinal);
    private readonly List<string> _portOrder = [];
    // Written by the launches of one start wave at once, read by the exit watchers.
    private readonly ConcurrentDictionary<string, ServiceInstance?> _instances = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Service, Dictionary<string, string> Environment)> _launches = new(StringComparer.Ordinal);
    private readonly List<string> _failures = [];
    private readonly CancellationTokenSource _stopping = new();
    private Task? _postgresWatch;

    private LocalPlatform(LocalPlatformOptions options)
    {
        _options = options;
        _output = options.Output ?? (_ => { });
        DataDirectory = Path.GetFullPath(options.DataDirectory);
        Secrets = new SecretFolder(Path.Combine(DataDirectory, "secrets"));
        Replicas = options.GatewayReplicas ?? PlatformTopology.For(PlatformResources.Gateway).Replicas;
    }

    public string DataDirectory { get; }

    public SecretFolder Secrets { get; }

    public int Replicas { get; }

    public LocalRedis Redis { get; private set; } = null!;

    public LocalPostgres Postgres { get; private set; } = null!;

    /// <summary>The chat model's production version once provisioned.</summary>
    public string? ChatModelVersion { get; private set; }

    /// <summary>Children that ended without being asked to, as reported.</summary>
    public IReadOnlyList<string> Failures
    {
        get
        {
            lock (_failures)
            {
                return [.. _failures];
            }
        }
    }

    /// <summary>Instance names: <c>gateway-0</c>, <c>gateway-1</c>, then one per other service, by their resource names.</summary>
    public IEnumerable<string> InstanceNames => _launches.Keys;

    public IReadOnlyList<PlatformEndpoint> Endpoints =>
    [
        .. _portOrder.Where(_launches.ContainsKey).Select(name => new PlatformEndpoint(name, $"http://localhost:{_ports[name]}")),
        new PlatformEndpoint(LocalRedis.ResourceName, $"127.0.0.1:{Redis.Port} (password: {Secrets.PathOf("redis-password")})"),
        new PlatformEndpoint(LocalPostgres.ResourceName, $"127.0.0.1:{Postgres.Port} user {LocalPostgres.Superuser} (password: {Secrets.PathOf("postgres-password")}; log: {Postgres.LogFile})"),
    ];

    /// <summary>Starts everything and provisions the chat model; on failure, stops what it started and throws.</summary>
    public static async Task<LocalPlatform> StartAsync(LocalPlatformOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var platform = new LocalPlatform(options);
        try
        {
            await platform.StartCoreAsync(cancellationToken);
            return platform;
        }
        catch
        {
            await platform.DisposeAsync();
            throw;
        }
    }

    /// <summary>The running instance: <paramref name="service"/> by resource name, and which gateway replica.</summary>
    public ServiceInstance Service(string service, int replica = 0) =>
        _instances.GetValueOrDefault(InstanceName(service, replica)) ?? throw new InvalidOperationException($"{InstanceName(service, replica)} is not running.");

    public Uri BaseAddress(string service, int replica = 0) => new($"http://127.0.0.1:{_ports[InstanceName(service, replica)]}");

    /// <summary>Starts the instance again on its port with the same environment (after a crash or a stop), and waits for its health.</summary>
    public async Task RestartAsync(string service, int replica = 0, CancellationToken cancellationToken = default)
    {
        var name = InstanceName(service, replica);
        if (_instances.GetValueOrDefault(name) is { } running)
        {
            _instances[name] = null;
            await running.StopAsync(_options.StopGracePeriod);
            await running.DisposeAsync();
        }

        await LaunchAsync(name, cancellationToken);
    }

    /// <summary>Kills the instance (SIGKILL, the service alone) as a crash would; it is reported like any death.</summary>
    public async Task CrashAsync(string service, int replica = 0) => await Service(service, replica).Process.CrashAsync();

    public async Task StopAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync();
        Report("stopping");
        foreach (var wave in Enumerable.Reverse(StartWaves()))
        {
            await Task.WhenAll(_launches.Where(l => wave.Contains(l.Value.Service)).Select(async l =>
            {
                if (_instances.GetValueOrDefault(l.Key) is { } instance)
                {
                    _instances[l.Key] = null;
                    await instance.StopAsync(_options.StopGracePeriod);
                    await instance.DisposeAsync();
                }
            }));
        }

        if (Redis is not null)
        {
            await Redis.StopAsync();
        }

        if (Postgres is not null)
        {
            await Postgres.StopAsync();
        }

        if (_postgresWatch is not null)
        {
            await _postgresWatch;
        }

        Report("stopped");
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stopping.Dispose();
    }

    private static string InstanceName(string service, int replica) => service == PlatformResources.Gateway ? $"{service}-{replica}" : service;

    /// <summary>Services grouped by when they can start: a service comes after every service it references.</summary>
    private static List<HashSet<string>> StartWaves()
    {
        var waves = new List<HashSet<string>>();
        var placed = new HashSet<string>(StringComparer.Ordinal);
        while (placed.Count < PlatformTopology.Services.Count)
        {
            var wave = PlatformTopology.Services.Where(s => !placed.Contains(s.Name) && s.ServiceReferences.All(placed.Contains)).Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
            if (wave.Count == 0)
            {
                throw new InvalidOperationException("the platform topology has a reference cycle");
            }

            waves.Add(wave);
            placed.UnionWith(wave);
        }

        return waves;
    }

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        if (_options.Fresh && Directory.Exists(DataDirectory))
        {
            Report($"--fresh: wiping {DataDirectory}");
            await StopLeftoversAsync(cancellationToken);
            Directory.Delete(DataDirectory, recursive: true);
        }

        // Readable by others only as far as entering it: PostgreSQL may run as its own user; secrets are 0600 inside.
        Directory.CreateDirectory(DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        await StopLeftoversAsync(cancellationToken);
        AssignPorts();
        Report($"data: {DataDirectory}");

        Redis = new LocalRedis(Path.Combine(DataDirectory, "redis"), _ports[LocalRedis.ResourceName], Secrets.GetOrCreate("redis-password"), _options.Durable, Forward);
        Postgres = new LocalPostgres(Path.Combine(DataDirectory, "postgres"), _ports[LocalPostgres.ResourceName], Secrets.GetOrCreate("postgres-password"), _options.Durable);
        await Task.WhenAll(StartRedisAsync(cancellationToken), StartPostgresAsync(cancellationToken));

        var databases = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var database in PlatformTopology.Services.SelectMany(s => s.Databases).Distinct())
        {
            databases[database] = await Postgres.EnsureDatabaseAsync(database, cancellationToken);
        }

        foreach (var wiring in PlatformTopology.Services)
        {
            var replicas = wiring.Name == PlatformResources.Gateway ? Replicas : 1;
            for (var replica = 0; replica < replicas; replica++)
            {
                var name = InstanceName(wiring.Name, replica);
                var environment = AppHostEnvironment.For(
                    wiring,
                    name,
                    database => databases[database],
                    Redis.ConnectionString,
                    reference => new Uri($"http://localhost:{_ports[InstanceName(reference, 0)]}"),
                    // Optional secrets (cloud and rented-GPU keys, the encryption key) are the operator's to put there.
                    secret => secret.Optional ? Secrets.Find(secret.Parameter) : Secrets.GetOrCreate(secret.Parameter),
                    _options.Telemetry);
                environment[MarkerVariable] = DataDirectory;
                foreach (var (service, setting, folder) in DataFolders.Where(d => d.Service == wiring.Name))
                {
                    environment[setting] = Path.Combine(DataDirectory, folder);
                }

                // Loopback only, as the AppHost binds projects in development: nothing here has a reason to face the network.
                environment["ASPNETCORE_URLS"] = $"http://localhost:{_ports[name]}";
                // One line per log entry, so every line carries its service's prefix; the framework's chatter off.
                environment["Logging__Console__FormatterName"] = "simple";
                environment["Logging__Console__FormatterOptions__SingleLine"] = "true";
                foreach (var category in QuietCategories)
                {
                    environment[$"Logging__LogLevel__{category}"] = "Warning";
                }
                if (_options.ServiceSettings.TryGetValue(wiring.Name, out var settings))
                {
                    foreach (var (key, value) in settings)
                    {
                        environment[key] = value;
                    }
                }

                _launches[name] = (wiring.Name, environment);
            }
        }

        foreach (var wave in StartWaves())
        {
            await Task.WhenAll(_launches.Where(l => wave.Contains(l.Value.Service)).Select(l => LaunchAsync(l.Key, cancellationToken)));
            if (wave.Contains(PlatformResources.ModelRegistry))
            {
                // Before the ChatFallback starts, so its first look at the registry finds the model.
                using var registry = new HttpClient { BaseAddress = BaseAddress(PlatformResources.ModelRegistry), Timeout = TimeSpan.FromMinutes(5) };
                ChatModelVersion = await new ChatModelProvisioner(registry, Report).EnsureAsync(_options.ModelPath, Path.Combine(DataDirectory, "demo"), cancellationToken);
            }
        }

        _postgresWatch = WatchPostgresAsync();
    }

    private async Task StartRedisAsync(CancellationToken cancellationToken)
    {
        await Redis.StartAsync(cancellationToken);
        Watch(Redis.Process!, () => Redis.Process);
    }

    private async Task StartPostgresAsync(CancellationToken cancellationToken)
    {
        await Postgres.StartAsync(cancellationToken);
        Report($"postgres ready on 127.0.0.1:{Postgres.Port} (log: {Postgres.LogFile})");
    }

    private async Task LaunchAsync(string name, CancellationToken cancellationToken)
    {
        var (service, environment) = _launches[name];
        // The service's own folder, as its appsettings.json is there; what it stores goes to DataFolders.
        var instance = ServiceInstance.Start(name, ServiceProjects.AssemblyPath(ServiceProjects.ProjectOf(service)), _ports[name], environment, output: Forward);
        _instances[name] = instance;
        Watch(instance.Process, () => _instances.GetValueOrDefault(name)?.Process);
        await instance.WaitForHealthyAsync(_options.StartTimeout, cancellationToken);
        Report($"{name} healthy at http://localhost:{_ports[name]}");
    }

    /// <summary>Reports a child's death unless the host asked for it (a stop or a restart replaced it).</summary>
    private void Watch(ManagedProcess process, Func<ManagedProcess?> current) =>
        _ = process.Exited.ContinueWith(
            exited =>
            {
                if (!_stopping.IsCancellationRequested && ReferenceEquals(current(), process))
                {
                    var message = $"{process.Name} exited unexpectedly with code {exited.Result}";
                    lock (_failures)
                    {
                        _failures.Add(message);
                    }

                    _output(new OutputLine(HostSource, message, OutputKind.Error));
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

    private async Task WatchPostgresAsync()
    {
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), _stopping.Token);
                if (Postgres.IsRunning && Postgres.ServerProcessId() is null && !_stopping.IsCancellationRequested)
                {
                    var message = $"postgres stopped unexpectedly (see {Postgres.LogFile})";
                    lock (_failures)
                    {
                        _failures.Add(message);
                    }

                    _output(new OutputLine(HostSource, message, OutputKind.Error));
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void AssignPorts()
    {
        var names = new List<string>();
        for (var replica = 0; replica < Replicas; replica++)
        {
            names.Add(InstanceName(PlatformResources.Gateway, replica));
        }

        names.AddRange(PlatformTopology.Services.Where(s => s.Name != PlatformResources.Gateway).Select(s => s.Name));
        names.Add(LocalRedis.ResourceName);
        names.Add(LocalPostgres.ResourceName);
        for (var i = 0; i < names.Count; i++)
        {
            var port = _options.PortBase is { } start ? start + i : FreePort.Next();
            if (_options.PortBase is not null && !FreePort.IsFree(port))
            {
                throw new InvalidOperationException($"port {port} (for {names[i]}) is in use; choose other ports with --port-base");
            }

            _ports[names[i]] = port;
            _portOrder.Add(names[i]);
        }
    }

    private async Task StopLeftoversAsync(CancellationToken cancellationToken)
    {
        foreach (var leftover in await StopLeftoversAsync(DataDirectory, cancellationToken))
        {
            Report($"stopped {leftover}, left running by an earlier host on this data folder");
        }
    }

    /// <summary>
    /// Stops what a killed host left running on <paramref name="dataDirectory"/>: children marked with it, and its
    /// PostgreSQL server. Returns what it stopped.
    /// </summary>
    public static async Task<IReadOnlyList<string>> StopLeftoversAsync(string dataDirectory, CancellationToken cancellationToken = default)
    {
        var stopped = new List<string>();
        foreach (var pid in MarkedProcesses(dataDirectory))
        {
            try
            {
                using var leftover = System.Diagnostics.Process.GetProcessById(pid);
                leftover.Kill(entireProcessTree: true);
                await leftover.WaitForExitAsync(cancellationToken);
                stopped.Add($"process {pid}");
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
            }
        }

        var postgres = new LocalPostgres(Path.Combine(dataDirectory, "postgres"), 0, "", durable: true);
        if (postgres.ServerProcessId() is not null)
        {
            await postgres.StopLeftoverAsync(cancellationToken);
            stopped.Add("its PostgreSQL server");
        }

        return stopped;
    }

    /// <summary>Processes whose environment carries <see cref="MarkerVariable"/> = <paramref name="dataDirectory"/>.</summary>
    public static IReadOnlyList<int> MarkedProcesses(string dataDirectory)
    {
        var marker = $"{MarkerVariable}={dataDirectory}\0";
        var found = new List<int>();
        foreach (var entry in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var environ = File.ReadAllText(Path.Combine(entry, "environ"));
                if (environ.StartsWith(marker, StringComparison.Ordinal) || environ.Contains("\0" + marker, StringComparison.Ordinal))
                {
                    found.Add(pid);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }

        return found;
    }

    private void Forward(OutputLine line) => _output(line);

    private void Report(string message) => _output(new OutputLine(HostSource, message, OutputKind.Host));
}
