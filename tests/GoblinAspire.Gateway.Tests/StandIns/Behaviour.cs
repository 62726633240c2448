namespace GoblinAspire.Gateway.Tests.StandIns;

/// <summary>What a stand-in provider does with one request.</summary>
public enum Behaviour
{
    Answer,
    RateLimited,
    ServerError,
    Overloaded,
    BadRequest,
    NotFound,
    ResetConnection,
    Stall,
    StallAfterFirstChunk,
    BreakAfterFirstChunk,
    ErrorEventAfterFirstChunk,
    SlowStream,
}

public sealed record RecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string BodyText => System.Text.Encoding.UTF8.GetString(Body);

    public System.Text.Json.JsonElement Json => System.Text.Json.JsonDocument.Parse(Body).RootElement;
}
