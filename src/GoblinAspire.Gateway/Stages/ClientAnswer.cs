using System.Buffers;
using System.IO.Pipelines;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.Protocols;
using GoblinAspire.Gateway.Routing;

namespace GoblinAspire.Gateway.Stages;

/// <summary>
/// One attempt's view of the client response, as a protocol writes it, plus what the outcome stage reads back:
/// the provider, usage, the status sent and the time to the first byte.
/// </summary>
public sealed class ClientAnswer(HttpResponse response, Deployment deployment, InferenceRequest request, TimeProvider time, long startedAt, int attempt) : IClientAnswer
{
    private CancellationTokenSource? _firstTokenTimer;

    public Deployment Deployment { get; } = deployment;

    public InferenceRequest Request { get; } = request;

    public int Attempt { get; } = attempt;

    public bool Committed { get; private set; }

    public long? InputTokens { get; set; }

    public long? OutputTokens { get; set; }

    public string? ResponseModel { get; set; }

    public TimeSpan? FirstToken { get; private set; }

    public int StatusCode { get; private set; }

    public PipeWriter Body => response.BodyWriter;

    /// <summary>The price of the tokens counted so far at this provider's rates.</summary>
    public decimal CostUsd
    {
        get
        {
            var options = Deployment.Provider.Options;
            return ((InputTokens ?? 0) * options.InputPricePer1K / 1000m) + ((OutputTokens ?? 0) * options.OutputPricePer1K / 1000m);
        }
    }

    internal void ArmFirstTokenTimer(CancellationTokenSource timer) => _firstTokenTimer = timer;

    public void MarkFirstToken()
    {
        if (FirstToken is null)
        {
            FirstToken = time.GetElapsedTime(startedAt);
            _firstTokenTimer?.CancelAfter(Timeout.InfiniteTimeSpan);
        }
    }

    public async ValueTask CommitAsync(int statusCode, string contentType, HttpResponseMessage? upstream = null, bool copyUpstreamHeaders = false, long? contentLength = null)
    {
        MarkFirstToken();
        Committed = true;
        StatusCode = statusCode;
        response.StatusCode = statusCode;
        if (copyUpstreamHeaders && upstream is not null)
        {
            UpstreamHeaders.CopyTo(upstream, response);
        }

        response.ContentType = contentType;
        if (contentLength is { } length)
        {
            response.ContentLength = length;
        }

        response.Headers["x-goblin-provider"] = Deployment.Provider.Name;
        if (contentType.StartsWith("text/event-stream", StringComparison.Ordinal))
        {
            response.Headers.CacheControl = "no-cache";
            response.Headers["X-Accel-Buffering"] = "no";
        }

        await response.StartAsync(response.HttpContext.RequestAborted);
    }

    public async ValueTask WriteAsync(ReadOnlySequence<byte> bytes, bool flush, CancellationToken cancellationToken)
    {
        foreach (var segment in bytes)
        {
            response.BodyWriter.Write(segment.Span);
        }

        if (flush)
        {
            await response.BodyWriter.FlushAsync(cancellationToken);
        }
    }
}
