using GoblinAspire.Gateway.Caching;
using GoblinAspire.Gateway.RateLimiting;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.Responses;
using GoblinAspire.Gateway.Routing;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Stages;

/// <summary>
/// One inference request (chat, completions, embeddings, responses) through the stages, in order: admission (key,
/// then the body, then limits and budget), cache, forwarding, outcome. The stages decide; this class only reads the
/// request and writes what they decided to the client.
/// </summary>
public sealed class InferencePipeline(
    AdmissionStage admission,
    CacheStage cache,
    ForwardingStage forwarding,
    OutcomeStage outcome,
    ResponseStore responses,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<InferencePipeline> logger)
{
    private readonly long _maxRequestBodyBytes = options.Value.MaxRequestBodyBytes;

    public async Task HandleAsync(HttpContext http, InferenceOperation operation)
    {
        ArgumentNullException.ThrowIfNull(http);
        var startedAt = time.GetTimestamp();
        var aborted = http.RequestAborted;
        var (key, authError) = await admission.IdentifyAsync(http.Request.Headers.Authorization.ToString(), aborted);
        if (authError is not null)
        {
            await authError.WriteAsync(http.Response);
            return;
        }

        var (body, readError) = await RequestBody.ReadAsync(http.Request, _maxRequestBodyBytes, aborted);
        if (readError is not null)
        {
            await readError.WriteAsync(http.Response);
            return;
        }

        var request = InferenceRequest.Parse(body, operation, out var parseError);
        if (request is null)
        {
            await parseError!.WriteAsync(http.Response);
            return;
        }

        ResponsesTurn? turn = null;
        if (operation == InferenceOperation.Responses)
        {
            (turn, parseError) = await ResponsesTurn.PrepareAsync(request, key?.Id, responses, aborted);
            if (turn is null)
            {
                await parseError!.WriteAsync(http.Response);
                return;
            }

            request = turn.Request;
        }

        var admitted = await admission.AdmitAsync(key, request, aborted);
        if (admitted is { Limits: { } limits, Decision: { } decision })
        {
            RateLimitHeaders.Write(http.Response, limits, decision);
        }

        if (admitted.Refusal is { } refusal)
        {
            await refusal.WriteAsync(http.Response);
            return;
        }

        RequestOutcome? result = null;
        try
        {
            var lookup = await cache.LookupAsync(request, turn is { Conversation.Store: true }, http.Request.Headers[CacheOptions.RequestHeader], key?.Team, aborted);
            if (lookup.Hit is { } hit)
            {
                http.Response.StatusCode = StatusCodes.Status200OK;
                http.Response.ContentType = hit.ContentType;
                http.Response.ContentLength = hit.Body.Length;
                http.Response.Headers[CacheOptions.RequestHeader] = "hit";
                await http.Response.Body.WriteAsync(hit.Body, aborted);
                result = RequestOutcome.FromCache;
                return;
            }

            CapturingStream? capture = null;
            if (lookup.Key is not null)
            {
                http.Response.Headers[CacheOptions.RequestHeader] = "miss";
                capture = new CapturingStream(http.Response.Body, cache.MaxEntryBytes);
                http.Response.Body = capture;
            }

            if (turn is not null)
            {
                turn.Answer = ResponsesAnswer.Install(http, turn.Conversation, request.Model, request.Stream, time);
            }

            result = await ForwardAsync(http, request, turn, admission.Reservation(request), startedAt);
            if (turn is not null)
            {
                await turn.CompleteAsync(http, result is { Complete: true, Status: StatusCodes.Status200OK }, key?.Id, responses, logger);
            }

            if (capture is not null && CacheStage.Keeps(result, capture.Overflowed))
            {
                await http.Response.Body.FlushAsync(aborted);
                await cache.KeepAsync(lookup.Key!, http.Response.ContentType ?? "application/json", capture.Captured);
            }
        }
        finally
        {
            outcome.Finish(result, key, request.Model, admitted.Lease, time.GetElapsedTime(startedAt));
        }
    }

    /// <returns>How the request ended, or null when it was refused before any provider was chosen.</returns>
    private async Task<RequestOutcome?> ForwardAsync(HttpContext http, InferenceRequest request, ResponsesTurn? turn, long reservation, long startedAt)
    {
        var plan = forwarding.Plan(request, http.Request.Headers[ProviderRouter.StrategyHeader]);
        if (plan.Error is not null)
        {
            await plan.Error.WriteAsync(http.Response);
            return null;
        }

        var forwarded = await forwarding.ForwardAsync(http.Response, plan.Candidates, request, turn, reservation, startedAt, http.RequestAborted);
        switch (forwarded.End)
        {
            case ForwardingEnd.Answered:
                return RequestOutcome.Of(forwarded.Answer!, forwarded.Answer!.StatusCode, complete: true);
            case ForwardingEnd.ClientClosed:
                return RequestOutcome.Of(forwarded.Answer!, StatusCodes.Status499ClientClosedRequest);
            case ForwardingEnd.StreamBroken:
                await EndStreamWithErrorAsync(http, forwarded.BrokenBy!);
                return RequestOutcome.Of(forwarded.Answer!, forwarded.Answer!.StatusCode);
            default:
                var error = forwarded.FinalError(request.Model);
                outcome.Exhausted(request.Model, error.StatusCode, time.GetElapsedTime(startedAt));
                http.Response.Headers["x-goblin-attempts"] = forwarded.Failures.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await error.WriteAsync(http.Response);
                return RequestOutcome.Unanswered(error.StatusCode);
        }
    }

    /// <summary>An OpenAI-style error event, which OpenAI's SDKs raise as an APIError mid-stream.</summary>
    private static async Task EndStreamWithErrorAsync(HttpContext http, Protocols.UpstreamFailure failure)
    {
        if (!http.Response.ContentType?.StartsWith("text/event-stream", StringComparison.Ordinal) ?? true)
        {
            // A non-streaming answer that broke after its headers cannot be repaired; abort so the client sees it.
            http.Abort();
            return;
        }

        var error = new OpenAiError(StatusCodes.Status502BadGateway, $"The provider failed during the answer ({failure.Reason}).", OpenAiError.ServerError, null, "upstream_stream_error");
        try
        {
            await http.Response.BodyWriter.WriteAsync("data: "u8.ToArray());
            await http.Response.BodyWriter.WriteAsync(error.ToJsonBytes());
            await http.Response.BodyWriter.WriteAsync("\n\n"u8.ToArray());
            await http.Response.BodyWriter.FlushAsync();
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            // The client is gone as well; nothing left to tell.
        }
    }
}
