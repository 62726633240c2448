using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using GoblinAspire.Gateway.OpenAi;

namespace GoblinAspire.Gateway.Protocols;

/// <summary>A tool call in OpenAI's form; <see cref="Arguments"/> is a JSON text, as OpenAI sends it.</summary>
public sealed record ToolCall(string Id, string Name, string Arguments);

/// <summary>
/// Writes OpenAI-format answers for providers whose own format differs: whole <c>chat.completion</c> and
/// <c>text_completion</c> objects, and <c>data: {chunk}</c> SSE events ending in <c>data: [DONE]</c>.
/// </summary>
public sealed class OpenAiStreamWriter(IClientAnswer relay, string idPrefix, long created)
{
    private readonly string _id = idPrefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
    private bool _roleSent;

    public string Id => _id;

    private bool IsChat => relay.Request.Operation == InferenceOperation.Chat;

    public static string NewToolCallId() => "call_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));

    public static string FinishReasonOf(string? providerReason, bool hasToolCalls) => providerReason switch
    {
        _ when hasToolCalls => "tool_calls",
        "length" or "max_tokens" => "length",
        "tool_use" or "tool_calls" => "tool_calls",
        "content_filter" or "refusal" => "content_filter",
        _ => "stop",
    };

    /// <summary>Text (and tool-call) delta; the first chunk of a chat stream also carries the role.</summary>
    public async ValueTask WriteDeltaAsync(string? text, IReadOnlyList<(int Index, ToolCall? Start, string? ArgumentsDelta)>? tools, CancellationToken cancellationToken)
    {
        await EnsureCommittedAsync();
        WriteEvent(writer =>
        {
            WriteChunkHeader(writer);
            writer.WriteStartArray("choices");
            writer.WriteStartObject();
            writer.WriteNumber("index", 0);
            if (IsChat)
            {
                writer.WriteStartObject("delta");
                if (!_roleSent)
                {
                    writer.WriteString("role", "assistant");
                    _roleSent = true;
                }

                if (text is not null)
                {
                    writer.WriteString("content", text);
                }

                if (tools is { Count: > 0 })
                {
                    writer.WriteStartArray("tool_calls");
                    foreach (var (index, start, argumentsDelta) in tools)
                    {
                        WriteToolCall(writer, index, start, argumentsDelta);
                    }

                    writer.WriteEndArray();
                }

                writer.WriteEndObject();
            }
            else
            {
                writer.WriteString("text", text ?? "");
            }

            writer.WriteNull("finish_reason");
            writer.WriteEndObject();
            writer.WriteEndArray();
            writer.WriteEndObject();
        });
        await relay.Body.FlushAsync(cancellationToken);
    }

    /// <summary>The closing chunk with the finish reason, the usage chunk when asked for, and <c>[DONE]</c>.</summary>
    public async ValueTask WriteEndAsync(string finishReason, CancellationToken cancellationToken)
    {
        await EnsureCommittedAsync();
        WriteEvent(writer =>
        {
            WriteChunkHeader(writer);
            writer.WriteStartArray("choices");
            writer.WriteStartObject();
            writer.WriteNumber("index", 0);
            if (IsChat)
            {
                writer.WriteStartObject("delta");
                writer.WriteEndObject();
            }
            else
            {
                writer.WriteString("text", "");
            }

            writer.WriteString("finish_reason", finishReason);
            writer.WriteEndObject();
            writer.WriteEndArray();
            writer.WriteEndObject();
        });

        if (relay.Request.IncludeUsage)
        {
            WriteEvent(writer =>
            {
                WriteChunkHeader(writer);
                writer.WriteStartArray("choices");
                writer.WriteEndArray();
                WriteUsage(writer, relay.InputTokens, relay.OutputTokens);
                writer.WriteEndObject();
            });
        }

        relay.Body.Write("data: [DONE]\n\n"u8);
        await relay.Body.FlushAsync(cancellationToken);
    }

    /// <summary>A whole <c>chat.completion</c> or <c>text_completion</c>.</summary>
    public async ValueTask WriteCompletionAsync(string? text, IReadOnlyList<ToolCall> toolCalls, string finishReason, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(toolCalls);
        await relay.CommitAsync(StatusCodes.Status200OK, "application/json");
        using (var writer = new Utf8JsonWriter(relay.Body))
        {
            writer.WriteStartObject();
            writer.WriteString("id", _id);
            writer.WriteString("object", IsChat ? "chat.completion" : "text_completion");
            writer.WriteNumber("created", created);
            writer.WriteString("model", relay.Request.Model);
            writer.WriteStartArray("choices");
            writer.WriteStartObject();
            writer.WriteNumber("index", 0);
            if (IsChat)
            {
                writer.WriteStartObject("message");
                writer.WriteString("role", "assistant");
                if (text is null && toolCalls.Count > 0)
                {
                    writer.WriteNull("content");
                }
                else
                {
                    writer.WriteString("content", text ?? "");
                }

                if (toolCalls.Count > 0)
                {
                    writer.WriteStartArray("tool_calls");
                    foreach (var call in toolCalls)
                    {
                        WriteToolCall(writer, null, call, null);
                    }

                    writer.WriteEndArray();
                }

                writer.WriteEndObject();
            }
            else
            {
                writer.WriteString("text", text ?? "");
                writer.WriteNull("logprobs");
            }

            writer.WriteString("finish_reason", finishReason);
            writer.WriteEndObject();
            writer.WriteEndArray();
            WriteUsage(writer, relay.InputTokens, relay.OutputTokens);
            writer.WriteEndObject();
        }

        await relay.Body.FlushAsync(cancellationToken);
    }

    public static void WriteUsage(Utf8JsonWriter writer, long? input, long? output)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject("usage");
        writer.WriteNumber("prompt_tokens", input ?? 0);
        writer.WriteNumber("completion_tokens", output ?? 0);
        writer.WriteNumber("total_tokens", (input ?? 0) + (output ?? 0));
        writer.WriteEndObject();
    }

    /// <summary>
    /// A tool call: whole (<paramref name="call"/>), the start of a streamed one (with its index), or a streamed
    /// arguments fragment (index and <paramref name="argumentsDelta"/> only).
    /// </summary>
    private static void WriteToolCall(Utf8JsonWriter writer, int? index, ToolCall? call, string? argumentsDelta)
    {
        writer.WriteStartObject();
        if (index is { } i)
        {
            writer.WriteNumber("index", i);
        }

        if (call is not null)
        {
            writer.WriteString("id", call.Id);
            writer.WriteString("type", "function");
        }

        writer.WriteStartObject("function");
        if (call is not null)
        {
            writer.WriteString("name", call.Name);
        }

        writer.WriteString("arguments", call?.Arguments ?? argumentsDelta ?? "");
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private async ValueTask EnsureCommittedAsync()
    {
        if (!relay.Committed)
        {
            await relay.CommitAsync(StatusCodes.Status200OK, "text/event-stream; charset=utf-8");
        }
    }

    private void WriteChunkHeader(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("id", _id);
        writer.WriteString("object", IsChat ? "chat.completion.chunk" : "text_completion");
        writer.WriteNumber("created", created);
        writer.WriteString("model", relay.Request.Model);
    }

    private void WriteEvent(Action<Utf8JsonWriter> write)
    {
        var body = relay.Body;
        body.Write("data: "u8);
        using (var writer = new Utf8JsonWriter(body))
        {
            write(writer);
        }

        body.Write("\n\n"u8);
    }
}
