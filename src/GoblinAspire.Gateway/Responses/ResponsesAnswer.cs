using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace GoblinAspire.Gateway.Responses;

/// <summary>
/// The client's response body for one Responses request. Protocols write an answer as they always do: a provider
/// that speaks the Responses API writes Responses JSON or events, which pass through untouched; every other writes
/// chat completions, which this turns into the Responses object or its typed event sequence. Either way it keeps the
/// final response for storing, and holds back the answer's last bytes (the whole body, or the terminal event) until
/// <see cref="FinishAsync"/>, so a stored response exists before its client can ask for it.
/// </summary>
public sealed class ResponsesAnswer : Stream
{
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();

    private readonly HttpResponse _response;
    private readonly Stream _inner;
    private readonly bool _stream;
    private readonly ResponsesRequest _conversation;
    private readonly ResponseDraft _draft;
    private readonly MemoryStream _whole = new();
    private readonly ArrayBufferWriter<byte> _pending = new();
    private readonly ArrayBufferWriter<byte> _out = new();
    private readonly Dictionary<int, OutputItem> _calls = [];
    private bool _native;
    private bool _started;
    private bool _ended;
    private int _sequence;
    private OutputItem? _open;
    private string? _finishReason;
    private byte[]? _held;

    private ResponsesAnswer(HttpResponse response, ResponsesRequest request, string model, bool stream, long createdAt)
    {
        _response = response;
        _inner = response.Body;
        _stream = stream;
        _conversation = request;
        _draft = new ResponseDraft(request, model, createdAt);
    }

    /// <summary>The response to store: set once the answer completed (or stopped short), never for a failure.</summary>
    public JsonObject? Final { get; private set; }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>Puts the answer in front of the response body.</summary>
    public static ResponsesAnswer Install(HttpContext http, ResponsesRequest request, string model, bool stream, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(time);
        var answer = new ResponsesAnswer(http.Response, request, model, stream, time.GetUtcNow().ToUnixTimeSeconds());
        http.Response.Body = answer;
        return answer;
    }

    /// <summary>Before each attempt (nothing of a failed attempt reached the client): whether this provider is native.</summary>
    public void Begin(bool native) => _native = native;

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) =>
        // A whole answer waits for FinishAsync: its headers (Content-Length) are set there.
        _stream || _response.StatusCode != StatusCodes.Status200OK ? _inner.FlushAsync(cancellationToken) : Task.CompletedTask;

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_response.StatusCode != StatusCodes.Status200OK)
        {
            // An error answer is OpenAI's error shape on every route: it goes as it is.
            await _inner.WriteAsync(buffer, cancellationToken);
            return;
        }

        if (!_stream)
        {
            _whole.Write(buffer.Span);
            return;
        }

        _pending.Write(buffer.Span);
        var consumed = 0;
        while (NextEvent(_pending.WrittenMemory[consumed..]) is { } length)
        {
            await HandleEventAsync(_pending.WrittenMemory.Slice(consumed, length), cancellationToken);
            consumed += length;
        }

        if (consumed > 0)
        {
            var rest = _pending.WrittenSpan[consumed..].ToArray();
            _pending.ResetWrittenCount();
            _pending.Write(rest);
            await _inner.FlushAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Completes the answer once the provider is done with it (<paramref name="complete"/>: it ended as the provider
    /// meant). Afterwards <see cref="Final"/> holds the response to store, if there is one.
    /// </summary>
    public async Task SealAsync(bool complete, CancellationToken cancellationToken)
    {
        if (_response.StatusCode != StatusCodes.Status200OK)
        {
            return;
        }

        if (!_stream)
        {
            if (complete)
            {
                SealWhole();
            }

            return;
        }

        if (_pending.WrittenCount > 0)
        {
            // A last event without its blank line.
            var last = _pending.WrittenMemory.ToArray();
            _pending.ResetWrittenCount();
            await HandleEventAsync(last, cancellationToken);
        }

        if (complete && !_native && !_ended && _started)
        {
            await EndAsync(cancellationToken);
        }
    }

    /// <summary>Writes what was held back: the whole body, or the terminal event.</summary>
    public async Task FinishAsync(CancellationToken cancellationToken)
    {
        if (_response.StatusCode != StatusCodes.Status200OK)
        {
            return;
        }

        if (!_stream)
        {
            if (_whole.Length > 0 && !_response.HasStarted)
            {
                _response.ContentLength = _whole.Length;
                await _inner.WriteAsync(_whole.GetBuffer().AsMemory(0, (int)_whole.Length), cancellationToken);
            }

            return;
        }

        if (_held is not null)
        {
            await _inner.WriteAsync(_held, cancellationToken);
            _held = null;
        }

        await _inner.FlushAsync(cancellationToken);
    }

    private void SealWhole()
    {
        var body = _whole.GetBuffer().AsSpan(0, (int)_whole.Length);
        if (_native)
        {
            Final = TryParseObject(body);
            if (Final is not null && _conversation.Continued)
            {
                // The provider answered a request without the id (it was given the turns instead): the client's own id.
                Final["previous_response_id"] = _conversation.PreviousResponseId;
                _whole.SetLength(0);
                _whole.Write(Encoding.UTF8.GetBytes(Final.ToJsonString()));
            }

            return;
        }

        try
        {
            using var document = JsonDocument.Parse(_whole.ToArray());
            var root = document.RootElement;
            ReadUsage(root);
            if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0)
            {
                var choice = choices[0];
                if (choice.TryGetProperty("message", out var message))
                {
                    if (message.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String && content.GetString() is { Length: > 0 } text)
                    {
                        var item = OutputItem.Message();
                        item.Content.Append(text);
                        _draft.Output.Add(item);
                    }

                    if (message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var call in calls.EnumerateArray())
                        {
                            var function = call.GetProperty("function");
                            var item = OutputItem.FunctionCall(StringOf(call, "id"), StringOf(function, "name"));
                            item.Content.Append(StringOf(function, "arguments") ?? "{}");
                            _draft.Output.Add(item);
                        }
                    }
                }

                _finishReason = StringOf(choice, "finish_reason");
            }

            _draft.Finish(_finishReason);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            // Already committed as 200: the client gets a failed response rather than a body it cannot read.
            _draft.Output.Clear();
            _draft.Status = "failed";
            _draft.ErrorMessage = "The provider's answer could not be read.";
        }

        var json = _draft.ToJsonBytes();
        _whole.SetLength(0);
        _whole.Write(json);
        Final = _draft.Status == "failed" ? null : _draft.ToJsonObject();
    }

    private async Task HandleEventAsync(ReadOnlyMemory<byte> sseEvent, CancellationToken cancellationToken)
    {
        var data = Data(sseEvent.Span);
        if (data.Length == 0)
        {
            if (_native)
            {
                await _inner.WriteAsync(sseEvent, cancellationToken);
            }

            return;
        }

        if (data.StartsWith("{\"error\""u8))
        {
            // The gateway's own event after a provider broke off (or a chat server's error event): the Responses
            // stream ends with response.failed and an error event instead.
            await FailAsync(ErrorMessage(data), cancellationToken);
            return;
        }

        if (_native)
        {
            await PassNativeAsync(sseEvent, ReadNativeEvent(data), cancellationToken);
            return;
        }

        if (data.SequenceEqual("[DONE]"u8))
        {
            await EndAsync(cancellationToken);
            return;
        }

        try
        {
            using var document = JsonDocument.Parse(data.ToArray());
            TranslateChunk(document.RootElement);
        }
        catch (JsonException)
        {
            await FailAsync("The provider sent an event that is not JSON.", cancellationToken);
            return;
        }

        await WriteOutAsync(cancellationToken);
    }

    private async Task PassNativeAsync(ReadOnlyMemory<byte> sseEvent, (string? Type, JsonObject? Response) native, CancellationToken cancellationToken)
    {
        var (type, response) = native;
        if (type is "response.completed" or "response.incomplete" && response is not null)
        {
            Final = response;
            _held = sseEvent.ToArray();
            _ended = true;
            if (_conversation.Continued)
            {
                response["previous_response_id"] = _conversation.PreviousResponseId;
                // Rewritten under its own number, which reading it has already counted.
                _sequence = Math.Max(0, _sequence - 1);
                Emit(type, w =>
                {
                    w.WritePropertyName("response");
                    response.WriteTo(w);
                });
                _held = _out.WrittenSpan.ToArray();
                _out.ResetWrittenCount();
            }

            return;
        }

        _ended |= type == "response.failed";
        await _inner.WriteAsync(sseEvent, cancellationToken);
    }

    /// <summary>A native event's type and, for the terminal ones, its response; the sequence number is noted.</summary>
    private (string? Type, JsonObject? Response) ReadNativeEvent(ReadOnlySpan<byte> data)
    {
        string? type = null;
        JsonObject? response = null;
        try
        {
            var reader = new Utf8JsonReader(data);
            if (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("type"u8) && reader.Read() && reader.TokenType == JsonTokenType.String)
                    {
                        type = reader.GetString();
                        continue;
                    }

                    if (reader.ValueTextEquals("sequence_number"u8) && reader.Read() && reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var sequence))
                    {
                        _sequence = sequence + 1;
                        continue;
                    }

                    if (reader.ValueTextEquals("response"u8))
                    {
                        reader.Read();
                        var start = (int)reader.TokenStartIndex;
                        reader.Skip();
                        response = type is "response.completed" or "response.incomplete" || type is null ? TryParseObject(data[start..(int)reader.BytesConsumed]) : null;
                        continue;
                    }

                    reader.Read();
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON: the provider's own business, passed on as it came.
        }

        return (type, response);
    }

    private void TranslateChunk(JsonElement chunk)
    {
        Start();
        ReadUsage(chunk);
        if (!chunk.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array)
        {
            return;
        }

        foreach (var choice in choices.EnumerateArray())
        {
            if (choice.TryGetProperty("delta", out var delta) && delta.ValueKind == JsonValueKind.Object)
            {
                if (delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String && content.GetString() is { Length: > 0 } text)
                {
                    AppendText(text);
                }

                if (delta.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
                {
                    var position = 0;
                    foreach (var call in calls.EnumerateArray())
                    {
                        var index = call.TryGetProperty("index", out var i) && i.TryGetInt32(out var value) ? value : position;
                        position++;
                        var function = call.TryGetProperty("function", out var f) && f.ValueKind == JsonValueKind.Object ? f : default;
                        AppendCall(index, StringOf(call, "id"), function.ValueKind == JsonValueKind.Object ? StringOf(function, "name") : null, function.ValueKind == JsonValueKind.Object ? StringOf(function, "arguments") : null);
                    }
                }
            }

            if (StringOf(choice, "finish_reason") is { } reason)
            {
                _finishReason = reason;
            }
        }
    }

    private void Start()
    {
        if (_started)
        {
            return;
        }

        _started = true;
        Emit("response.created", w => WriteResponse(w));
        Emit("response.in_progress", w => WriteResponse(w));
    }

    private void AppendText(string text)
    {
        if (_open is not { Type: "message" })
        {
            CloseOpenItem();
            var item = OutputItem.Message();
            _draft.Output.Add(item);
            _open = item;
            var index = _draft.Output.Count - 1;
            Emit("response.output_item.added", w =>
            {
                w.WriteNumber("output_index", index);
                w.WritePropertyName("item");
                item.WriteTo(w, withContent: false);
            });
            Emit("response.content_part.added", w =>
            {
                WritePosition(w, item, index);
                w.WriteNumber("content_index", 0);
                w.WritePropertyName("part");
                OutputItem.WriteTextPart(w, "");
            });
        }

        var message = _open;
        message.Content.Append(text);
        Emit("response.output_text.delta", w =>
        {
            WritePosition(w, message, _draft.Output.IndexOf(message));
            w.WriteNumber("content_index", 0);
            w.WriteString("delta", text);
            w.WriteStartArray("logprobs");
            w.WriteEndArray();
        });
    }

    private void AppendCall(int index, string? callId, string? name, string? arguments)
    {
        if (!_calls.TryGetValue(index, out var call))
        {
            CloseOpenItem();
            call = OutputItem.FunctionCall(callId, name);
            _calls[index] = call;
            _draft.Output.Add(call);
            _open = call;
            var position = _draft.Output.Count - 1;
            Emit("response.output_item.added", w =>
            {
                w.WriteNumber("output_index", position);
                w.WritePropertyName("item");
                call.WriteTo(w, withContent: false);
            });
        }

        if (!string.IsNullOrEmpty(arguments))
        {
            call.Content.Append(arguments);
            Emit("response.function_call_arguments.delta", w =>
            {
                WritePosition(w, call, _draft.Output.IndexOf(call));
                w.WriteString("delta", arguments);
            });
        }
    }

    /// <summary>Ends the open item's events: its text or arguments are whole now.</summary>
    private void CloseOpenItem()
    {
        if (_open is not { } item)
        {
            return;
        }

        _open = null;
        item.Status = "completed";
        var index = _draft.Output.IndexOf(item);
        var content = item.Content.ToString();
        if (item.Type == "message")
        {
            Emit("response.output_text.done", w =>
            {
                WritePosition(w, item, index);
                w.WriteNumber("content_index", 0);
                w.WriteString("text", content);
                w.WriteStartArray("logprobs");
                w.WriteEndArray();
            });
            Emit("response.content_part.done", w =>
            {
                WritePosition(w, item, index);
                w.WriteNumber("content_index", 0);
                w.WritePropertyName("part");
                OutputItem.WriteTextPart(w, content);
            });
        }
        else
        {
            Emit("response.function_call_arguments.done", w =>
            {
                WritePosition(w, item, index);
                w.WriteString("name", item.Name);
                w.WriteString("arguments", content);
            });
        }

        Emit("response.output_item.done", w =>
        {
            w.WriteNumber("output_index", index);
            w.WritePropertyName("item");
            item.WriteTo(w);
        });
    }

    private async Task EndAsync(CancellationToken cancellationToken)
    {
        if (_ended)
        {
            return;
        }

        Start();
        CloseOpenItem();
        _ended = true;
        _draft.Finish(_finishReason);
        await WriteOutAsync(cancellationToken);
        Emit(_draft.Status == "completed" ? "response.completed" : "response.incomplete", w => WriteResponse(w));
        _held = _out.WrittenSpan.ToArray();
        _out.ResetWrittenCount();
        Final = _draft.ToJsonObject();
    }

    private async Task FailAsync(string message, CancellationToken cancellationToken)
    {
        if (_ended)
        {
            return;
        }

        _ended = true;
        if (_native)
        {
            Emit("response.failed", w =>
            {
                w.WriteStartObject("response");
                w.WriteString("status", "failed");
                w.WriteStartObject("error");
                w.WriteString("code", "server_error");
                w.WriteString("message", message);
                w.WriteEndObject();
                w.WriteEndObject();
            });
        }
        else
        {
            Start();
            _open = null;
            _draft.Status = "failed";
            _draft.ErrorMessage = message;
            Emit("response.failed", w => WriteResponse(w));
        }

        Emit("error", w =>
        {
            w.WriteString("code", "upstream_stream_error");
            w.WriteString("message", message);
            w.WriteNull("param");
        });
        await WriteOutAsync(cancellationToken);
    }

    private void WriteResponse(Utf8JsonWriter writer)
    {
        writer.WritePropertyName("response");
        _draft.WriteTo(writer);
    }

    private static void WritePosition(Utf8JsonWriter writer, OutputItem item, int index)
    {
        writer.WriteString("item_id", item.Id);
        writer.WriteNumber("output_index", index);
    }

    /// <summary>One typed event, numbered in order: <c>event: type</c>, then its JSON with type and sequence_number.</summary>
    private void Emit(string type, Action<Utf8JsonWriter> fields)
    {
        _out.Write("event: "u8);
        _out.Write(Encoding.UTF8.GetBytes(type));
        _out.Write("\ndata: "u8);
        using (var writer = new Utf8JsonWriter(_out))
        {
            writer.WriteStartObject();
            writer.WriteString("type", type);
            writer.WriteNumber("sequence_number", _sequence++);
            fields(writer);
            writer.WriteEndObject();
        }

        _out.Write(EventEnd);
    }

    private async Task WriteOutAsync(CancellationToken cancellationToken)
    {
        if (_out.WrittenCount == 0)
        {
            return;
        }

        await _inner.WriteAsync(_out.WrittenMemory, cancellationToken);
        _out.ResetWrittenCount();
    }

    private void ReadUsage(JsonElement root)
    {
        if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
        {
            if (usage.TryGetProperty("prompt_tokens", out var prompt) && prompt.TryGetInt64(out var input))
            {
                _draft.InputTokens = input;
            }

            if (usage.TryGetProperty("completion_tokens", out var completion) && completion.TryGetInt64(out var output))
            {
                _draft.OutputTokens = output;
            }
        }
    }

    /// <summary>The length of the first whole event in <paramref name="buffer"/>, its blank line included.</summary>
    private static int? NextEvent(ReadOnlyMemory<byte> buffer)
    {
        var span = buffer.Span;
        for (var i = span.IndexOf((byte)'\n'); i >= 0 && i < span.Length - 1; i = NextNewline(span, i + 1))
        {
            if (span[i + 1] == '\n')
            {
                return i + 2;
            }

            if (span[i + 1] == '\r' && i + 2 < span.Length && span[i + 2] == '\n')
            {
                return i + 3;
            }
        }

        return null;
    }

    private static int NextNewline(ReadOnlySpan<byte> span, int from)
    {
        var next = span[from..].IndexOf((byte)'\n');
        return next < 0 ? -1 : from + next;
    }

    /// <summary>The event's <c>data:</c> value (one line; the events here never split data over lines).</summary>
    private static ReadOnlySpan<byte> Data(ReadOnlySpan<byte> sseEvent)
    {
        while (sseEvent.Length > 0)
        {
            var end = sseEvent.IndexOf((byte)'\n');
            var line = end < 0 ? sseEvent : sseEvent[..end];
            sseEvent = end < 0 ? default : sseEvent[(end + 1)..];
            if (line.StartsWith("data:"u8))
            {
                return line[5..].Trim((byte)' ').TrimEnd((byte)'\r');
            }
        }

        return default;
    }

    private static string ErrorMessage(ReadOnlySpan<byte> data)
    {
        try
        {
            using var document = JsonDocument.Parse(data.ToArray());
            if (document.RootElement.GetProperty("error") is { ValueKind: JsonValueKind.Object } error && StringOf(error, "message") is { } message)
            {
                return message;
            }
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException)
        {
        }

        return "The provider failed during the answer.";
    }

    private static string? StringOf(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static JsonObject? TryParseObject(ReadOnlySpan<byte> json)
    {
        try
        {
            return JsonNode.Parse(json) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _whole.Dispose();
        }

        base.Dispose(disposing);
    }
}
