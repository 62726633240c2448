using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using GoblinAspire.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace GoblinAspire.Gateway.Tests.StandIns;

/// <summary>
/// An in-process provider on a real loopback port that speaks one provider's wire protocol: its paths, auth headers,
/// JSON shapes, streaming framing (SSE or NDJSON), error bodies and status codes. Behaviours are scripted per
/// request; every request is recorded.
/// </summary>
public abstract class ProviderStandIn : IAsyncDisposable
{
    private readonly ConcurrentQueue<Behaviour> _script = new();
    private TestWebHost? _host;

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>Completed when a request's connection is aborted by the caller (client disconnect propagation).</summary>
    public TaskCompletionSource UpstreamAborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A streamed answer pauses after its first event until this is released.</summary>
    public TaskCompletionSource ReleaseStream { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool PauseAfterFirstEvent { get; set; }

    public Behaviour DefaultBehaviour { get; set; } = Behaviour.Answer;

    public int RetryAfterSeconds { get; set; } = 7;

    public string? RequiredApiKey { get; set; }

    public Uri BaseAddress => _host!.BaseAddress;

    public string Url => BaseAddress.ToString().TrimEnd('/');

    public int InferenceRequestCount => Requests.Count(r => r.Method == "POST");

    public void Script(params Behaviour[] behaviours)
    {
        foreach (var behaviour in behaviours)
        {
            _script.Enqueue(behaviour);
        }
    }

    public async Task StartAsync()
    {
        _host = await TestWebHost.StartStandInAsync(app => app.Run(HandleAsync));
    }

    public async ValueTask DisposeAsync()
    {
        ReleaseStream.TrySetResult();
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }

    protected abstract string? AuthenticationFailure(HttpRequest request);

    protected abstract Task AnswerAsync(HttpContext context, RecordedRequest request, Behaviour behaviour);

    protected abstract Task WriteErrorAsync(HttpContext context, int status, string type, string message);

    protected static string LastUserText(JsonElement body)
    {
        if (body.TryGetProperty("messages", out var messages))
        {
            var text = "";
            foreach (var message in messages.EnumerateArray())
            {
                if (message.GetProperty("role").GetString() == "user" && message.TryGetProperty("content", out var content))
                {
                    text = content.ValueKind == JsonValueKind.String ? content.GetString()! : string.Concat(content.EnumerateArray().Where(p => p.TryGetProperty("text", out _)).Select(p => p.GetProperty("text").GetString()));
                }
            }

            return text;
        }

        return body.TryGetProperty("prompt", out var prompt) ? prompt.ToString() : "";
    }

    /// <summary>Writes one event (or line), then pauses, stalls or breaks as the behaviour says.</summary>
    protected async Task AfterFirstEventAsync(HttpContext context, Behaviour behaviour)
    {
        await context.Response.Body.FlushAsync(context.RequestAborted);
        switch (behaviour)
        {
            case Behaviour.StallAfterFirstChunk:
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
                break;
            case Behaviour.BreakAfterFirstChunk:
                // Give the first event time to leave the socket: an abort discards what is still buffered.
                await Task.Delay(150, context.RequestAborted);
                context.Abort();
                throw new OperationCanceledException("stand-in broke the stream");
        }

        if (PauseAfterFirstEvent)
        {
            await ReleaseStream.Task.WaitAsync(context.RequestAborted);
        }
    }

    protected static async Task DelayIfSlow(HttpContext context, Behaviour behaviour)
    {
        if (behaviour == Behaviour.SlowStream)
        {
            await Task.Delay(200, context.RequestAborted);
        }
    }

    protected static async Task WriteSseAsync(HttpContext context, string? eventName, string data)
    {
        var text = eventName is null ? $"data: {data}\n\n" : $"event: {eventName}\ndata: {data}\n\n";
        await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(text), context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }

    private async Task HandleAsync(HttpContext context)
    {
        context.RequestAborted.Register(() => UpstreamAborted.TrySetResult());
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        var recorded = new RecordedRequest(
            context.Request.Method,
            context.Request.Path + context.Request.QueryString,
            context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString()),
            buffer.ToArray());
        Requests.Enqueue(recorded);

        if (AuthenticationFailure(context.Request) is { } authError)
        {
            await WriteErrorAsync(context, 401, "authentication_error", authError);
            return;
        }

        var behaviour = context.Request.Method == "POST" && _script.TryDequeue(out var scripted) ? scripted : DefaultBehaviour;
        try
        {
            switch (behaviour)
            {
                case Behaviour.RateLimited:
                    context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    await WriteErrorAsync(context, 429, "rate_limit_error", "Rate limit reached.");
                    return;
                case Behaviour.ServerError:
                    await WriteErrorAsync(context, 500, "api_error", "Internal server error.");
                    return;
                case Behaviour.Overloaded:
                    await WriteErrorAsync(context, 529, "overloaded_error", "Overloaded");
                    return;
                case Behaviour.BadRequest:
                    await WriteErrorAsync(context, 400, "invalid_request_error", "temperature: must be at most 2");
                    return;
                case Behaviour.NotFound:
                    await WriteErrorAsync(context, 404, "not_found_error", "model 'nope' not found");
                    return;
                case Behaviour.ResetConnection:
                    context.Abort();
                    return;
                case Behaviour.Stall:
                    await Task.Delay(Timeout.Infinite, context.RequestAborted);
                    return;
                default:
                    await AnswerAsync(context, recorded, behaviour);
                    return;
            }
        }
        catch (OperationCanceledException)
        {
            // The caller went away or the script broke the connection on purpose.
        }
        catch (Exception ex) when (ex is InvalidOperationException or KeyNotFoundException or FormatException or System.Text.Json.JsonException && !context.Response.HasStarted)
        {
            // A body of the wrong shape (a message without a role, content of the wrong type) is a 400 with a
            // validation message, as vLLM's and OpenAI's request validation answers, never a 500.
            await WriteErrorAsync(context, 400, "invalid_request_error", $"The request body does not match the schema: {ex.Message}");
        }
    }
}
