using System.Diagnostics;

namespace GoblinAspire.Gateway.Telemetry;

/// <summary>Spans for upstream attempts, tagged by the OpenTelemetry GenAI semantic conventions.</summary>
public static class GatewayActivity
{
    public const string SourceName = "GoblinAspire.Gateway";

    public static readonly ActivitySource Source = new(SourceName);
}
