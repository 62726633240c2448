namespace GoblinAspire.Gateway.Relay;

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
}

/// <summary>A failed attempt at a provider. The message never carries the upstream body: it may echo secrets.</summary>
public sealed class UpstreamException : Exception
{
    public UpstreamException(string reason, string message, int? statusCode = null, TimeSpan? retryAfter = null, Exception? inner = null)
        : base(message, inner)
    {
        Reason = reason;
        StatusCode = statusCode;
        RetryAfter = retryAfter;
    }

    public UpstreamException()
        : this(FailureReasons.Protocol, "upstream failure")
    {
    }

    public UpstreamException(string message)
        : this(FailureReasons.Protocol, message)
    {
    }

    public UpstreamException(string message, Exception inner)
        : this(FailureReasons.Protocol, message, inner: inner)
    {
    }

    public string Reason { get; }

    public int? StatusCode { get; }

    public TimeSpan? RetryAfter { get; }

    /// <summary>Rate limiting is the provider working as designed: it cools the provider down, not its circuit.</summary>
    public bool CountsAgainstCircuit => Reason != FailureReasons.RateLimited;
}
