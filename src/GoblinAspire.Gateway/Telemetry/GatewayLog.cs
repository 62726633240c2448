namespace GoblinAspire.Gateway.Telemetry;

internal static partial class GatewayLog
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "Attempt {Attempt} at provider {Provider} for model {Model} failed ({Reason}): {Error}")]
    public static partial void AttemptFailed(ILogger logger, int attempt, string provider, string model, string reason, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Provider {Provider} failed after the answer had started ({Reason}); the stream was ended with an error event.")]
    public static partial void StreamBroken(ILogger logger, string provider, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Circuit of provider {Provider} is now {State}.")]
    public static partial void CircuitChanged(ILogger logger, string provider, string state);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Probe of provider {Provider} failed: {Error}")]
    public static partial void ProbeFailed(ILogger logger, string provider, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway:Access:RequireKeys is false: requests without a virtual key are served, with no limits, budget or spend attribution.")]
    public static partial void AnonymousAccess(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A response was answered but could not be stored: {Error}")]
    public static partial void ResponseNotStored(ILogger logger, string error);
}
