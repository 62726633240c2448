using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using GoblinAspire.Gateway.OpenAi;

namespace GoblinAspire.Gateway.Responses;

/// <summary>
/// A Responses API request, checked beyond what routing reads: input items, tools, <c>tool_choice</c>,
/// <c>text.format</c> and <c>metadata</c> must be in the shapes the gateway can store and translate, so a malformed
/// request is the client's 400 and never reaches a provider. Holds the conversation's input items (its own, after the
/// earlier turns once <see cref="Continue"/> has joined them in).
/// </summary>
public sealed class ResponsesRequest
{
    private const int MaxMetadataEntries = 16;

    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 128, AllowDuplicateProperties = false };

    private ResponsesRequest(JsonObject body)
    {
        Body = body;
    }

    /// <summary>The client's request as sent.</summary>
    public JsonObject Body { get; }

    public bool Store { get; private set; } = true;

    public string? PreviousResponseId { get; private set; }

    /// <summary>The input items, each with an id, as <c>input_items</c> lists them: earlier turns first once continued.</summary>
    public JsonArray Input { get; private set; } = [];

    /// <summary>Whether earlier turns were joined in, so the body sent upstream is no longer the client's.</summary>
    public bool Continued { get; private set; }

    public static ResponsesRequest? Parse(ReadOnlyMemory<byte> body, out OpenAiError? error)
    {
        error = null;
        JsonObject? root;
        try
        {
            root = JsonNode.Parse(body.Span, documentOptions: DocumentOptions) as JsonObject;
        }
        catch (JsonException)
        {
            // Routing's parse accepted the JSON, so what is left is a property named twice, which has no one meaning.
            error = new OpenAiError(StatusCodes.Status400BadRequest, "The request body names a property twice.", OpenAiError.InvalidRequest, null, "duplicate_property");
            return null;
        }

        if (root is null)
        {
            error = OpenAiError.InvalidJson();
            return null;
        }

        var request = new ResponsesRequest(root);
        error = request.Validate();
        return error is null ? request : null;
    }

    /// <summary>Joins an earlier response's conversation in front of this request's own input.</summary>
    public void Continue(JsonArray previousInput, JsonArray previousOutput)
    {
        ArgumentNullException.ThrowIfNull(previousInput);
        ArgumentNullException.ThrowIfNull(previousOutput);
        var joined = new JsonArray();
        foreach (var item in previousInput.Concat(previousOutput))
        {
            // Only items a later turn can carry as input; reasoning and the like stay with the response they came from.
            if (item is JsonObject o && TypeOf(o) is "message" or "function_call" or "function_call_output")
            {
                joined.Add(item.DeepClone());
            }
        }

        foreach (var item in Input)
        {
            joined.Add(item!.DeepClone());
        }

        Input = joined;
        Continued = true;
    }

    /// <summary>The body for a provider that speaks the Responses API: the client's, with earlier turns joined in.</summary>
    public byte[] NativeBody()
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (name, value) in Body)
            {
                if (name == "previous_response_id")
                {
                    continue;
                }

                writer.WritePropertyName(name);
                if (name == "input")
                {
                    Input.WriteTo(writer);
                }
                else
                {
                    WriteValue(writer, value);
                }
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The same request as a chat completion, for providers that only speak chat.</summary>
    public byte[] ChatBody()
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("model", (string?)Body["model"]);
            WriteMessages(writer);
            if (Body["tools"] is JsonArray { Count: > 0 } tools)
            {
                writer.WriteStartArray("tools");
                foreach (var tool in tools.OfType<JsonObject>())
                {
                    writer.WriteStartObject();
                    writer.WriteString("type", "function");
                    writer.WriteStartObject("function");
                    writer.WriteString("name", (string?)tool["name"]);
                    if (tool["description"] is JsonValue description)
                    {
                        writer.WritePropertyName("description");
                        description.WriteTo(writer);
                    }

                    writer.WritePropertyName("parameters");
                    if (tool["parameters"] is JsonObject parameters)
                    {
                        parameters.WriteTo(writer);
                    }
                    else
                    {
                        writer.WriteStartObject();
                        writer.WriteString("type", "object");
                        writer.WriteStartObject("properties");
                        writer.WriteEndObject();
                        writer.WriteEndObject();
                    }

                    if (tool["strict"] is JsonValue strict)
                    {
                        writer.WritePropertyName("strict");
                        strict.WriteTo(writer);
                    }

                    writer.WriteEndObject();
                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
                if (Body["parallel_tool_calls"] is JsonValue parallel)
                {
                    writer.WritePropertyName("parallel_tool_calls");
                    parallel.WriteTo(writer);
                }
            }

            switch (Body["tool_choice"])
            {
                case JsonValue choice:
                    writer.WritePropertyName("tool_choice");
                    choice.WriteTo(writer);
                    break;
                case JsonObject function:
                    writer.WriteStartObject("tool_choice");
                    writer.WriteString("type", "function");
                    writer.WriteStartObject("function");
                    writer.WriteString("name", (string?)function["name"]);
                    writer.WriteEndObject();
                    writer.WriteEndObject();
                    break;
            }

            if (Body["text"] is JsonObject text && text["format"] is JsonObject format)
            {
                switch ((string?)format["type"])
                {
                    case "json_object":
                        writer.WriteStartObject("response_format");
                        writer.WriteString("type", "json_object");
                        writer.WriteEndObject();
                        break;
                    case "json_schema":
                        writer.WriteStartObject("response_format");
                        writer.WriteString("type", "json_schema");
                        writer.WriteStartObject("json_schema");
                        foreach (var field in new[] { "name", "description", "schema", "strict" })
                        {
                            if (format[field] is { } value)
                            {
                                writer.WritePropertyName(field);
                                value.WriteTo(writer);
                            }
                        }

                        writer.WriteEndObject();
                        writer.WriteEndObject();
                        break;
                }
            }

            foreach (var (from, to) in new[] { ("max_output_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"), ("user", "user") })
            {
                if (Body[from] is JsonValue value)
                {
                    writer.WritePropertyName(to);
                    value.WriteTo(writer);
                }
            }

            if (Body["stream"] is JsonValue stream && stream.GetValueKind() == JsonValueKind.True)
            {
                writer.WriteBoolean("stream", true);
                // The Responses stream ends with usage, so the chat stream must carry it.
                writer.WriteStartObject("stream_options");
                writer.WriteBoolean("include_usage", true);
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private void WriteMessages(Utf8JsonWriter writer)
    {
        var messages = new List<JsonObject>();
        if (Body["instructions"] is JsonValue instructions && instructions.GetValueKind() == JsonValueKind.String)
        {
            messages.Add(new JsonObject { ["role"] = "system", ["content"] = (string?)instructions });
        }

        foreach (var item in Input.OfType<JsonObject>())
        {
            switch (TypeOf(item))
            {
                case "function_call":
                    // Calls the model made together belong to one assistant turn, after any text it wrote in that turn.
                    var call = new JsonObject
                    {
                        ["id"] = (string?)item["call_id"],
                        ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = (string?)item["name"], ["arguments"] = (string?)item["arguments"] },
                    };
                    if (messages.Count > 0 && (string?)messages[^1]["role"] == "assistant")
                    {
                        var calls = messages[^1]["tool_calls"] as JsonArray ?? [];
                        calls.Add(call);
                        messages[^1]["tool_calls"] = calls;
                    }
                    else
                    {
                        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = new JsonArray(call) });
                    }

                    break;
                case "function_call_output":
                    messages.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = (string?)item["call_id"], ["content"] = OutputText(item["output"]) });
                    break;
                default:
                    var role = (string)item["role"]!;
                    messages.Add(new JsonObject { ["role"] = role, ["content"] = ChatContent(item["content"]) });
                    break;
            }
        }

        writer.WriteStartArray("messages");
        foreach (var message in messages)
        {
            message.WriteTo(writer);
        }

        writer.WriteEndArray();
    }

    /// <summary>Text-only content becomes one string, which every chat server accepts; images keep chat's part list.</summary>
    private static JsonNode? ChatContent(JsonNode? content)
    {
        if (content is JsonValue)
        {
            return content.DeepClone();
        }

        var parts = (JsonArray)content!;
        if (parts.All(p => (string?)p!["type"] != "input_image"))
        {
            return string.Concat(parts.Select(p => (string?)p!["text"]));
        }

        var chatParts = new JsonArray();
        foreach (var part in parts.OfType<JsonObject>())
        {
            chatParts.Add((string?)part["type"] == "input_image"
                ? new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = (string?)part["image_url"] } }
                : new JsonObject { ["type"] = "text", ["text"] = (string?)part["text"] });
        }

        return chatParts;
    }

    private static string OutputText(JsonNode? output) =>
        output is JsonArray parts ? string.Concat(parts.Select(p => (string?)p!["text"])) : (string?)output ?? "";

    private static string? TypeOf(JsonObject item) =>
        item["type"] is JsonValue type && type.GetValueKind() == JsonValueKind.String ? (string?)type : item.ContainsKey("role") ? "message" : null;

    private static void WriteValue(Utf8JsonWriter writer, JsonNode? value)
    {
        if (value is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            value.WriteTo(writer);
        }
    }

    private OpenAiError? Validate()
    {
        if (Body["store"] is JsonValue store)
        {
            Store = store.GetValueKind() != JsonValueKind.False;
        }

        if (Body["previous_response_id"] is JsonValue previous)
        {
            PreviousResponseId = (string?)previous;
            if (PreviousResponseId is not { Length: > 0 and <= 128 } || !PreviousResponseId.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
            {
                return OpenAiError.InvalidParameter("previous_response_id", "'previous_response_id' is not a valid response id.");
            }
        }

        if (Body["top_p"] is JsonValue topP && (topP.GetValueKind() != JsonValueKind.Number || topP.GetValue<double>() is < 0 or > 1))
        {
            return OpenAiError.InvalidParameter("top_p", "top_p must be between 0 and 1.");
        }

        return ValidateInput() ?? ValidateTools() ?? ValidateToolChoice() ?? ValidateText() ?? ValidateMetadata();
    }

    private OpenAiError? ValidateInput()
    {
        var input = Body["input"];
        if (input is JsonValue text)
        {
            Input = [new JsonObject
            {
                ["id"] = ResponseIds.New("msg"),
                ["type"] = "message",
                ["role"] = "user",
                ["content"] = new JsonArray(new JsonObject { ["type"] = "input_text", ["text"] = (string?)text }),
            }];
            return null;
        }

        var items = (JsonArray)input!;
        var normalized = new JsonArray();
        for (var i = 0; i < items.Count; i++)
        {
            var at = $"input[{i}]";
            if (items[i] is not JsonObject item)
            {
                return OpenAiError.InvalidParameter(at, $"Invalid type for '{at}': expected an object.");
            }

            var error = TypeOf(item) switch
            {
                "message" => ValidateMessage(item, at),
                "function_call" => RequireStrings(item, at, "call_id", "name", "arguments"),
                "function_call_output" => RequireStrings(item, at, "call_id") ?? ValidateOutput(item, at),
                null => OpenAiError.MissingParameter($"{at}.type"),
                var other => OpenAiError.InvalidParameter($"{at}.type", $"Invalid value: '{Shorten(other)}'. Supported input item types are 'message', 'function_call' and 'function_call_output'."),
            };
            if (error is not null)
            {
                return error;
            }

            normalized.Add(Normalize(item));
        }

        Input = normalized;
        return null;
    }

    /// <summary>The item as <c>input_items</c> lists it: typed, with an id, message content as parts.</summary>
    private static JsonObject Normalize(JsonObject item)
    {
        var copy = (JsonObject)item.DeepClone();
        var type = TypeOf(item)!;
        copy["type"] = type;
        // Ids are listed and paged by: a client's own id is kept only when it is a string.
        if (copy["id"] is not JsonValue id || id.GetValueKind() != JsonValueKind.String)
        {
            copy["id"] = ResponseIds.New(type switch { "message" => "msg", "function_call" => "fc", _ => "fco" });
        }

        if (type == "message" && copy["content"] is JsonValue text)
        {
            var partType = (string?)copy["role"] == "assistant" ? "output_text" : "input_text";
            copy["content"] = new JsonArray(new JsonObject { ["type"] = partType, ["text"] = (string?)text });
        }

        return copy;
    }

    private static OpenAiError? ValidateMessage(JsonObject item, string at)
    {
        if (item["role"] is not JsonValue roleValue || roleValue.GetValueKind() != JsonValueKind.String)
        {
            return OpenAiError.MissingParameter($"{at}.role");
        }

        var role = (string)roleValue!;
        if (role is not ("user" or "assistant" or "system" or "developer"))
        {
            return OpenAiError.InvalidParameter($"{at}.role", $"Invalid value: '{Shorten(role)}'. Supported values are: 'user', 'assistant', 'system' and 'developer'.");
        }

        switch (item["content"])
        {
            case JsonValue content when content.GetValueKind() == JsonValueKind.String:
                return null;
            case JsonArray { Count: > 0 } parts:
                for (var j = 0; j < parts.Count; j++)
                {
                    var partAt = $"{at}.content[{j}]";
                    if (parts[j] is not JsonObject part || part["type"] is not JsonValue partType || partType.GetValueKind() != JsonValueKind.String)
                    {
                        return OpenAiError.InvalidParameter(partAt, $"Invalid type for '{partAt}': expected an object with a 'type'.");
                    }

                    var error = (string?)partType switch
                    {
                        "input_text" or "output_text" => RequireStrings(part, partAt, "text"),
                        "input_image" when role == "user" => RequireStrings(part, partAt, "image_url"),
                        var other => OpenAiError.InvalidParameter($"{partAt}.type", $"Invalid value: '{Shorten(other ?? "")}'. Supported content types are 'input_text', 'output_text' and, for user messages, 'input_image' with an image_url."),
                    };
                    if (error is not null)
                    {
                        return error;
                    }
                }

                return null;
            case null:
                return OpenAiError.MissingParameter($"{at}.content");
            default:
                return OpenAiError.InvalidParameter($"{at}.content", $"Invalid type for '{at}.content': expected a string or a non-empty array of content parts.");
        }
    }

    private static OpenAiError? ValidateOutput(JsonObject item, string at)
    {
        switch (item["output"])
        {
            case JsonValue output when output.GetValueKind() == JsonValueKind.String:
                return null;
            case JsonArray parts when parts.All(p => p is JsonObject part && (string?)part["type"] is "input_text" or "output_text" && part["text"] is JsonValue t && t.GetValueKind() == JsonValueKind.String):
                return null;
            case null:
                return OpenAiError.MissingParameter($"{at}.output");
            default:
                return OpenAiError.InvalidParameter($"{at}.output", $"Invalid type for '{at}.output': expected a string.");
        }
    }

    private OpenAiError? ValidateTools()
    {
        if (Body["tools"] is not JsonArray tools)
        {
            return null;
        }

        for (var i = 0; i < tools.Count; i++)
        {
            var at = $"tools[{i}]";
            if (tools[i] is not JsonObject tool)
            {
                return OpenAiError.InvalidParameter(at, $"Invalid type for '{at}': expected an object.");
            }

            if (tool["type"] is not JsonValue type || type.GetValueKind() != JsonValueKind.String || (string?)type != "function")
            {
                return OpenAiError.InvalidParameter($"{at}.type", "Only tools of type 'function' are supported.");
            }

            if (RequireStrings(tool, at, "name") is { } error)
            {
                return error;
            }

            if (!IsName((string)tool["name"]!))
            {
                return OpenAiError.InvalidParameter($"{at}.name", "A function name must be 1 to 64 letters, digits, underscores or dashes.");
            }

            if (tool["parameters"] is { } parameters && parameters is not JsonObject)
            {
                return OpenAiError.InvalidParameter($"{at}.parameters", $"Invalid type for '{at}.parameters': expected an object.");
            }

            if (tool["description"] is { } description && (description is not JsonValue d || d.GetValueKind() != JsonValueKind.String))
            {
                return OpenAiError.InvalidParameter($"{at}.description", $"Invalid type for '{at}.description': expected a string.");
            }

            if (tool["strict"] is { } strict && (strict is not JsonValue s || s.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False)))
            {
                return OpenAiError.InvalidParameter($"{at}.strict", $"Invalid type for '{at}.strict': expected a boolean.");
            }
        }

        return null;
    }

    private OpenAiError? ValidateToolChoice()
    {
        switch (Body["tool_choice"])
        {
            case null:
                return null;
            case JsonValue choice:
                return (string?)choice is "none" or "auto" or "required"
                    ? null
                    : OpenAiError.InvalidParameter("tool_choice", "Invalid value for 'tool_choice': use 'none', 'auto', 'required' or {\"type\":\"function\",\"name\":…}.");
            case JsonObject function when function["type"] is JsonValue type && type.GetValueKind() == JsonValueKind.String && (string?)type == "function":
                return RequireStrings(function, "tool_choice", "name");
            default:
                return OpenAiError.InvalidParameter("tool_choice.type", "Only a tool_choice of type 'function' is supported.");
        }
    }

    private OpenAiError? ValidateText()
    {
        if (Body["text"] is not JsonObject text || text["format"] is null)
        {
            return null;
        }

        if (text["format"] is not JsonObject format || format["type"] is not JsonValue type || type.GetValueKind() != JsonValueKind.String)
        {
            return OpenAiError.InvalidParameter("text.format", "Invalid type for 'text.format': expected an object with a 'type'.");
        }

        switch ((string?)type)
        {
            case "text" or "json_object":
                return null;
            case "json_schema":
                if (RequireStrings(format, "text.format", "name") is { } error)
                {
                    return error;
                }

                if (!IsName((string)format["name"]!))
                {
                    return OpenAiError.InvalidParameter("text.format.name", "A schema name must be 1 to 64 letters, digits, underscores or dashes.");
                }

                return format["schema"] is JsonObject
                    ? null
                    : OpenAiError.InvalidParameter("text.format.schema", "Invalid type for 'text.format.schema': expected an object.");
            default:
                return OpenAiError.InvalidParameter("text.format.type", "Invalid value for 'text.format.type': use 'text', 'json_object' or 'json_schema'.");
        }
    }

    private OpenAiError? ValidateMetadata()
    {
        if (Body["metadata"] is not JsonObject metadata)
        {
            return null;
        }

        if (metadata.Count > MaxMetadataEntries)
        {
            return OpenAiError.InvalidParameter("metadata", $"'metadata' may hold at most {MaxMetadataEntries} pairs.");
        }

        foreach (var (name, value) in metadata)
        {
            if (name.Length > 64 || value is not JsonValue v || v.GetValueKind() != JsonValueKind.String || ((string?)v)!.Length > 512)
            {
                return OpenAiError.InvalidParameter("metadata", "'metadata' values must be strings of at most 512 characters, under keys of at most 64.");
            }
        }

        return null;
    }

    private static OpenAiError? RequireStrings(JsonObject item, string at, params string[] names)
    {
        foreach (var name in names)
        {
            switch (item[name])
            {
                case null:
                    return OpenAiError.MissingParameter($"{at}.{name}");
                case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                    continue;
                default:
                    return OpenAiError.InvalidParameter($"{at}.{name}", $"Invalid type for '{at}.{name}': expected a string.");
            }
        }

        return null;
    }

    private static bool IsName(string name) => name.Length is > 0 and <= 64 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-');

    /// <summary>Client text echoed in an error, kept short.</summary>
    private static string Shorten(string value) => value.Length <= 40 ? value : value[..40] + "…";
}
