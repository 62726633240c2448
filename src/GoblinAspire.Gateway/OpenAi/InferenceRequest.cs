using System.Text;
using System.Text.Json;

namespace GoblinAspire.Gateway.OpenAi;

/// <summary>
/// What routing needs from a request body, read in one forward pass without building a document: the model (and
/// where its value sits, so it can be swapped without re-serialising), the streaming flags, max_tokens, whether tools
/// are present. Every other field stays as raw bytes and reaches the provider untouched.
/// </summary>
public sealed class InferenceRequest
{
    private InferenceRequest(ReadOnlyMemory<byte> body, InferenceOperation operation)
    {
        Body = body;
        Operation = operation;
    }

    public ReadOnlyMemory<byte> Body { get; }

    public InferenceOperation Operation { get; }

    public string Model { get; private set; } = "";

    /// <summary>Byte range of the model's JSON string token, quotes included.</summary>
    public Range ModelToken { get; private set; }

    public bool Stream { get; private set; }

    public bool IncludeUsage { get; private set; }

    public int? MaxTokens { get; private set; }

    public bool HasTools { get; private set; }

    public double? Temperature { get; private set; }

    /// <summary>A rough prompt size for cost and context checks: about four bytes of JSON per token.</summary>
    public int EstimatedPromptTokens => Math.Max(1, Body.Length / 4);

    /// <summary>Parses <paramref name="body"/>; returns null and an OpenAI-shaped error when it is not acceptable.</summary>
    public static InferenceRequest? Parse(ReadOnlyMemory<byte> body, InferenceOperation operation, out OpenAiError? error)
    {
        var request = new InferenceRequest(body, operation);
        error = null;
        // The reader checks JSON's structure, not the bytes inside strings: a provider that decodes them would answer
        // 500 for the client's own bad bytes, and that 500 would count against the provider.
        if (!System.Text.Unicode.Utf8.IsValid(body.Span))
        {
            error = new OpenAiError(StatusCodes.Status400BadRequest, "The request body is not valid UTF-8.", OpenAiError.InvalidRequest, null, "invalid_encoding");
            return null;
        }

        var sawPayload = false;
        var reader = new Utf8JsonReader(body.Span, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 128 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                error = OpenAiError.InvalidJson();
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.ValueSpan;
                if (IsNotText(ref reader))
                {
                    error = NotText();
                    return null;
                }

                reader.Read();
                if (WrongType(name, reader.TokenType) is { } expected)
                {
                    var field = Encoding.UTF8.GetString(name);
                    error = OpenAiError.InvalidParameter(field, $"Invalid type for '{field}': expected {expected}.");
                    return null;
                }

                if (name.SequenceEqual("model"u8))
                {
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        error = OpenAiError.InvalidParameter("model", "'model' must be a string.");
                        return null;
                    }

                    request.Model = reader.GetString()!;
                    var start = (int)reader.TokenStartIndex;
                    request.ModelToken = new Range(start, start + reader.ValueSpan.Length + 2);
                }
                else if (name.SequenceEqual("stream"u8))
                {
                    request.Stream = reader.TokenType == JsonTokenType.True;
                }
                else if (name.SequenceEqual("stream_options"u8) && reader.TokenType == JsonTokenType.StartObject)
                {
                    request.IncludeUsage = ReadIncludeUsage(ref reader);
                }
                else if ((name.SequenceEqual("max_tokens"u8) || name.SequenceEqual("max_completion_tokens"u8) || name.SequenceEqual("max_output_tokens"u8)) && reader.TokenType == JsonTokenType.Number)
                {
                    if (!reader.TryGetInt32(out var maxTokens) || maxTokens < 1)
                    {
                        var field = Encoding.UTF8.GetString(name);
                        error = OpenAiError.InvalidParameter(field, $"{field} must be a positive integer.");
                        return null;
                    }

                    request.MaxTokens = maxTokens;
                }
                else if (name.SequenceEqual("temperature"u8) && reader.TokenType == JsonTokenType.Number)
                {
                    request.Temperature = reader.GetDouble();
                    if (request.Temperature is < 0 or > 2)
                    {
                        error = OpenAiError.InvalidParameter("temperature", "temperature must be between 0 and 2.");
                        return null;
                    }
                }
                else if (name.SequenceEqual("tools"u8) || name.SequenceEqual("functions"u8))
                {
                    request.HasTools |= reader.TokenType == JsonTokenType.StartArray && !IsEmptyArray(ref reader);
                }
                else if (IsPayload(name, operation))
                {
                    if (!CheckPayload(ref reader, operation, out error))
                    {
                        return null;
                    }

                    sawPayload = true;
                }

                if (!SkipValue(ref reader))
                {
                    error = NotText();
                    return null;
                }
            }

            // Reading to the end validates everything after the last property too.
            while (reader.Read())
            {
                if (IsNotText(ref reader))
                {
                    error = NotText();
                    return null;
                }
            }
        }
        catch (JsonException)
        {
            error = OpenAiError.InvalidJson();
            return null;
        }
        catch (InvalidOperationException)
        {
            // GetString on a value whose escapes do not make text.
            error = NotText();
            return null;
        }

        if (request.Model.Length == 0)
        {
            error = request.ModelToken.Equals(default(Range))
                ? new OpenAiError(StatusCodes.Status400BadRequest, "you must provide a model parameter", OpenAiError.InvalidRequest, "model", "missing_required_parameter")
                : OpenAiError.InvalidParameter("model", "'model' must not be empty.");
            return null;
        }

        if (!sawPayload)
        {
            error = OpenAiError.MissingParameter(PayloadName(operation));
            return null;
        }

        return request;
    }

    /// <summary>The body with the model name replaced, for providers that know the model under another name.</summary>
    public ReadOnlyMemory<byte> BodyWithModel(string upstreamModel)
    {
        if (upstreamModel == Model)
        {
            return Body;
        }

        var (offset, length) = ModelToken.GetOffsetAndLength(Body.Length);
        var encoded = JsonEncodedText.Encode(upstreamModel);
        var quotedLength = encoded.EncodedUtf8Bytes.Length + 2;
        var result = new byte[Body.Length - length + quotedLength];
        Body.Span[..offset].CopyTo(result);
        result[offset] = (byte)'"';
        encoded.EncodedUtf8Bytes.CopyTo(result.AsSpan(offset + 1));
        result[offset + quotedLength - 1] = (byte)'"';
        Body.Span[(offset + length)..].CopyTo(result.AsSpan(offset + quotedLength));
        return result;
    }

    private static bool IsPayload(ReadOnlySpan<byte> name, InferenceOperation operation) => operation switch
    {
        InferenceOperation.Chat => name.SequenceEqual("messages"u8),
        InferenceOperation.Completions => name.SequenceEqual("prompt"u8),
        _ => name.SequenceEqual("input"u8),
    };

    private static string PayloadName(InferenceOperation operation) => operation switch
    {
        InferenceOperation.Chat => "messages",
        InferenceOperation.Completions => "prompt",
        _ => "input",
    };

    /// <summary>
    /// The JSON kind OpenAI documents for a field, when <paramref name="token"/> is not it (null is allowed for every
    /// optional field); null when the field is unknown here or its kind is right. OpenAI answers these with 400.
    /// </summary>
    private static string? WrongType(ReadOnlySpan<byte> name, JsonTokenType token)
    {
        if (token == JsonTokenType.Null)
        {
            return null;
        }

        var number = token == JsonTokenType.Number;
        var boolean = token is JsonTokenType.True or JsonTokenType.False;
        return name switch
        {
            _ when name.SequenceEqual("stream"u8) || name.SequenceEqual("parallel_tool_calls"u8) || name.SequenceEqual("store"u8) || name.SequenceEqual("echo"u8) => boolean ? null : "a boolean",
            _ when name.SequenceEqual("max_tokens"u8) || name.SequenceEqual("max_completion_tokens"u8) || name.SequenceEqual("max_output_tokens"u8) || name.SequenceEqual("n"u8) || name.SequenceEqual("seed"u8)
                || name.SequenceEqual("top_logprobs"u8) || name.SequenceEqual("best_of"u8) || name.SequenceEqual("dimensions"u8)
                || name.SequenceEqual("temperature"u8) || name.SequenceEqual("top_p"u8) || name.SequenceEqual("presence_penalty"u8) || name.SequenceEqual("frequency_penalty"u8) => number ? null : "a number",
            _ when name.SequenceEqual("user"u8) || name.SequenceEqual("encoding_format"u8) || name.SequenceEqual("suffix"u8)
                || name.SequenceEqual("instructions"u8) || name.SequenceEqual("previous_response_id"u8) => token == JsonTokenType.String ? null : "a string",
            _ when name.SequenceEqual("stream_options"u8) || name.SequenceEqual("logit_bias"u8) || name.SequenceEqual("metadata"u8) || name.SequenceEqual("response_format"u8)
                || name.SequenceEqual("text"u8) => token == JsonTokenType.StartObject ? null : "an object",
            _ when name.SequenceEqual("tools"u8) || name.SequenceEqual("functions"u8) => token == JsonTokenType.StartArray ? null : "an array",
            _ when name.SequenceEqual("stop"u8) => token is JsonTokenType.String or JsonTokenType.StartArray ? null : "a string or an array of strings",
            _ when name.SequenceEqual("tool_choice"u8) => token is JsonTokenType.String or JsonTokenType.StartObject ? null : "a string or an object",
            _ => null,
        };
    }

    private static bool CheckPayload(ref Utf8JsonReader reader, InferenceOperation operation, out OpenAiError? error)
    {
        error = null;
        var name = PayloadName(operation);
        var ok = operation switch
        {
            InferenceOperation.Chat => reader.TokenType == JsonTokenType.StartArray,
            _ => reader.TokenType is JsonTokenType.StartArray or JsonTokenType.String,
        };
        if (!ok)
        {
            error = OpenAiError.InvalidParameter(name, operation == InferenceOperation.Chat
                ? "'messages' must be an array of message objects."
                : $"'{name}' must be a string or an array.");
            return false;
        }

        if (reader.TokenType == JsonTokenType.StartArray && IsEmptyArray(ref reader))
        {
            error = OpenAiError.InvalidParameter(name, $"'{name}' must not be empty.");
            return false;
        }

        return true;
    }

    /// <summary>
    /// Skips the current value as <see cref="Utf8JsonReader.Skip"/> does, but refuses a string whose escapes do not
    /// make text (<c>"\ud800"</c>): valid JSON that a provider decoding it would answer with a 500, counted against it.
    /// </summary>
    private static bool SkipValue(ref Utf8JsonReader reader)
    {
        if (reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
        {
            return !IsNotText(ref reader);
        }

        var depth = reader.CurrentDepth;
        while (reader.Read() && reader.CurrentDepth > depth)
        {
            if (IsNotText(ref reader))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsNotText(ref Utf8JsonReader reader)
    {
        if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName) || !reader.ValueIsEscaped)
        {
            return false;
        }

        // On the request path for nearly every chat (content with a newline or a quote is escaped): unescape into a
        // pooled buffer rather than allocate a string only to drop it. Unescaped text is never longer than its bytes.
        var buffer = System.Buffers.ArrayPool<char>.Shared.Rent(reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length);
        try
        {
            _ = reader.CopyString(buffer);
            return false;
        }
        catch (InvalidOperationException)
        {
            return true;
        }
        finally
        {
            System.Buffers.ArrayPool<char>.Shared.Return(buffer);
        }
    }

    private static OpenAiError NotText() => new(
        StatusCodes.Status400BadRequest, "The request body holds a string that is not valid Unicode (a lone surrogate escape).", OpenAiError.InvalidRequest, null, "invalid_encoding");

    private static bool IsEmptyArray(ref Utf8JsonReader reader)
    {
        var copy = reader;
        return copy.Read() && copy.TokenType == JsonTokenType.EndArray;
    }

    private static bool ReadIncludeUsage(ref Utf8JsonReader reader)
    {
        var copy = reader;
        var depth = copy.CurrentDepth;
        while (copy.Read() && copy.CurrentDepth > depth)
        {
            if (copy.TokenType == JsonTokenType.PropertyName && copy.CurrentDepth == depth + 1 && copy.ValueSpan.SequenceEqual("include_usage"u8))
            {
                copy.Read();
                return copy.TokenType == JsonTokenType.True;
            }
        }

        return false;
    }
}
