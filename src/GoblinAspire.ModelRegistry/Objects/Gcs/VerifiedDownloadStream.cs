namespace GoblinAspire.ModelRegistry.Objects.Gcs;

/// <summary>
/// A download's body from GCS: it must carry exactly the bytes asked for and, for a whole object, match the object's
/// CRC-32C. Short or altered bytes end the read with an error before the last byte is handed out, so a client's
/// download fails instead of ending quietly with wrong content.
/// </summary>
internal sealed class VerifiedDownloadStream(HttpResponseMessage response, Stream body, long expectedLength, string? expectedCrc32C) : ForwardReadStream
{
    private readonly Crc32C? _crc = expectedCrc32C is null ? null : new Crc32C();
    private long _read;

    public override long Length => expectedLength;

    protected override long BytesRead => _read;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int read;
        try
        {
            read = await body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException ex) when (ex is not ObjectCorruptedException && !cancellationToken.IsCancellationRequested)
        {
            throw new GcsException(503, "backendError", "Cloud Storage broke off the download.", ex);
        }

        if (read == 0)
        {
            return _read < expectedLength ? throw new ObjectCorruptedException($"Cloud Storage sent {_read} bytes where {expectedLength} were expected") : 0;
        }

        _read += read;
        if (_read > expectedLength)
        {
            throw new ObjectCorruptedException($"Cloud Storage sent more than the {expectedLength} bytes expected");
        }

        // The chunk holding the last byte is checked before it is handed out, so a mismatch never completes a download.
        _crc?.Append(buffer.Span[..read]);
        if (_read == expectedLength && _crc is not null && Crc32C.ToBase64(_crc.Value) != expectedCrc32C)
        {
            throw new ObjectCorruptedException("the bytes Cloud Storage sent do not match the object's CRC-32C");
        }

        return read;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            body.Dispose();
            response.Dispose();
        }

        base.Dispose(disposing);
    }
}
