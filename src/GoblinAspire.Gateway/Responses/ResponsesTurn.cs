using System.Text.Json.Nodes;
using GoblinAspire.Gateway.OpenAi;
using GoblinAspire.Gateway.Telemetry;
using Npgsql;

namespace GoblinAspire.Gateway.Responses;

/// <summary>
/// One Responses API request on its way through the relay: the conversation (earlier turns joined in), the request a
/// native provider gets and the chat request every other provider gets, and the answer that is stored once complete.
/// </summary>
public sealed class ResponsesTurn
{
    private ResponsesTurn(ResponsesRequest conversation, InferenceRequest request, InferenceRequest chat)
    {
        Conversation = conversation;
        Request = request;
        Chat = chat;
    }

    public ResponsesRequest Conversation { get; }

    /// <summary>The Responses request as a native provider gets it; routing and limits use it.</summary>
    public InferenceRequest Request { get; }

    /// <summary>The same turn as a chat completion request.</summary>
    public InferenceRequest Chat { get; }

    public ResponsesAnswer? Answer { get; set; }

    public static async Task<(ResponsesTurn? Turn, OpenAiError? Error)> PrepareAsync(InferenceRequest request, Guid? owner, ResponseStore store, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(store);
        var conversation = ResponsesRequest.Parse(request.Body, out var error);
        if (conversation is null)
        {
            return (null, error);
        }

        if (conversation.PreviousResponseId is { } previousId)
        {
            StoredResponse? previous;
            try
            {
                previous = await store.FindAsync(previousId, owner, cancellationToken);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                return (null, new OpenAiError(StatusCodes.Status503ServiceUnavailable, "Stored responses cannot be read right now; retry shortly.", OpenAiError.ServerError, null, "response_store_unavailable") { RetryAfter = TimeSpan.FromSeconds(1) });
            }

            if (previous is null)
            {
                return (null, new OpenAiError(StatusCodes.Status400BadRequest, $"Previous response with id '{previousId}' not found.", OpenAiError.InvalidRequest, "previous_response_id", "previous_response_not_found"));
            }

            conversation.Continue(previous.Input, previous.Response["output"] as JsonArray ?? []);
            request = InferenceRequest.Parse(conversation.NativeBody(), InferenceOperation.Responses, out error)!;
            if (request is null)
            {
                return (null, error);
            }
        }

        var chat = InferenceRequest.Parse(conversation.ChatBody(), InferenceOperation.Chat, out error);
        return chat is null ? (null, error) : (new ResponsesTurn(conversation, request, chat), null);
    }

    /// <summary>The request a provider gets (native: speaks the Responses API), and the answer told which shape to expect back.</summary>
    public InferenceRequest RequestFor(bool native)
    {
        Answer?.Begin(native);
        return native ? Request : Chat;
    }

    /// <summary>Ends the answer; a complete one is stored first (when asked), so its id can be used at once.</summary>
    public async Task CompleteAsync(HttpContext http, bool complete, Guid? owner, ResponseStore store, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(store);
        if (Answer is not { } answer)
        {
            return;
        }

        var aborted = http.RequestAborted;
        try
        {
            await http.Response.BodyWriter.FlushAsync(aborted);
            await answer.SealAsync(complete, aborted);
            if (complete && Conversation.Store && answer.Final is { } final)
            {
                if (Conversation.PreviousResponseId is { } previous)
                {
                    final["previous_response_id"] = previous;
                }

                try
                {
                    await store.SaveAsync(owner, final, Conversation.Input, aborted);
                }
                catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
                {
                    // The answer itself is good; only its later retrieval is lost, and that is logged.
                    GatewayLog.ResponseNotStored(logger, ex.Message);
                }
            }

            if (complete || Request.Stream)
            {
                await answer.FinishAsync(aborted);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException && aborted.IsCancellationRequested)
        {
            // The client went away; nothing left to tell it.
        }
    }
}
