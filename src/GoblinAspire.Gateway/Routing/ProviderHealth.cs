using Polly.CircuitBreaker;

namespace GoblinAspire.Gateway.Routing;

/// <summary>
/// What the gateway has observed of one provider: smoothed latency and time to first token, circuit state,
/// Retry-After cool-down, the last probe result and the last error. Written from many requests at once; each field
/// is a single atomic value, and a slightly stale read only shifts a routing choice.
/// </summary>
public sealed class ProviderHealth(string name, double smoothing, TimeProvider time)
{
    private long _latencyBits = BitConverter.DoubleToInt64Bits(double.NaN);
    private long _firstTokenBits = BitConverter.DoubleToInt64Bits(double.NaN);
    private long _cooldownUntilTicks;
    private volatile string? _lastError;
    private volatile bool _probeFailing;
    private int _circuitState = (int)CircuitState.Closed;

    public string Name { get; } = name;

    /// <summary>Smoothed latency in milliseconds; NaN until first observed.</summary>
    public double LatencyMs => BitConverter.Int64BitsToDouble(Interlocked.Read(ref _latencyBits));

    public double FirstTokenMs => BitConverter.Int64BitsToDouble(Interlocked.Read(ref _firstTokenBits));

    public CircuitState Circuit => (CircuitState)Volatile.Read(ref _circuitState);

    public string? LastError => _lastError;

    public bool ProbeFailing => _probeFailing;

    public bool IsCoolingDown => time.GetUtcNow().UtcTicks < Interlocked.Read(ref _cooldownUntilTicks);

    public TimeSpan CooldownRemaining => TimeSpan.FromTicks(Math.Max(0, Interlocked.Read(ref _cooldownUntilTicks) - time.GetUtcNow().UtcTicks));

    /// <summary>Whether routing should prefer other providers: open circuit, cooling down, or failing probes.</summary>
    public bool IsAvoided => Circuit == CircuitState.Open || IsCoolingDown || _probeFailing;

    public string Status => Circuit switch
    {
        CircuitState.Open or CircuitState.Isolated => "circuit_open",
        CircuitState.HalfOpen => "half_open",
        _ when IsCoolingDown => "rate_limited",
        _ when _probeFailing => "unhealthy",
        _ => "healthy",
    };

    public void ObserveLatency(TimeSpan latency) => Smooth(ref _latencyBits, latency.TotalMilliseconds);

    public void ObserveFirstToken(TimeSpan firstToken) => Smooth(ref _firstTokenBits, firstToken.TotalMilliseconds);

    public void ObserveProbe(bool healthy, TimeSpan latency, string? error)
    {
        _probeFailing = !healthy;
        if (healthy)
        {
            ObserveLatency(latency);
        }
        else
        {
            _lastError = error;
        }
    }

    public void RecordError(string error) => _lastError = error;

    public void CoolDown(TimeSpan delay)
    {
        var until = (time.GetUtcNow() + delay).UtcTicks;
        long current;
        do
        {
            current = Interlocked.Read(ref _cooldownUntilTicks);
            if (current >= until)
            {
                return;
            }
        }
        while (Interlocked.CompareExchange(ref _cooldownUntilTicks, until, current) != current);
    }

    public void SetCircuit(CircuitState state) => Volatile.Write(ref _circuitState, (int)state);

    private void Smooth(ref long bits, double observation)
    {
        long current;
        long next;
        do
        {
            current = Interlocked.Read(ref bits);
            var previous = BitConverter.Int64BitsToDouble(current);
            var value = double.IsNaN(previous) ? observation : (smoothing * observation) + ((1 - smoothing) * previous);
            next = BitConverter.DoubleToInt64Bits(value);
        }
        while (Interlocked.CompareExchange(ref bits, next, current) != current);
    }
}
