using System.IO.Pipelines;
using System.Text.Json;
using GoblinAspire.Gateway.OpenAi;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Protocols;

/// <summary>
/// Anthropic's Messages API (<c>POST /v1/messages</c>, <c>x-api-key</c>, <c>anthropic-version</c>), translated both
/// ways: system messages, tool definitions, tool calls and tool results, stop reasons, usage, and the streaming
/// events (<c>message_start</c>, <c>content_block_*</c>, <c>message_delta</c>, <c>message_stop</c>, <c>error</c>).
/// </summary>
public sealed class AnthropicProtocol(IOptions<GatewayOptions> options, TimeProvider time) : IProviderProtocol
{
    public const string DefaultBaseUrl = "https://api.anthropic.com";
    public const string ApiVersion = "2023-06-01";

    /// <summary>Anthropic requires max_tokens; OpenAI does not. This is what the gateway asks for when none is given.</summary>
    public const int DefaultMaxTokens = 4096;

    private readonly long _maxResponseBytes = options.Value.MaxUpstreamResponseBytes;

    public string System => "anthropic";

    public HttpRequestMessage CreateRequest(ProviderOptions provider, string upstreamModel, InferenceRequest request)
    {
        ArgumentNullException.ThrowIfNull(provider);
        ArgumentNullException.ThrowIfNull(request);
        using var document = JsonDocument.Parse(request.Body);
        var root = document.RootElement;
        var message = UpstreamBody.JsonPost(UpstreamUrls.Combine(provider.BaseUrl ?? DefaultBaseUrl, "/v1", "/messages"), request.Body.Length + 256, writer =>
        {
            writer.WriteString("model", upstreamModel);
            writer.WriteNumber("max_tokens", request.MaxTokens ?? DefaultMaxTokens);
            WriteSystemAndMessages(writer, root.GetProperty("messages"));
            if (request.Stream)
            {
                writer.WriteBoolean("stream", true);
            }

            foreach (var name in new[] { "temperature", "top_p", "top_k" })
            {
                if (root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number)
                {
                    writer.WritePropertyName(name);
                    value.WriteTo(writer);
                }
            }

            if (root.TryGetProperty("stop", out var stop) && stop.ValueKind is JsonValueKind.String or JsonValueKind.Array)
            {
                writer.WriteStartArray("stop_sequences");
                foreach (var sequence in stop.ValueKind == JsonValueKind.String ? [stop] : stop.EnumerateArray().ToArray())
                {
                    writer.WriteStringValue(sequence.GetString());
                }

                writer.WriteEndArray();
            }

            WriteTools(writer, root);
            if (root.TryGetProperty("user", out var user) && user.ValueKind == JsonValueKind.String)
            {
                writer.WriteStartObject("metadata");
                writer.WriteString("user_id", user.GetString());
                writer.WriteEndObject();
            }

        });
        Authorize(message, provider);
        return message;
    }

    public HttpRequestMessage? CreateProbe(ProviderOptions provider)
    {
        ArgumentNullException.ThrowIfNull(provider);
        var message = new HttpRequestMessage(HttpMethod.Get, UpstreamUrls.Combine(provider.BaseUrl ?? DefaultBaseUrl, "/v1", "/models"));
        Authorize(message, provider);
        return message;
    }

    public async Task RelayAsync(HttpResponseMessage upstream, IClientAnswer relay, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        ArgumentNullException.ThrowIfNull(relay);
        var writer = new OpenAiStreamWriter(relay, "chatcmpl-", time.GetUtcNow().ToUnixTimeSeconds());
        if (!relay.Request.Stream)
        {
            var body = await UpstreamBody.ReadAsync(upstream, _maxResponseBytes, cancellationToken);
            using var document = UpstreamBody.ParseJson(body);
            var root = document.RootElement;
            ReadUsage(root, relay);
            relay.ResponseModel = root.TryGetProperty("model", out var model) ? model.GetString() : null;
            string? text = null;
            var calls = new List<ToolCall>();
            foreach (var block in root.GetProperty("content").EnumerateArray())
            {
                switch (block.GetProperty("type").GetString())
                {
                    case "text":
                        text = (text ?? "") + block.GetProperty("text").GetString();
                        break;
                    case "tool_use":
                        calls.Add(new ToolCall(block.GetProperty("id").GetString()!, block.GetProperty("name").GetString()!, block.GetProperty("input").GetRawText()));
                        break;
                }
            }

            var stopReason = root.TryGetProperty("stop_reason", out var reason) ? reason.GetString() : null;
            await writer.WriteCompletionAsync(text, calls, OpenAiStreamWriter.FinishReasonOf(stopReason, calls.Count > 0), cancellationToken);
            return;
        }

        var stream = await upstream.Content.ReadAsStreamAsync(cancellationToken);
        var events = new SseReader(PipeReader.Create(stream));
        var toolIndexByBlock = new Dictionary<int, int>();
        string? finishReason = null;
        while (await UpstreamBody.NextEventAsync(events, cancellationToken) is { } sseEvent)
        {
            var data = SseReader.Data(sseEvent, out _);
            if (data.Length == 0)
            {
                continue;
            }

            using var document = UpstreamBody.ParseJson(data);
            var root = document.RootElement;
            switch (root.GetProperty("type").GetString())
            {
                case "message_start":
                    var message = root.GetProperty("message");
                    ReadUsage(message, relay);
                    relay.ResponseModel = message.TryGetProperty("model", out var model) ? model.GetString() : null;
                    await writer.WriteDeltaAsync("", null, cancellationToken);
                    break;
                case "content_block_start":
                    var block = root.GetProperty("content_block");
                    if (block.GetProperty("type").GetString() == "tool_use")
                    {
                        var toolIndex = toolIndexByBlock.Count;
                        toolIndexByBlock[root.GetProperty("index").GetInt32()] = toolIndex;
                        var start = new ToolCall(block.GetProperty("id").GetString()!, block.GetProperty("name").GetString()!, "");
                        await writer.WriteDeltaAsync(null, [(toolIndex, start, null)], cancellationToken);
                    }

                    break;
                case "content_block_delta":
                    var delta = root.GetProperty("delta");
                    switch (delta.GetProperty("type").GetString())
                    {
                        case "text_delta":
                            await writer.WriteDeltaAsync(delta.GetProperty("text").GetString(), null, cancellationToken);
                            break;
                        case "input_json_delta" when toolIndexByBlock.TryGetValue(root.GetProperty("index").GetInt32(), out var toolIndex):
                            await writer.WriteDeltaAsync(null, [(toolIndex, null, delta.GetProperty("partial_json").GetString())], cancellationToken);
                            break;
                    }

                    break;
                case "message_delta":
                    if (root.TryGetProperty("delta", out var messageDelta) && messageDelta.TryGetProperty("stop_reason", out var stop) && stop.ValueKind == JsonValueKind.String)
                    {
                        finishReason = OpenAiStreamWriter.FinishReasonOf(stop.GetString(), false);
                    }

                    ReadUsage(root, relay);
                    break;
                case "message_stop":
                    await writer.WriteEndAsync(finishReason ?? "stop", cancellationToken);
                    return;
                case "error":
                    var error = root.TryGetProperty("error", out var e) && e.TryGetProperty("type", out var errorType) ? errorType.GetString() : "error";
                    throw new UpstreamFault(error == "rate_limit_error" ? FailureReasons.RateLimited : FailureReasons.ServerError, $"the provider sent an error event ({error})");
            }
        }

        throw new UpstreamFault(FailureReasons.Protocol, "the provider's stream ended without message_stop");
    }

    public async Task RelayClientErrorAsync(HttpResponseMessage upstream, IClientAnswer relay, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        ArgumentNullException.ThrowIfNull(relay);
        var body = await UpstreamBody.ReadAsync(upstream, 1024 * 1024, cancellationToken);
        var status = (int)upstream.StatusCode;
        var type = OpenAiError.InvalidRequest;
        var message = $"The provider rejected the request with HTTP {status}.";
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.TryGetProperty("error", out var error))
            {
                type = error.TryGetProperty("type", out var t) && t.GetString() is { } errorType ? errorType : type;
                message = error.TryGetProperty("message", out var m) && m.GetString() is { } text ? text : message;
            }
        }
        catch (JsonException)
        {
        }

        var openAiError = new OpenAiError(status, message, type);
        await relay.CommitAsync(status, "application/json");
        await relay.Body.WriteAsync(openAiError.ToJsonBytes(), cancellationToken);
    }

    private static void WriteSystemAndMessages(Utf8JsonWriter writer, JsonElement messages)
    {
        var system = new List<string>();
        // Anthropic wants alternating user/assistant turns; consecutive same-role messages are merged, and tool
        // results travel as user turns.
        var turns = new List<(string Role, List<Action<Utf8JsonWriter>> Blocks)>();
        foreach (var message in messages.EnumerateArray())
        {
            var role = message.TryGetProperty("role", out var r) ? r.GetString() : "user";
            if (role is "system" or "developer")
            {
                system.Add(OllamaProtocol.ContentText(message, null));
                continue;
            }

            var blocks = new List<Action<Utf8JsonWriter>>();
            if (role == "tool")
            {
                var toolUseId = message.TryGetProperty("tool_call_id", out var id) ? id.GetString() : "";
                var content = OllamaProtocol.ContentText(message, null);
                blocks.Add(w =>
                {
                    w.WriteStartObject();
                    w.WriteString("type", "tool_result");
                    w.WriteString("tool_use_id", toolUseId);
                    w.WriteString("content", content);
                    w.WriteEndObject();
                });
                role = "user";
            }
            else
            {
                AddContentBlocks(message, blocks);
                if (message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
                {
                    foreach (var call in calls.EnumerateArray())
                    {
                        var callId = call.TryGetProperty("id", out var cid) ? cid.GetString() : OpenAiStreamWriter.NewToolCallId();
                        var function = call.GetProperty("function");
                        var name = function.GetProperty("name").GetString();
                        var arguments = function.TryGetProperty("arguments", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString()! : "{}";
                        blocks.Add(w =>
                        {
                            w.WriteStartObject();
                            w.WriteString("type", "tool_use");
                            w.WriteString("id", callId);
                            w.WriteString("name", name);
                            w.WritePropertyName("input");
                            UpstreamBody.WriteArgumentsObject(w, arguments);

                            w.WriteEndObject();
                        });
                    }
                }

                role = role == "assistant" ? "assistant" : "user";
            }

            if (turns.Count > 0 && turns[^1].Role == role)
            {
                turns[^1].Blocks.AddRange(blocks);
            }
            else
            {
                turns.Add((role!, blocks));
            }
        }

        if (system.Count > 0)
        {
            writer.WriteString("system", string.Join("\n\n", system));
        }

        writer.WriteStartArray("messages");
        foreach (var (role, blocks) in turns)
        {
            writer.WriteStartObject();
            writer.WriteString("role", role);
            writer.WriteStartArray("content");
            foreach (var block in blocks)
            {
                block(writer);
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private static void AddContentBlocks(JsonElement message, List<Action<Utf8JsonWriter>> blocks)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        if (content.ValueKind == JsonValueKind.String)
        {
            var text = content.GetString();
            if (!string.IsNullOrEmpty(text))
            {
                blocks.Add(w => WriteText(w, text));
            }

            return;
        }

        foreach (var part in content.EnumerateArray())
        {
            var type = part.TryGetProperty("type", out var t) ? t.GetString() : null;
            if (type == "text")
            {
                var text = part.GetProperty("text").GetString();
                blocks.Add(w => WriteText(w, text));
            }
            else if (type == "image_url" && part.TryGetProperty("image_url", out var image) && image.TryGetProperty("url", out var urlElement) && urlElement.GetString() is { } url)
            {
                blocks.Add(w =>
                {
                    w.WriteStartObject();
                    w.WriteString("type", "image");
                    w.WriteStartObject("source");
                    var comma = url.IndexOf(',', StringComparison.Ordinal);
                    if (url.StartsWith("data:", StringComparison.Ordinal) && comma > 0)
                    {
                        w.WriteString("type", "base64");
                        w.WriteString("media_type", url[5..url.IndexOf(';', StringComparison.Ordinal)]);
                        w.WriteString("data", url[(comma + 1)..]);
                    }
                    else
                    {
                        w.WriteString("type", "url");
                        w.WriteString("url", url);
                    }

                    w.WriteEndObject();
                    w.WriteEndObject();
                });
            }
        }
    }

    private static void WriteText(Utf8JsonWriter writer, string? text)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "text");
        writer.WriteString("text", text);
        writer.WriteEndObject();
    }

    private static void WriteTools(Utf8JsonWriter writer, JsonElement root)
    {
        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array)
        {
            writer.WriteStartArray("tools");
            foreach (var tool in tools.EnumerateArray())
            {
                var function = tool.GetProperty("function");
                writer.WriteStartObject();
                writer.WriteString("name", function.GetProperty("name").GetString());
                if (function.TryGetProperty("description", out var description))
                {
                    writer.WriteString("description", description.GetString());
                }

                writer.WritePropertyName("input_schema");
                if (function.TryGetProperty("parameters", out var parameters))
                {
                    parameters.WriteTo(writer);
                }
                else
                {
                    writer.WriteStartObject();
                    writer.WriteString("type", "object");
                    writer.WriteEndObject();
                }

                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        if (root.TryGetProperty("tool_choice", out var choice))
        {
            writer.WriteStartObject("tool_choice");
            if (choice.ValueKind == JsonValueKind.String)
            {
                writer.WriteString("type", choice.GetString() switch { "required" => "any", "none" => "none", _ => "auto" });
            }
            else if (choice.TryGetProperty("function", out var function))
            {
                writer.WriteString("type", "tool");
                writer.WriteString("name", function.GetProperty("name").GetString());
            }

            writer.WriteEndObject();
        }
    }

    private static void ReadUsage(JsonElement element, IClientAnswer relay)
    {
        if (!element.TryGetProperty("usage", out var usage))
        {
            return;
        }

        if (usage.TryGetProperty("input_tokens", out var input) && input.TryGetInt64(out var inputTokens))
        {
            relay.InputTokens = inputTokens;
        }

        if (usage.TryGetProperty("output_tokens", out var output) && output.TryGetInt64(out var outputTokens))
        {
            relay.OutputTokens = outputTokens;
        }
    }

    private static void Authorize(HttpRequestMessage message, ProviderOptions provider)
    {
        if (!string.IsNullOrEmpty(provider.ApiKey))
        {
            message.Headers.Add("x-api-key", provider.ApiKey);
        }

        message.Headers.Add("anthropic-version", ApiVersion);
    }
}
