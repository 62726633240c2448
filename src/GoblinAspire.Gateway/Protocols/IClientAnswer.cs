using System.Buffers;
using System.IO.Pipelines;
using GoblinAspire.Gateway.OpenAi;

namespace GoblinAspire.Gateway.Protocols;

/// <summary>
/// What a protocol may do to the client's answer while it relays one attempt: read the request it translates, note
/// usage, commit status and headers once, and write the body. Nothing reaches the client before
/// <see cref="CommitAsync"/>; until then a failed attempt can still move to the next provider, after it never.
/// </summary>
public interface IClientAnswer
{
    /// <summary>The request as this provider gets it.</summary>
    InferenceRequest Request { get; }

    bool Committed { get; }

    long? InputTokens { get; set; }

    long? OutputTokens { get; set; }

    string? ResponseModel { get; set; }

    /// <summary>The client's body, valid once committed.</summary>
    PipeWriter Body { get; }

    /// <summary>The first answer byte arrived: stops the first-token timer.</summary>
    void MarkFirstToken();

    /// <summary>Sends status and headers (some copied from <paramref name="upstream"/> when asked). After this the answer belongs to this attempt.</summary>
    ValueTask CommitAsync(int statusCode, string contentType, HttpResponseMessage? upstream = null, bool copyUpstreamHeaders = false, long? contentLength = null);

    ValueTask WriteAsync(ReadOnlySequence<byte> bytes, bool flush, CancellationToken cancellationToken);
}
