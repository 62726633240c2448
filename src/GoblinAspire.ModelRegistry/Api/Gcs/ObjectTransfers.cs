using System.Globalization;
using GoblinAspire.ModelRegistry.Objects;
using Microsoft.Net.Http.Headers;

namespace GoblinAspire.ModelRegistry.Api.Gcs;

/// <summary>Streaming an object in or out: shared by the JSON API, the download and upload paths and signed URLs.</summary>
public static class ObjectTransfers
{
    private const int CopyBuffer = 64 * 1024;

    /// <summary>Streams a whole request body into a new object generation.</summary>
    public static async Task<ObjectRecord> StoreAsync(IObjectStore store, string bucket, string name, ObjectAttributes attributes, Preconditions preconditions, DeclaredHashes? declared, Stream body, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(preconditions);
        // Fail before reading gigabytes when the answer is already known; checked again at the commit.
        preconditions.Check(await store.GetObjectAsync(bucket, name, cancellationToken));
        await using var pending = await store.BeginWriteAsync(bucket, cancellationToken);
        await pending.Writer.WriteFromAsync(body, null, cancellationToken);
        return await store.CommitAsync(pending, name, attributes, preconditions, declared, cancellationToken);
    }

    /// <summary>
    /// Answers with the object's bytes (or a single <c>Range</c> of them, 206). The first frame is read, and so
    /// verified, before the status is sent, so a damaged object usually gets a clean error instead of a broken body.
    /// </summary>
    public static async Task SendAsync(HttpContext http, IObjectStore store, string bucket, string name, Func<ObjectRecord, Task>? check = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(store);
        var cancellationToken = http.RequestAborted;
        var record = await store.GetObjectAsync(bucket, name, cancellationToken) ?? throw GcsException.ObjectNotFound(bucket, name);
        if (check is not null)
        {
            await check(record);
        }

        var (offset, length, partial) = Range(http.Request, record);
        var opened = await store.OpenReadAsync(bucket, name, offset, length, cancellationToken) ?? throw GcsException.ObjectNotFound(bucket, name);
        await using var content = opened.Content;
        record = opened.Record;
        var response = http.Response;
        GcsResources.DownloadHeaders(response, record);
        response.ContentType = GcsResources.HeaderValue(record.ContentType) ?? "application/octet-stream";
        response.ContentLength = length;
        if (partial)
        {
            response.StatusCode = StatusCodes.Status206PartialContent;
            response.Headers.ContentRange = $"bytes {offset}-{offset + length - 1}/{record.Size}";
        }

        if (HttpMethods.IsHead(http.Request.Method))
        {
            return;
        }

        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try
        {
            var read = await content.ReadAsync(buffer.AsMemory(0, CopyBuffer), cancellationToken);
            await response.StartAsync(cancellationToken);
            while (read > 0)
            {
                await response.Body.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                read = await content.ReadAsync(buffer.AsMemory(0, CopyBuffer), cancellationToken);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static (long Offset, long Length, bool Partial) Range(HttpRequest request, ObjectRecord record)
    {
        var header = request.Headers.Range.ToString();
        if (header.Length == 0 || record.Size == 0)
        {
            return (0, record.Size, false);
        }

        if (!RangeHeaderValue.TryParse(header, out var range) || range.Unit != "bytes" || range.Ranges.Count != 1)
        {
            // Multiple or unparsable ranges: RFC 9110 lets a server ignore the header and send everything.
            return (0, record.Size, false);
        }

        var item = range.Ranges.Single();
        long first, last;
        if (item.From is { } from)
        {
            first = from;
            last = Math.Min(item.To ?? record.Size - 1, record.Size - 1);
        }
        else
        {
            first = Math.Max(0, record.Size - item.To!.Value);
            last = record.Size - 1;
        }

        if (first >= record.Size || first > last)
        {
            throw new GcsException(416, "requestedRangeNotSatisfiable", $"The requested range cannot be satisfied: {header} of {record.Size.ToString(CultureInfo.InvariantCulture)} bytes.");
        }

        return (first, last - first + 1, true);
    }
}
