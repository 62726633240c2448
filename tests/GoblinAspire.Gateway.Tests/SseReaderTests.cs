using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using GoblinAspire.Gateway.Protocols;

namespace GoblinAspire.Gateway.Tests;

/// <summary>The SSE splitter the streaming relay forwards raw events with, fed piece by piece through a pipe.</summary>
public sealed class SseReaderTests
{
    [Fact]
    public async Task Events_come_out_whole_however_the_bytes_arrive()
    {
        var pipe = new Pipe();
        var reader = new SseReader(pipe.Reader);
        await Write(pipe, "data: {\"a\":");
        var first = reader.ReadEventAsync(CancellationToken.None);
        Assert.False(first.IsCompleted);
        await Write(pipe, "1}\r\n\r\ndata: [DONE]\n\n");
        Assert.Equal("data: {\"a\":1}\r\n\r\n", Text(await first));
        Assert.Equal("data: [DONE]\n\n", Text(await reader.ReadEventAsync(CancellationToken.None)));
        await pipe.Writer.CompleteAsync();
        Assert.Null(await reader.ReadEventAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_final_event_without_its_blank_line_still_counts()
    {
        var pipe = new Pipe();
        var reader = new SseReader(pipe.Reader);
        await Write(pipe, "data: last");
        await pipe.Writer.CompleteAsync();
        Assert.Equal("data: last", Text(await reader.ReadEventAsync(CancellationToken.None)));
        Assert.Null(await reader.ReadEventAsync(CancellationToken.None));
    }

    [Fact]
    public async Task It_says_when_the_next_event_is_already_buffered_so_the_relay_can_hold_its_flush()
    {
        var pipe = new Pipe();
        var reader = new SseReader(pipe.Reader);
        Assert.False(reader.HasBufferedEvent);

        // A burst in one write: every event but the last has a successor waiting.
        await Write(pipe, "data: 1\n\ndata: 2\n\ndata: 3\n\n");
        await reader.ReadEventAsync(CancellationToken.None);
        Assert.True(reader.HasBufferedEvent);
        await reader.ReadEventAsync(CancellationToken.None);
        Assert.True(reader.HasBufferedEvent);
        await reader.ReadEventAsync(CancellationToken.None);
        Assert.False(reader.HasBufferedEvent);

        // Half an event buffered is no event: the relay must flush what it has rather than wait for the provider.
        await Write(pipe, "data: 4\n\ndata: 5");
        await reader.ReadEventAsync(CancellationToken.None);
        Assert.False(reader.HasBufferedEvent);
        await Write(pipe, "\n\n");
        Assert.Equal("data: 5\n\n", Text(await reader.ReadEventAsync(CancellationToken.None)));
    }

    private static async Task Write(Pipe pipe, string text)
    {
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes(text));
    }

    private static string Text(ReadOnlySequence<byte>? sseEvent) => Encoding.UTF8.GetString(sseEvent!.Value.ToArray());
}
