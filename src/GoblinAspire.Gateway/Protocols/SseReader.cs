using System.Buffers;
using System.IO.Pipelines;

namespace GoblinAspire.Gateway.Protocols;

/// <summary>
/// Splits a Server-Sent Events stream into whole events without copying: each event is the raw bytes up to and
/// including its blank line, so a passthrough can forward exactly what the provider sent. Handles LF and CRLF.
/// Written by hand because no library on the feed exposes SSE frames as raw byte sequences.
/// </summary>
public sealed class SseReader(PipeReader reader)
{
    private ReadOnlySequence<byte> _buffer;
    private SequencePosition? _consumedTo;

    /// <summary>The next whole event, valid until the next call; null at the end of the stream.</summary>
    public async ValueTask<ReadOnlySequence<byte>?> ReadEventAsync(CancellationToken cancellationToken)
    {
        if (_consumedTo is { } consumed)
        {
            // Examined only up to what was consumed: events already buffered behind it must come out now, not when
            // the provider next sends something.
            reader.AdvanceTo(consumed);
            _consumedTo = null;
        }

        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            _buffer = result.Buffer;
            if (TryFindEventEnd(_buffer, out var end))
            {
                _consumedTo = end;
                return _buffer.Slice(0, end);
            }

            if (result.IsCompleted)
            {
                if (_buffer.IsEmpty || IsWhitespace(_buffer))
                {
                    reader.AdvanceTo(_buffer.End);
                    return null;
                }

                // A final event without its blank line still counts, as browsers treat it. It stays unconsumed until
                // the next call, so its bytes remain valid while the caller forwards them.
                _consumedTo = _buffer.End;
                return _buffer;
            }

            reader.AdvanceTo(_buffer.Start, _buffer.End);
        }
    }

    /// <summary>
    /// Whether a whole event is already buffered after the one last returned. A relay holds its flush while this is
    /// true, so a burst the provider sent in one packet leaves in one write, and an event waiting on the provider is
    /// never held back.
    /// </summary>
    public bool HasBufferedEvent => _consumedTo is { } consumed && TryFindEventEnd(_buffer.Slice(consumed), out _);

    /// <summary>The concatenated <c>data:</c> lines of an event (one leading space removed, lines joined by LF).</summary>
    public static byte[] Data(ReadOnlySequence<byte> sseEvent, out string? eventName)
    {
        eventName = null;
        var data = new ArrayBufferWriter<byte>();
        var lines = new SequenceReader<byte>(sseEvent);
        var first = true;
        while (TryReadLine(ref lines, out var line))
        {
            if (line.IsEmpty)
            {
                continue;
            }

            var span = line.IsSingleSegment ? line.FirstSpan : line.ToArray();
            if (span.StartsWith("data:"u8))
            {
                var value = span[5..];
                if (!value.IsEmpty && value[0] == (byte)' ')
                {
                    value = value[1..];
                }

                if (!first)
                {
                    data.Write("\n"u8);
                }

                data.Write(value);
                first = false;
            }
            else if (span.StartsWith("event:"u8))
            {
                eventName = System.Text.Encoding.UTF8.GetString(span[6..]).Trim();
            }
        }

        return data.WrittenSpan.ToArray();
    }

    private static bool TryFindEventEnd(ReadOnlySequence<byte> buffer, out SequencePosition end)
    {
        var lines = new SequenceReader<byte>(buffer);
        while (TryReadLine(ref lines, out var line))
        {
            if (line.IsEmpty)
            {
                end = lines.Position;
                if (!lines.Sequence.Slice(0, end).IsEmpty && !IsWhitespace(lines.Sequence.Slice(0, end)))
                {
                    return true;
                }
            }
        }

        end = default;
        return false;
    }

    private static bool TryReadLine(ref SequenceReader<byte> reader, out ReadOnlySequence<byte> line)
    {
        if (!reader.TryReadTo(out line, (byte)'\n'))
        {
            return false;
        }

        if (!line.IsEmpty && line.Slice(line.Length - 1).FirstSpan[0] == (byte)'\r')
        {
            line = line.Slice(0, line.Length - 1);
        }

        return true;
    }

    /// <summary>Only spaces, tabs and line ends: a blank SSE separator or a blank NDJSON line.</summary>
    internal static bool IsWhitespace(ReadOnlySequence<byte> sequence)
    {
        foreach (var segment in sequence)
        {
            foreach (var b in segment.Span)
            {
                if (b is not ((byte)'\n' or (byte)'\r' or (byte)' ' or (byte)'\t'))
                {
                    return false;
                }
            }
        }

        return true;
    }
}
