using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GoblinAspire.LocalHost;
using GoblinAspire.ServiceDefaults;

namespace GoblinAspire.SystemTests.Platform;

/// <summary>The whole-platform classes run one after another: each starts every service, and a 2-core machine runs one such platform well.</summary>
[CollectionDefinition(Name)]
public sealed class WholePlatformCollection
{
    public const string Name = "whole platform";
}

/// <summary>
/// The whole platform, started once per test class through the local host's own library: Redis, PostgreSQL and the
/// four services as processes, wired as the AppHost wires them. Disposing stops every process it started, also when
/// the start failed, and checks that none is left.
/// </summary>
public abstract class WholePlatform : IAsyncLifetime
{
    private readonly ConcurrentQueue<string> _output = new();
    private readonly string _dataDirectory = Traversable(Directory.CreateTempSubdirectory("goblin-platform-").FullName);

    public LocalPlatform Platform { get; private set; } = null!;

    /// <summary>Everything the platform printed, for failure messages.</summary>
    public string Output => string.Join('\n', _output);

    public string AdminKey => Platform.Secrets.GetOrCreate(PlatformSecrets.GatewayAdminKey.Parameter);

    public virtual async Task InitializeAsync()
    {
        var options = new LocalPlatformOptions
        {
            DataDirectory = _dataDirectory,
            Durable = false,
            StopGracePeriod = TimeSpan.FromSeconds(10),
            Output = line => _output.Enqueue($"[{line.Source}] {line.Text}"),
        };
        Configure(options);
        Platform = await LocalPlatform.StartAsync(options);
    }

    public virtual async Task DisposeAsync()
    {
        if (Platform is not null)
        {
            await Platform.DisposeAsync();
        }

        var unexpected = Platform?.Failures.Where(f => !ExpectedFailure(f)).ToList() ?? [];
        var left = LocalPlatform.MarkedProcesses(Path.GetFullPath(_dataDirectory));
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }

        Assert.True(left.Count == 0, $"processes left running: {string.Join(", ", left)}");
        Assert.True(unexpected.Count == 0, $"{string.Join("; ", unexpected)}\n{string.Join('\n', _output.TakeLast(200))}");
    }

    /// <summary>A death the tests caused on purpose, which the platform rightly reported.</summary>
    protected virtual bool ExpectedFailure(string failure) => false;

    public HttpClient Client(string service, int replica = 0) => new() { BaseAddress = Platform.BaseAddress(service, replica), Timeout = TimeSpan.FromSeconds(60) };

    protected virtual void Configure(LocalPlatformOptions options)
    {
    }

    protected static Dictionary<string, string> Settings(LocalPlatformOptions options, string service)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!options.ServiceSettings.TryGetValue(service, out var settings))
        {
            settings = new Dictionary<string, string>(StringComparer.Ordinal);
            options.ServiceSettings[service] = settings;
        }

        return settings;
    }

    /// <summary>A temporary folder others may enter (not list): PostgreSQL runs as its own user when the tests run as root.</summary>
    public static string Traversable(string directory)
    {
        File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherExecute);
        return directory;
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }
}
