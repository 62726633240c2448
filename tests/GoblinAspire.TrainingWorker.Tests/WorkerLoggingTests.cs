using GoblinAspire.Testing;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.TrainingWorker.Tests;

/// <summary>What a worker says at its defaults: its events, not a line per poll, heartbeat or request.</summary>
[Collection(PlatformServers.Collection)]
public sealed class WorkerLoggingTests(PlatformServers servers) : IAsyncLifetime
{
    private TrainingPlatform _platform = null!;

    public async Task InitializeAsync() => _platform = await TrainingPlatform.StartAsync(servers);

    public async Task DisposeAsync() => await _platform.DisposeAsync();

    [Fact]
    public async Task At_information_level_a_polling_worker_logs_no_sql_and_nothing_per_poll_or_call()
    {
        var capture = new CapturingLoggerProvider();
        // Information everywhere, as an operator who wants to see the worker's events sets it; only the worker's own
        // defaults may quiet the chatty libraries.
        var settings = _platform.WorkerSettings(new Dictionary<string, string?>
        {
            ["Logging__LogLevel__Default"] = "Information",
            ["TrainingWorker__PollInterval"] = "00:00:00.050",
            ["TrainingWorker__HeartbeatInterval"] = "00:00:00.100",
        });
        await using var worker = await TestWebHost.StartAsync(TrainingWorkerApp.Build([], builder =>
        {
            TestWebHost.Configure(builder, settings);
            builder.Logging.AddProvider(capture);
        }));

        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await TrainingPlatform.SubmitAsync(worker.Client, new { name = $"quiet-{i}", command = new[] { "sh", "-c", "sleep 0.3" } })).GetProperty("id").GetString()!);
        }

        foreach (var id in ids)
        {
            await TrainingPlatform.WaitForStateAsync(worker.Client, id, TimeSpan.FromSeconds(60), "succeeded");
        }

        // Idle: the dispatcher polls every 50 ms and the rescuer every 500 ms; a second is many rounds of both.
        var idleFrom = capture.Entries.Count;
        await Task.Delay(TimeSpan.FromSeconds(1));
        var entries = capture.Entries;
        string[] perCall = ["Npgsql", "Microsoft.AspNetCore", "System.Net.Http.HttpClient"];
        var chatty = entries.Where(e => e.Level <= LogLevel.Information && perCall.Any(c => e.Category.StartsWith(c, StringComparison.Ordinal))).ToList();
        Assert.True(chatty.Count == 0, $"{chatty.Count} lines per command or request, e.g.:\n{string.Join("\n", chatty.Take(5))}");
        var idle = entries.Skip(idleFrom).Where(e => e.Level >= LogLevel.Information).ToList();
        Assert.True(idle.Count == 0, $"an idle worker logged:\n{string.Join("\n", idle.Take(5))}");
        // The worker's own events are still there.
        Assert.Contains(entries, e => e.Message.Contains($"Job {ids[0]} attempt 1 ended succeeded", StringComparison.Ordinal));
    }

    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        private readonly List<Entry> _entries = [];

        public IReadOnlyList<Entry> Entries
        {
            get
            {
                lock (_entries)
                {
                    return [.. _entries];
                }
            }
        }

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingLoggerProvider provider, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (provider._entries)
                {
                    provider._entries.Add(new Entry(category, logLevel, formatter(state, exception)));
                }
            }
        }
    }

    private sealed record Entry(string Category, LogLevel Level, string Message)
    {
        public override string ToString() => $"{Level} {Category}: {(Message.Length > 200 ? Message[..200] : Message)}";
    }
}
