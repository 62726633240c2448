using System.Collections.Concurrent;
using System.Diagnostics;
using StackExchange.Redis;
using StackExchange.Redis.Profiling;

namespace GoblinAspire.ServiceDefaults.Redis;

/// <summary>
/// Client spans for Redis commands. Written here because OpenTelemetry.Instrumentation.StackExchangeRedis is not
/// on this feed. StackExchange.Redis reports commands through profiling sessions; one session is kept per
/// ambient activity and drained on a short timer into spans parented to that activity, with the command's own
/// start time and duration. Only the command name is recorded, never keys or values.
/// </summary>
public sealed class RedisCommandTracing : IDisposable
{
    public const string ActivitySourceName = "GoblinAspire.Redis";

    private static readonly ActivitySource Source = new(ActivitySourceName);

    private readonly ConcurrentDictionary<Activity, ProfilingSession> _sessions = new(ReferenceEqualityComparer.Instance);
    private readonly ITimer _drainTimer;

    public RedisCommandTracing(IConnectionMultiplexer multiplexer, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        ArgumentNullException.ThrowIfNull(timeProvider);
        multiplexer.RegisterProfiler(SessionForCurrentActivity);
        _drainTimer = timeProvider.CreateTimer(_ => Drain(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>Turns every command recorded so far into spans; sessions of stopped activities are released.</summary>
    public void Drain()
    {
        foreach (var (activity, session) in _sessions)
        {
            if (activity.IsStopped)
            {
                _sessions.TryRemove(activity, out _);
            }

            foreach (var command in session.FinishProfiling())
            {
                Emit(activity, command);
            }
        }
    }

    public void Dispose()
    {
        _drainTimer.Dispose();
        Drain();
    }

    private ProfilingSession? SessionForCurrentActivity()
    {
        var activity = Activity.Current;
        if (activity is null || !Source.HasListeners())
        {
            return null;
        }

        return _sessions.GetOrAdd(activity, static _ => new ProfilingSession());
    }

    private static void Emit(Activity parent, IProfiledCommand command)
    {
        var start = new DateTimeOffset(DateTime.SpecifyKind(command.CommandCreated, DateTimeKind.Utc));
        using var span = Source.StartActivity(
            command.Command,
            ActivityKind.Client,
            parent.Context,
            startTime: start);
        if (span is null)
        {
            return;
        }

        span.SetTag("db.system.name", "redis");
        span.SetTag("db.operation.name", command.Command);
        span.SetTag("db.namespace", command.Db.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (command.EndPoint is System.Net.IPEndPoint ip)
        {
            span.SetTag("server.address", ip.Address.ToString());
            span.SetTag("server.port", ip.Port);
        }
        else if (command.EndPoint is System.Net.DnsEndPoint dns)
        {
            span.SetTag("server.address", dns.Host);
            span.SetTag("server.port", dns.Port);
        }

        span.SetEndTime((start + command.ElapsedTime).UtcDateTime);
    }
}
