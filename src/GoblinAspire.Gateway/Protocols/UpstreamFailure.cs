namespace GoblinAspire.Gateway.Protocols;

/// <summary>Why an attempt at a provider failed; also the <c>reason</c> label of <c>provider_errors_total</c>.</summary>
public static class FailureReasons
{
    public const string Connect = "connect";
    public const string Timeout = "timeout";
    public const string FirstTokenTimeout = "first_token_timeout";
    public const string RateLimited = "rate_limited";
    public const string ServerError = "server_error";
    public const string Reset = "reset";
    public const string Protocol = "protocol";
    public const string CircuitOpen = "circuit_open";
    public const string StreamInterrupted = "stream_interrupted";
    public const string GatewayLimit = "gateway_limit";
}

/// <summary>
/// A failed attempt at a provider, as a value: what the forwarding loop decides on (next provider, error event) and
/// what the circuit breaker counts. The message never carries the upstream body: it may echo secrets.
/// </summary>
public sealed record UpstreamFailure(string Reason, string Message, int? StatusCode = null, TimeSpan? RetryAfter = null)
{
    /// <summary>Rate limiting is the provider working as designed: it cools the provider down, not its circuit.</summary>
    public bool CountsAgainstCircuit => Reason is not (FailureReasons.RateLimited or FailureReasons.GatewayLimit);
}

/// <summary>
/// Carries an <see cref="UpstreamFailure"/> out of a protocol's translation code, from wherever deep in a parser the
/// provider's answer turns out to be unusable, to <see cref="UpstreamExchange"/>, which hands it on as a value. It
/// never leaves the Protocols folder.
/// </summary>
internal sealed class UpstreamFault : Exception
{
    public UpstreamFault(string reason, string message, int? statusCode = null, TimeSpan? retryAfter = null, Exception? inner = null)
        : base(message, inner)
    {
        Failure = new UpstreamFailure(reason, message, statusCode, retryAfter);
    }

    public UpstreamFault()
        : this(FailureReasons.Protocol, "upstream failure")
    {
    }

    public UpstreamFault(string message)
        : this(FailureReasons.Protocol, message)
    {
    }

    public UpstreamFault(string message, Exception inner)
        : this(FailureReasons.Protocol, message, inner: inner)
    {
    }

    public UpstreamFailure Failure { get; }
}
