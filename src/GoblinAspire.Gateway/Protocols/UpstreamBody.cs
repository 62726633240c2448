using System.Buffers;
using System.Text.Json;

namespace GoblinAspire.Gateway.Protocols;

internal static class UpstreamBody
{
    /// <summary>Reads a whole answer, refusing one larger than <paramref name="limit"/>. IO failures mean a reset.</summary>
    public static async Task<byte[]> ReadAsync(HttpResponseMessage upstream, long limit, CancellationToken cancellationToken)
    {
        try
        {
            if (upstream.Content.Headers.ContentLength is { } length)
            {
                if (length > limit)
                {
                    throw new UpstreamFault(FailureReasons.Protocol, $"the provider's answer ({length} bytes) is larger than the {limit}-byte limit");
                }

                var exact = new byte[length];
                await using var stream = await upstream.Content.ReadAsStreamAsync(cancellationToken);
                await stream.ReadExactlyAsync(exact, cancellationToken);
                return exact;
            }

            await using var body = await upstream.Content.ReadAsStreamAsync(cancellationToken);
            var buffer = new ArrayBufferWriter<byte>(16 * 1024);
            while (true)
            {
                var memory = buffer.GetMemory(16 * 1024);
                var read = await body.ReadAsync(memory, cancellationToken);
                if (read == 0)
                {
                    return buffer.WrittenSpan.ToArray();
                }

                buffer.Advance(read);
                if (buffer.WrittenCount > limit)
                {
                    throw new UpstreamFault(FailureReasons.Protocol, $"the provider's answer is larger than the {limit}-byte limit");
                }
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw new UpstreamFault(FailureReasons.Reset, "the provider's connection broke while sending the answer", inner: ex);
        }
        catch (EndOfStreamException ex)
        {
            throw new UpstreamFault(FailureReasons.Reset, "the provider's answer was shorter than its Content-Length", inner: ex);
        }
    }

    /// <summary>The next SSE event, turning a broken connection into an upstream failure.</summary>
    public static async ValueTask<ReadOnlySequence<byte>?> NextEventAsync(SseReader events, CancellationToken cancellationToken)
    {
        try
        {
            return await events.ReadEventAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw new UpstreamFault(FailureReasons.Reset, "the provider's connection broke during the stream", inner: ex);
        }
    }

    /// <summary>A POST whose JSON body <paramref name="write"/> produces inside one top-level object.</summary>
    public static HttpRequestMessage JsonPost(Uri uri, int sizeHint, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(sizeHint);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        var message = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ReadOnlyMemoryContent(buffer.WrittenMemory) };
        message.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        return message;
    }

    /// <summary>
    /// Writes OpenAI's tool-call arguments (JSON text) as the JSON object Ollama and Anthropic expect; text that is not
    /// JSON becomes <c>{}</c>, as the model's malformed output cannot be repaired.
    /// </summary>
    public static void WriteArgumentsObject(Utf8JsonWriter writer, string arguments)
    {
        try
        {
            using var parsed = JsonDocument.Parse(arguments);
            parsed.RootElement.WriteTo(writer);
        }
        catch (JsonException)
        {
            writer.WriteStartObject();
            writer.WriteEndObject();
        }
    }

    /// <summary>A provider's JSON answer; JSON the gateway cannot read is the provider's fault, not the client's.</summary>
    public static JsonDocument ParseJson(ReadOnlyMemory<byte> json)
    {
        try
        {
            return JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new UpstreamFault(FailureReasons.Protocol, "the provider sent JSON the gateway cannot read", inner: ex);
        }
    }

    public static bool IsOpenAiError(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isError = reader.ValueTextEquals("error"u8);
                reader.Read();
                if (isError)
                {
                    return reader.TokenType == JsonTokenType.StartObject;
                }

                reader.Skip();
            }
        }
        catch (JsonException)
        {
        }

        return false;
    }

    /// <summary>Retry-After as delta-seconds or an HTTP date.</summary>
    public static TimeSpan? RetryAfter(HttpResponseMessage response, TimeProvider time)
    {
        if (response.Headers.RetryAfter is not { } retryAfter)
        {
            return null;
        }

        if (retryAfter.Delta is { } delta)
        {
            return delta;
        }

        return retryAfter.Date is { } date ? date - time.GetUtcNow() : null;
    }
}
