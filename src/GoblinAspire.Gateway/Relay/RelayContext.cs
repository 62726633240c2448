using System.Buffers;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.Routing;

namespace GoblinAspire.Gateway.Relay;

/// <summary>
/// One attempt's view of the client response. Nothing reaches the client until <see cref="CommitAsync"/>: until then
/// a failed attempt can still move to the next provider; after it, never.
/// </summary>
public sealed class RelayContext(HttpContext http, Deployment deployment, InferenceRequest request, TimeProvider time, long startedAt, int attempt)
{
    private CancellationTokenSource? _firstTokenTimer;

    public HttpContext Http { get; } = http;

    public HttpResponse Response => Http.Response;

    public Deployment Deployment { get; } = deployment;

    public InferenceRequest Request { get; } = request;

    public int Attempt { get; } = attempt;

    public bool Committed { get; private set; }

    public long? InputTokens { get; set; }

    public long? OutputTokens { get; set; }

    public string? ResponseModel { get; set; }

    public TimeSpan? FirstToken { get; private set; }

    public int StatusCode { get; private set; }

    internal void ArmFirstTokenTimer(CancellationTokenSource timer) => _firstTokenTimer = timer;

    /// <summary>The first answer byte arrived: stop the first-token timer and note how long it took.</summary>
    public void MarkFirstToken()
    {
        if (FirstToken is null)
        {
            FirstToken = time.GetElapsedTime(startedAt);
            _firstTokenTimer?.CancelAfter(Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Sends the status and headers. After this the answer belongs to this attempt.</summary>
    public async ValueTask CommitAsync(int statusCode, string contentType, HttpResponseMessage? upstream = null, bool copyUpstreamHeaders = false)
    {
        MarkFirstToken();
        Committed = true;
        StatusCode = statusCode;
        Response.StatusCode = statusCode;
        if (copyUpstreamHeaders && upstream is not null)
        {
            UpstreamHeaders.CopyTo(upstream, Response);
        }

        Response.ContentType = contentType;
        Response.Headers["x-goblin-provider"] = Deployment.Provider.Name;
        if (contentType.StartsWith("text/event-stream", StringComparison.Ordinal))
        {
            Response.Headers.CacheControl = "no-cache";
            Response.Headers["X-Accel-Buffering"] = "no";
        }

        await Response.StartAsync(Http.RequestAborted);
    }

    public async ValueTask WriteAsync(ReadOnlySequence<byte> bytes, bool flush, CancellationToken cancellationToken)
    {
        foreach (var segment in bytes)
        {
            Response.BodyWriter.Write(segment.Span);
        }

        if (flush)
        {
            await Response.BodyWriter.FlushAsync(cancellationToken);
        }
    }
}

/// <summary>Which upstream response headers a passthrough forwards: not hop-by-hop ones, nor ones the gateway sets.</summary>
internal static class UpstreamHeaders
{
    private static readonly HashSet<string> Skipped = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "TE", "Trailer",
        "Content-Length", "Content-Type", "Server", "Date", "Set-Cookie", "Alt-Svc",
    };

    public static void CopyTo(HttpResponseMessage upstream, HttpResponse response)
    {
        foreach (var (name, values) in upstream.Headers)
        {
            if (!Skipped.Contains(name))
            {
                response.Headers[name] = values.ToArray();
            }
        }

        foreach (var (name, values) in upstream.Content.Headers)
        {
            if (!Skipped.Contains(name))
            {
                response.Headers[name] = values.ToArray();
            }
        }
    }
}
