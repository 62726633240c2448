using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace GoblinAspire.Gateway.Responses;

/// <summary>One output item of a response built from a chat answer: an assistant message or a function call.</summary>
public sealed class OutputItem
{
    private OutputItem(string type, string id)
    {
        Type = type;
        Id = id;
    }

    public string Type { get; }

    public string Id { get; }

    public string Status { get; set; } = "in_progress";

    /// <summary>The message's text, or the call's arguments.</summary>
    public StringBuilder Content { get; } = new();

    public string? CallId { get; private init; }

    public string? Name { get; private init; }

    public static OutputItem Message() => new("message", ResponseIds.New("msg"));

    public static OutputItem FunctionCall(string? callId, string? name) =>
        new("function_call", ResponseIds.New("fc")) { CallId = string.IsNullOrEmpty(callId) ? ResponseIds.New("call") : callId, Name = name ?? "" };

    /// <param name="withContent">False for the <c>output_item.added</c> event, which announces an empty item.</param>
    public void WriteTo(Utf8JsonWriter writer, bool withContent = true)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteString("id", Id);
        writer.WriteString("type", Type);
        writer.WriteString("status", Status);
        if (Type == "message")
        {
            writer.WriteString("role", "assistant");
            writer.WriteStartArray("content");
            if (withContent)
            {
                WriteTextPart(writer, Content.ToString());
            }

            writer.WriteEndArray();
        }
        else
        {
            writer.WriteString("call_id", CallId);
            writer.WriteString("name", Name);
            writer.WriteString("arguments", withContent ? Content.ToString() : "");
        }

        writer.WriteEndObject();
    }

    public static void WriteTextPart(Utf8JsonWriter writer, string text)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteString("type", "output_text");
        writer.WriteString("text", text);
        writer.WriteStartArray("annotations");
        writer.WriteEndArray();
        writer.WriteStartArray("logprobs");
        writer.WriteEndArray();
        writer.WriteEndObject();
    }
}

/// <summary>
/// The response object the gateway writes for a provider that answered in chat completions: OpenAI's fields, with the
/// request's settings echoed as OpenAI echoes them.
/// </summary>
public sealed class ResponseDraft(ResponsesRequest request, string model, long createdAt)
{
    public string Id { get; } = ResponseIds.New("resp");

    public string Status { get; set; } = "in_progress";

    public List<OutputItem> Output { get; } = [];

    public long? InputTokens { get; set; }

    public long? OutputTokens { get; set; }

    /// <summary>Why the answer stopped short (<c>max_output_tokens</c>, <c>content_filter</c>), for status incomplete.</summary>
    public string? IncompleteReason { get; set; }

    public string? ErrorMessage { get; set; }

    /// <summary>Sets the status from chat's finish reason.</summary>
    public void Finish(string? finishReason)
    {
        foreach (var item in Output)
        {
            item.Status = "completed";
        }

        IncompleteReason = finishReason switch
        {
            "length" => "max_output_tokens",
            "content_filter" => "content_filter",
            _ => null,
        };
        Status = IncompleteReason is null ? "completed" : "incomplete";
    }

    public void WriteTo(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var body = request.Body;
        writer.WriteStartObject();
        writer.WriteString("id", Id);
        writer.WriteString("object", "response");
        writer.WriteNumber("created_at", createdAt);
        writer.WriteString("status", Status);
        writer.WriteBoolean("background", false);
        if (ErrorMessage is null)
        {
            writer.WriteNull("error");
        }
        else
        {
            writer.WriteStartObject("error");
            writer.WriteString("code", "server_error");
            writer.WriteString("message", ErrorMessage);
            writer.WriteEndObject();
        }

        if (IncompleteReason is null)
        {
            writer.WriteNull("incomplete_details");
        }
        else
        {
            writer.WriteStartObject("incomplete_details");
            writer.WriteString("reason", IncompleteReason);
            writer.WriteEndObject();
        }

        Echo(writer, "instructions", body["instructions"], static w => w.WriteNullValue());
        Echo(writer, "max_output_tokens", body["max_output_tokens"], static w => w.WriteNullValue());
        writer.WriteString("model", model);
        writer.WriteStartArray("output");
        foreach (var item in Output)
        {
            item.WriteTo(writer);
        }

        writer.WriteEndArray();
        Echo(writer, "parallel_tool_calls", body["parallel_tool_calls"], static w => w.WriteBooleanValue(true));
        if (request.PreviousResponseId is { } previous)
        {
            writer.WriteString("previous_response_id", previous);
        }
        else
        {
            writer.WriteNull("previous_response_id");
        }

        writer.WriteStartObject("reasoning");
        writer.WriteNull("effort");
        writer.WriteNull("summary");
        writer.WriteEndObject();
        writer.WriteBoolean("store", request.Store);
        Echo(writer, "temperature", body["temperature"], static w => w.WriteNumberValue(1.0));
        Echo(writer, "text", body["text"], static w =>
        {
            w.WriteStartObject();
            w.WriteStartObject("format");
            w.WriteString("type", "text");
            w.WriteEndObject();
            w.WriteEndObject();
        });
        Echo(writer, "tool_choice", body["tool_choice"], static w => w.WriteStringValue("auto"));
        Echo(writer, "tools", body["tools"], static w =>
        {
            w.WriteStartArray();
            w.WriteEndArray();
        });
        Echo(writer, "top_p", body["top_p"], static w => w.WriteNumberValue(1.0));
        writer.WriteString("truncation", "disabled");
        if (InputTokens is null && OutputTokens is null)
        {
            writer.WriteNull("usage");
        }
        else
        {
            writer.WriteStartObject("usage");
            writer.WriteNumber("input_tokens", InputTokens ?? 0);
            writer.WriteStartObject("input_tokens_details");
            writer.WriteNumber("cached_tokens", 0);
            writer.WriteEndObject();
            writer.WriteNumber("output_tokens", OutputTokens ?? 0);
            writer.WriteStartObject("output_tokens_details");
            writer.WriteNumber("reasoning_tokens", 0);
            writer.WriteEndObject();
            writer.WriteNumber("total_tokens", (InputTokens ?? 0) + (OutputTokens ?? 0));
            writer.WriteEndObject();
        }

        Echo(writer, "user", body["user"], static w => w.WriteNullValue());
        Echo(writer, "metadata", body["metadata"], static w =>
        {
            w.WriteStartObject();
            w.WriteEndObject();
        });
        writer.WriteEndObject();
    }

    public byte[] ToJsonBytes()
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteTo(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    public JsonObject ToJsonObject() => (JsonObject)JsonNode.Parse(ToJsonBytes())!;

    private static void Echo(Utf8JsonWriter writer, string name, JsonNode? value, Action<Utf8JsonWriter> fallback)
    {
        writer.WritePropertyName(name);
        if (value is null)
        {
            fallback(writer);
        }
        else
        {
            value.WriteTo(writer);
        }
    }
}
