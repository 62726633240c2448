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

    // Deep nesting is accepted as Python servers (vLLM) accept it; their schema validation then refuses it.
    public System.Text.Json.JsonElement Json => System.Text.Json.JsonDocument.Parse(Body, new System.Text.Json.JsonDocumentOptions { MaxDepth = 4096 }).RootElement;
}
