using System.Text.Json;
using GoblinAspire.ChatFallback.Chat;
using GoblinAspire.ChatFallback.Inference;

namespace GoblinAspire.ChatFallback.Api;

/// <summary>An error in OpenAI's shape: <c>{"error":{"message","type","param","code"}}</c>.</summary>
public sealed class OpenAiException(int status, string message, string type = "invalid_request_error", string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;

    /// <summary>The error for a status the framework set without a body: no route, a wrong method.</summary>
    public static OpenAiException ForStatus(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var path = string.Concat(http.Request.Path.Value?.Where(c => !char.IsControl(c) && !char.IsSurrogate(c)) ?? []);
        path = path.Length > 200 ? path[..200] + "…" : path;
        var status = http.Response.StatusCode;
        return status switch
        {
            StatusCodes.Status404NotFound => new(status, $"Invalid URL ({http.Request.Method} {path})", code: "unknown_url"),
            StatusCodes.Status405MethodNotAllowed => new(status, $"Method {http.Request.Method} is not allowed for {path}.", code: "method_not_allowed"),
            >= 500 => new(status, "The server could not answer this request.", "server_error"),
            _ => new(status, $"The request could not be served (HTTP {status})."),
        };
    }

    public async Task WriteAsync(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.StatusCode = Status;
        response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteStartObject("error");
        writer.WriteString("message", Message);
        writer.WriteString("type", type);
        writer.WriteString("param", param);
        writer.WriteString("code", code);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }
}

/// <summary>The fields of a chat or text completion request this service honours, validated.</summary>
public sealed record CompletionRequest(
    string? Model,
    IReadOnlyList<ChatMessage>? Messages,
    string? Prompt,
    bool Stream,
    bool IncludeUsage,
    int? MaxTokens,
    SamplingOptions Sampling,
    IReadOnlyList<string> Stop)
{
    public static CompletionRequest Parse(JsonElement json, bool chat)
    {
        if (json.ValueKind != JsonValueKind.Object)
        {
            throw Invalid("The request body must be a JSON object.", null);
        }

        IReadOnlyList<ChatMessage>? messages = null;
        string? prompt = null;
        if (chat)
        {
            if (!json.TryGetProperty("messages", out var list) || list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
            {
                throw Invalid("'messages' must be a non-empty array.", "messages");
            }

            messages = list.EnumerateArray().Select((m, i) => Message(m, i)).ToList();
        }
        else
        {
            prompt = json.TryGetProperty("prompt", out var p) ? p.ValueKind switch
            {
                JsonValueKind.String => p.GetString(),
                JsonValueKind.Array when p.GetArrayLength() == 1 && p[0].ValueKind == JsonValueKind.String => p[0].GetString(),
                _ => throw Invalid("'prompt' must be a string.", "prompt"),
            } : throw Invalid("'prompt' is required.", "prompt");
        }

        if (Number(json, "n") is { } n && n != 1)
        {
            throw Invalid("Only n=1 is supported.", "n");
        }

        var stop = new List<string>();
        if (json.TryGetProperty("stop", out var stopJson) && stopJson.ValueKind != JsonValueKind.Null)
        {
            if (stopJson.ValueKind == JsonValueKind.String)
            {
                stop.Add(stopJson.GetString()!);
            }
            else if (stopJson.ValueKind == JsonValueKind.Array && stopJson.GetArrayLength() <= 4 && stopJson.EnumerateArray().All(s => s.ValueKind == JsonValueKind.String))
            {
                stop.AddRange(stopJson.EnumerateArray().Select(s => s.GetString()!));
            }
            else
            {
                throw Invalid("'stop' must be a string or an array of at most 4 strings.", "stop");
            }
        }

        var maxTokens = Number(json, "max_completion_tokens") ?? Number(json, "max_tokens");
        if (maxTokens is <= 0 or > 131_072)
        {
            throw Invalid("'max_tokens' must be between 1 and 131072.", "max_tokens");
        }

        var temperature = Real(json, "temperature") ?? 1;
        var topP = Real(json, "top_p") ?? 1;
        var topK = Number(json, "top_k") ?? 40;
        var penalty = Real(json, "repetition_penalty") ?? Real(json, "repeat_penalty") ?? 1;
        if (temperature is < 0 or > 2)
        {
            throw Invalid("'temperature' must be between 0 and 2.", "temperature");
        }

        if (topP is <= 0 or > 1)
        {
            throw Invalid("'top_p' must be greater than 0 and at most 1.", "top_p");
        }

        if (topK < 0 || penalty is <= 0 or > 10)
        {
            throw Invalid("'top_k' must be at least 0 and 'repetition_penalty' between 0 and 10.", "top_k");
        }

        var stream = json.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        var includeUsage = json.TryGetProperty("stream_options", out var options) && options.ValueKind == JsonValueKind.Object
            && options.TryGetProperty("include_usage", out var usage) && usage.ValueKind == JsonValueKind.True;
        var seed = Number(json, "seed");
        return new CompletionRequest(
            json.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.String ? model.GetString() : null,
            messages,
            prompt,
            stream,
            includeUsage,
            maxTokens,
            new SamplingOptions((float)temperature, (float)topP, topK, (float)penalty, Seed: seed),
            stop);
    }

    private static ChatMessage Message(JsonElement message, int index)
    {
        if (message.ValueKind != JsonValueKind.Object || !message.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
        {
            throw Invalid($"messages[{index}] needs a 'role'.", $"messages[{index}].role");
        }

        var name = role.GetString()!;
        if (name is not ("system" or "user" or "assistant" or "developer" or "tool"))
        {
            throw Invalid($"messages[{index}].role '{name}' is not one of system, developer, user, assistant, tool.", $"messages[{index}].role");
        }

        var content = message.TryGetProperty("content", out var c) ? c.ValueKind switch
        {
            JsonValueKind.String => c.GetString()!,
            JsonValueKind.Null => "",
            JsonValueKind.Array => string.Concat(c.EnumerateArray().Select(part =>
                part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var t) && t.GetString() == "text" && part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String
                    ? text.GetString()
                    : throw Invalid($"messages[{index}].content: only text parts are supported.", $"messages[{index}].content"))),
            _ => throw Invalid($"messages[{index}].content must be a string or an array of text parts.", $"messages[{index}].content"),
        } : "";
        return new ChatMessage(name == "developer" ? "system" : name, content);
    }

    private static int? Number(JsonElement json, string name) =>
        json.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number) ? number : throw Invalid($"'{name}' must be an integer.", name)
            : null;

    private static double? Real(JsonElement json, string name) =>
        json.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw Invalid($"'{name}' must be a number.", name)
            : null;

    private static OpenAiException Invalid(string message, string? param) => new(400, message, param: param);
}
