using System.Buffers;
using System.IO.Pipelines;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text.Json;
using GoblinAspire.Gateway.OpenAi;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Protocols;

/// <summary>
/// Ollama's native API: <c>/api/chat</c>, <c>/api/generate</c> and <c>/api/embed</c>, streaming as NDJSON.
/// OpenAI requests are translated to it and its answers back, tool calls and usage included.
/// </summary>
public sealed class OllamaProtocol(IOptions<GatewayOptions> options, TimeProvider time) : IProviderProtocol
{
    private readonly long _maxResponseBytes = options.Value.MaxUpstreamResponseBytes;

    public string System => "ollama";

    public HttpRequestMessage CreateRequest(ProviderOptions provider, string upstreamModel, InferenceRequest request)
    {
        ArgumentNullException.ThrowIfNull(provider);
        ArgumentNullException.ThrowIfNull(request);
        using var document = JsonDocument.Parse(request.Body);
        var root = document.RootElement;
        var path = request.Operation switch
        {
            InferenceOperation.Chat => "/api/chat",
            InferenceOperation.Completions => "/api/generate",
            _ => "/api/embed",
        };
        var message = UpstreamBody.JsonPost(UpstreamUrls.Combine(provider.BaseUrl!, "", path), request.Body.Length + 256, writer =>
        {
            writer.WriteString("model", upstreamModel);
            switch (request.Operation)
            {
                case InferenceOperation.Chat:
                    WriteMessages(writer, root.GetProperty("messages"));
                    if (root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array)
                    {
                        writer.WritePropertyName("tools");
                        tools.WriteTo(writer);
                    }

                    WriteFormat(writer, root);
                    break;
                case InferenceOperation.Completions:
                    var prompt = root.GetProperty("prompt");
                    writer.WriteString("prompt", prompt.ValueKind == JsonValueKind.Array ? string.Concat(prompt.EnumerateArray().Select(p => p.GetString())) : prompt.GetString());
                    if (root.TryGetProperty("suffix", out var suffix) && suffix.ValueKind == JsonValueKind.String)
                    {
                        writer.WriteString("suffix", suffix.GetString());
                    }

                    break;
                default:
                    writer.WritePropertyName("input");
                    root.GetProperty("input").WriteTo(writer);
                    if (root.TryGetProperty("dimensions", out var dimensions) && dimensions.ValueKind == JsonValueKind.Number)
                    {
                        writer.WriteNumber("dimensions", dimensions.GetInt32());
                    }

                    break;
            }

            if (request.Operation != InferenceOperation.Embeddings)
            {
                writer.WriteBoolean("stream", request.Stream);
                WriteOptions(writer, root, request);
            }

        });
        Authorize(message, provider);
        return message;
    }

    public HttpRequestMessage? CreateProbe(ProviderOptions provider)
    {
        ArgumentNullException.ThrowIfNull(provider);
        var message = new HttpRequestMessage(HttpMethod.Get, UpstreamUrls.Combine(provider.BaseUrl!, "", "/api/tags"));
        Authorize(message, provider);
        return message;
    }

    public async Task RelayAsync(HttpResponseMessage upstream, IClientAnswer relay, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        ArgumentNullException.ThrowIfNull(relay);
        var writer = new OpenAiStreamWriter(relay, relay.Request.Operation == InferenceOperation.Chat ? "chatcmpl-" : "cmpl-", time.GetUtcNow().ToUnixTimeSeconds());
        if (relay.Request.Operation == InferenceOperation.Embeddings)
        {
            await RelayEmbeddingsAsync(upstream, relay, cancellationToken);
            return;
        }

        if (!relay.Request.Stream)
        {
            var body = await UpstreamBody.ReadAsync(upstream, _maxResponseBytes, cancellationToken);
            using var document = UpstreamBody.ParseJson(body);
            var line = Translate(document.RootElement, relay);
            await writer.WriteCompletionAsync(line.Text, line.ToolCalls, OpenAiStreamWriter.FinishReasonOf(line.DoneReason, line.ToolCalls.Count > 0), cancellationToken);
            return;
        }

        var stream = await upstream.Content.ReadAsStreamAsync(cancellationToken);
        var reader = PipeReader.Create(stream);
        var toolCount = 0;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await reader.ReadAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException)
            {
                throw new UpstreamFault(FailureReasons.Reset, "the provider's connection broke during the stream", inner: ex);
            }

            var buffer = result.Buffer;
            while (TryReadLine(ref buffer, out var lineBytes))
            {
                if (SseReader.IsWhitespace(lineBytes))
                {
                    continue;
                }

                using var document = UpstreamBody.ParseJson(lineBytes.ToArray());
                var line = Translate(document.RootElement, relay);
                var tools = line.ToolCalls.Select((call, i) => (toolCount + i, (ToolCall?)call, (string?)null)).ToList();
                toolCount += line.ToolCalls.Count;
                if (!string.IsNullOrEmpty(line.Text) || tools.Count > 0 || !line.Done)
                {
                    await writer.WriteDeltaAsync(line.Text ?? "", tools, cancellationToken);
                }

                if (line.Done)
                {
                    await writer.WriteEndAsync(OpenAiStreamWriter.FinishReasonOf(line.DoneReason, toolCount > 0), cancellationToken);
                    await reader.CompleteAsync();
                    return;
                }
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                await reader.CompleteAsync();
                throw new UpstreamFault(FailureReasons.Protocol, "the provider's stream ended before its done line");
            }
        }
    }

    public async Task RelayClientErrorAsync(HttpResponseMessage upstream, IClientAnswer relay, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        ArgumentNullException.ThrowIfNull(relay);
        var body = await UpstreamBody.ReadAsync(upstream, 1024 * 1024, cancellationToken);
        var message = $"The provider rejected the request with HTTP {(int)upstream.StatusCode}.";
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.String)
            {
                message = error.GetString()!;
            }
        }
        catch (JsonException)
        {
        }

        var status = (int)upstream.StatusCode;
        var openAiError = new OpenAiError(status, message, OpenAiError.InvalidRequest, null, status == 404 ? "model_not_found" : null);
        await relay.CommitAsync(status, "application/json");
        await relay.Body.WriteAsync(openAiError.ToJsonBytes(), cancellationToken);
    }

    private async Task RelayEmbeddingsAsync(HttpResponseMessage upstream, IClientAnswer relay, CancellationToken cancellationToken)
    {
        var body = await UpstreamBody.ReadAsync(upstream, _maxResponseBytes, cancellationToken);
        using var document = UpstreamBody.ParseJson(body);
        var root = document.RootElement;
        if (!root.TryGetProperty("embeddings", out var embeddings) || embeddings.ValueKind != JsonValueKind.Array)
        {
            throw new UpstreamFault(FailureReasons.Protocol, "the provider's embed answer has no embeddings array");
        }

        relay.InputTokens = root.TryGetProperty("prompt_eval_count", out var count) && count.TryGetInt64(out var tokens) ? tokens : null;
        var base64 = RequestedBase64(relay.Request);
        await relay.CommitAsync(StatusCodes.Status200OK, "application/json");
        using (var writer = new Utf8JsonWriter(relay.Body))
        {
            writer.WriteStartObject();
            writer.WriteString("object", "list");
            writer.WriteStartArray("data");
            var index = 0;
            foreach (var embedding in embeddings.EnumerateArray())
            {
                writer.WriteStartObject();
                writer.WriteString("object", "embedding");
                writer.WriteNumber("index", index++);
                if (base64)
                {
                    // OpenAI's base64 encoding: little-endian float32s.
                    var values = embedding.EnumerateArray().Select(v => v.GetSingle()).ToArray();
                    writer.WriteBase64String("embedding", MemoryMarshal.AsBytes(values.AsSpan()));
                }
                else
                {
                    writer.WritePropertyName("embedding");
                    embedding.WriteTo(writer);
                }

                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteString("model", relay.Request.Model);
            writer.WriteStartObject("usage");
            writer.WriteNumber("prompt_tokens", relay.InputTokens ?? 0);
            writer.WriteNumber("total_tokens", relay.InputTokens ?? 0);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        await relay.Body.FlushAsync(cancellationToken);
    }

    private static bool RequestedBase64(InferenceRequest request)
    {
        using var document = JsonDocument.Parse(request.Body);
        return document.RootElement.TryGetProperty("encoding_format", out var format) && format.ValueKind == JsonValueKind.String && format.GetString() == "base64";
    }

    private sealed record Line(string? Text, List<ToolCall> ToolCalls, bool Done, string? DoneReason);

    private static Line Translate(JsonElement line, IClientAnswer relay)
    {
        if (line.TryGetProperty("error", out var error))
        {
            throw new UpstreamFault(FailureReasons.ServerError, $"the provider reported an error: {Truncate(error.ToString())}");
        }

        string? text = null;
        var toolCalls = new List<ToolCall>();
        if (line.TryGetProperty("message", out var message))
        {
            text = message.TryGetProperty("content", out var content) ? content.GetString() : null;
            if (message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
            {
                foreach (var call in calls.EnumerateArray())
                {
                    var function = call.GetProperty("function");
                    var arguments = function.TryGetProperty("arguments", out var args)
                        ? (args.ValueKind == JsonValueKind.String ? args.GetString()! : args.GetRawText())
                        : "{}";
                    toolCalls.Add(new ToolCall(OpenAiStreamWriter.NewToolCallId(), function.GetProperty("name").GetString()!, arguments));
                }
            }
        }
        else if (line.TryGetProperty("response", out var response))
        {
            text = response.GetString();
        }

        var done = line.TryGetProperty("done", out var doneElement) && doneElement.ValueKind == JsonValueKind.True;
        if (done)
        {
            relay.InputTokens = line.TryGetProperty("prompt_eval_count", out var p) && p.TryGetInt64(out var pv) ? pv : relay.InputTokens;
            relay.OutputTokens = line.TryGetProperty("eval_count", out var e) && e.TryGetInt64(out var ev) ? ev : relay.OutputTokens;
            relay.ResponseModel = line.TryGetProperty("model", out var model) ? model.GetString() : null;
        }

        var doneReason = line.TryGetProperty("done_reason", out var reason) ? reason.GetString() : null;
        return new Line(text, toolCalls, done, doneReason);
    }

    private static void WriteMessages(Utf8JsonWriter writer, JsonElement messages)
    {
        writer.WriteStartArray("messages");
        foreach (var message in messages.EnumerateArray())
        {
            writer.WriteStartObject();
            var role = message.TryGetProperty("role", out var r) ? r.GetString() : "user";
            writer.WriteString("role", role == "developer" ? "system" : role);
            var images = new List<string>();
            writer.WriteString("content", ContentText(message, images));
            if (images.Count > 0)
            {
                writer.WriteStartArray("images");
                foreach (var image in images)
                {
                    writer.WriteStringValue(image);
                }

                writer.WriteEndArray();
            }

            if (message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
            {
                writer.WriteStartArray("tool_calls");
                foreach (var call in calls.EnumerateArray())
                {
                    var function = call.GetProperty("function");
                    writer.WriteStartObject();
                    writer.WriteStartObject("function");
                    writer.WriteString("name", function.GetProperty("name").GetString());
                    writer.WritePropertyName("arguments");
                    // Ollama takes arguments as an object; OpenAI sends them as JSON text.
                    UpstreamBody.WriteArgumentsObject(writer, function.TryGetProperty("arguments", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString()! : "{}");

                    writer.WriteEndObject();
                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
            }

            if (message.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String && role == "tool")
            {
                writer.WriteString("tool_name", name.GetString());
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    /// <summary>Text of a message whose content is a string or an array of parts; data-URL images go to Ollama's images.</summary>
    internal static string ContentText(JsonElement message, List<string>? images)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
        {
            return "";
        }

        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString()!;
        }

        var text = new System.Text.StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            var type = part.TryGetProperty("type", out var t) ? t.GetString() : null;
            if (type == "text" && part.TryGetProperty("text", out var partText))
            {
                text.Append(partText.GetString());
            }
            else if (type == "image_url" && images is not null && part.TryGetProperty("image_url", out var image)
                && image.TryGetProperty("url", out var url) && url.GetString() is { } dataUrl
                && dataUrl.StartsWith("data:", StringComparison.Ordinal) && dataUrl.IndexOf(',', StringComparison.Ordinal) is > 0 and var comma)
            {
                images.Add(dataUrl[(comma + 1)..]);
            }
        }

        return text.ToString();
    }

    private static void WriteFormat(Utf8JsonWriter writer, JsonElement root)
    {
        if (!root.TryGetProperty("response_format", out var format) || !format.TryGetProperty("type", out var type))
        {
            return;
        }

        if (type.GetString() == "json_object")
        {
            writer.WriteString("format", "json");
        }
        else if (type.GetString() == "json_schema" && format.TryGetProperty("json_schema", out var schema) && schema.TryGetProperty("schema", out var body))
        {
            writer.WritePropertyName("format");
            body.WriteTo(writer);
        }
    }

    private static void WriteOptions(Utf8JsonWriter writer, JsonElement root, InferenceRequest request)
    {
        writer.WriteStartObject("options");
        foreach (var (from, to) in new[] { ("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed"), ("frequency_penalty", "frequency_penalty"), ("presence_penalty", "presence_penalty") })
        {
            if (root.TryGetProperty(from, out var value) && value.ValueKind == JsonValueKind.Number)
            {
                writer.WritePropertyName(to);
                value.WriteTo(writer);
            }
        }

        if (request.MaxTokens is { } maxTokens)
        {
            writer.WriteNumber("num_predict", maxTokens);
        }

        if (root.TryGetProperty("stop", out var stop))
        {
            writer.WriteStartArray("stop");
            if (stop.ValueKind == JsonValueKind.String)
            {
                writer.WriteStringValue(stop.GetString());
            }
            else if (stop.ValueKind == JsonValueKind.Array)
            {
                foreach (var s in stop.EnumerateArray())
                {
                    writer.WriteStringValue(s.GetString());
                }
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }

    private static void Authorize(HttpRequestMessage message, ProviderOptions provider)
    {
        if (!string.IsNullOrEmpty(provider.ApiKey))
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", provider.ApiKey);
        }
    }

    private static bool TryReadLine(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> line)
    {
        var position = buffer.PositionOf((byte)'\n');
        if (position is null)
        {
            line = default;
            return false;
        }

        line = buffer.Slice(0, position.Value);
        buffer = buffer.Slice(buffer.GetPosition(1, position.Value));
        return true;
    }

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "…";
}
