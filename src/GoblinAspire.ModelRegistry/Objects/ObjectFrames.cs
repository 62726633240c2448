// The on-disk format is the platform's own: GCS keeps its storage format private, and the requirements here
// (verify every byte before it is served, encrypt in streamed chunks, serve ranges without reading from the start)
// are met by no file format a package here provides.
using System.Buffers.Binary;
using System.Security.Cryptography;

namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>
/// An object's stored bytes: a 32-byte header, then the plaintext in 64 KiB frames. A plain frame is followed by its
/// CRC-32C (continued over the frame's index, so frames cannot be swapped); an encrypted frame is AES-256-GCM
/// ciphertext and tag under a key derived for this file alone (HKDF over the file id), with the frame index as nonce.
/// Frames have a fixed size, so a range starts reading at its own frame.
/// </summary>
public static class ObjectFrames
{
    public const int FrameSize = 64 * 1024;
    public const int HeaderSize = 32;
    public const int TagSize = 16;
    private const int Version = 1;
    private static readonly byte[] Magic = "GOBO"u8.ToArray();

    public static int Overhead(bool encrypted) => encrypted ? TagSize : sizeof(uint);

    /// <summary>Bytes on disk for <paramref name="size"/> bytes of plaintext.</summary>
    public static long StoredLength(long size, bool encrypted) =>
        HeaderSize + size + (((size + FrameSize - 1) / FrameSize) * Overhead(encrypted));

    internal static byte[] Header(ReadOnlySpan<byte> fileId, bool encrypted)
    {
        var header = new byte[HeaderSize];
        Magic.CopyTo(header, 0);
        header[4] = Version;
        header[5] = encrypted ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), FrameSize);
        fileId.CopyTo(header.AsSpan(12, 16));
        return header;
    }

    /// <summary>The file id of a valid header, or null.</summary>
    internal static byte[]? ReadHeader(ReadOnlySpan<byte> header, bool encrypted)
    {
        return header.Length == HeaderSize
            && header[..4].SequenceEqual(Magic)
            && header[4] == Version
            && header[5] == (encrypted ? 1 : 0)
            && BinaryPrimitives.ReadInt32LittleEndian(header[8..]) == FrameSize
                ? header.Slice(12, 16).ToArray()
                : null;
    }

    internal static byte[] FileKey(byte[] masterKey, ReadOnlySpan<byte> fileId) =>
        HKDF.DeriveKey(HashAlgorithmName.SHA256, masterKey, 32, fileId.ToArray(), "goblin-object-frames-v1"u8.ToArray());

    internal static void Nonce(Span<byte> nonce, long index)
    {
        nonce.Clear();
        BinaryPrimitives.WriteInt64BigEndian(nonce[4..], index);
    }

    internal static uint FrameCrc(ReadOnlySpan<byte> data, long index)
    {
        Span<byte> indexBytes = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(indexBytes, index);
        return ~Crc32C.Update(Crc32C.Update(uint.MaxValue, data), indexBytes);
    }
}

/// <summary>Digests of an object's plaintext, computed while it is written.</summary>
public sealed record ObjectDigests(long Size, string Md5Base64, string Crc32CBase64, string Sha256Hex);

/// <summary>Writes plaintext as frames into <paramref name="file"/>, hashing it on the way.</summary>
public sealed class FrameWriter : IDisposable
{
    private readonly Stream _file;
    private readonly AesGcm? _aes;
    // Two frame buffers: MD5 (no hardware help, the slowest digest) runs on another core for one frame while the
    // next is filled, hashed with SHA-256 and CRC-32C, framed and written.
    private readonly byte[][] _frames = [new byte[ObjectFrames.FrameSize], new byte[ObjectFrames.FrameSize]];
    private int _current;
    private Task _md5Pending = Task.CompletedTask;

    // Written bytes are pushed to disk in the background every SyncInterval, so the fsync that makes an object
    // durable at its commit waits for the last stretch only, not for the whole upload held in the page cache.
    private const long SyncInterval = 32 * 1024 * 1024;
    private Task _syncPending = Task.CompletedTask;
    private long _unsynced;
    private readonly byte[] _output;
    private readonly IncrementalHash _md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
    private readonly IncrementalHash _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly Crc32C _crc = new();
    private int _filled;
    private long _index;
    private bool _headerWritten;
    private readonly byte[] _header;

    public FrameWriter(Stream file, byte[]? masterKey)
    {
        _file = file;
        var fileId = RandomNumberGenerator.GetBytes(16);
        _header = ObjectFrames.Header(fileId, masterKey is not null);
        if (masterKey is not null)
        {
            _aes = new AesGcm(ObjectFrames.FileKey(masterKey, fileId), ObjectFrames.TagSize);
        }

        _output = new byte[ObjectFrames.FrameSize + ObjectFrames.Overhead(_aes is not null)];
    }

    /// <summary>Plaintext bytes accepted so far.</summary>
    public long Length { get; private set; }

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (!_headerWritten)
        {
            await _file.WriteAsync(_header, cancellationToken);
            _headerWritten = true;
        }

        Length += data.Length;
        while (data.Length > 0)
        {
            var frame = _frames[_current];
            var take = Math.Min(data.Length, frame.Length - _filled);
            data[..take].CopyTo(frame.AsMemory(_filled));
            _filled += take;
            data = data[take..];
            if (_filled == frame.Length)
            {
                await FlushFrameAsync(cancellationToken);
            }
        }
    }

    /// <summary>Reads <paramref name="source"/> to its end into the frames.</summary>
    public async Task WriteFromAsync(Stream source, long? limit, CancellationToken cancellationToken)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(ObjectFrames.FrameSize);
        try
        {
            long copied = 0;
            int read;
            while ((read = await source.ReadAsync(buffer.AsMemory(0, limit is { } max ? (int)Math.Min(buffer.Length, max - copied + 1) : buffer.Length), cancellationToken)) > 0)
            {
                copied += read;
                if (copied > limit)
                {
                    throw GcsException.Invalid("The request body is longer than the declared length.");
                }

                await WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Writes the last partial frame, flushes to disk, and returns the plaintext's digests.</summary>
    public async Task<ObjectDigests> CompleteAsync(CancellationToken cancellationToken)
    {
        if (!_headerWritten)
        {
            await _file.WriteAsync(_header, cancellationToken);
            _headerWritten = true;
        }

        if (_filled > 0)
        {
            await FlushFrameAsync(cancellationToken);
        }

        await _md5Pending;
        await _syncPending;
        await _file.FlushAsync(cancellationToken);
        if (_file is FileStream fileStream)
        {
            fileStream.Flush(flushToDisk: true);
        }

        return new ObjectDigests(Length, Convert.ToBase64String(_md5.GetHashAndReset()), Crc32C.ToBase64(_crc.Value), Convert.ToHexStringLower(_sha256.GetHashAndReset()));
    }

    private async ValueTask FlushFrameAsync(CancellationToken cancellationToken)
    {
        var frame = _frames[_current];
        var filled = _filled;
        // In order: this frame's MD5 starts once the previous frame's is done, and that frame's buffer is reused next.
        await _md5Pending;
        _md5Pending = Task.Run(() => _md5.AppendData(frame, 0, filled), CancellationToken.None);
        var written = Encode(frame.AsSpan(0, filled));
        await _file.WriteAsync(_output.AsMemory(0, written), cancellationToken);
        _unsynced += written;
        if (_unsynced >= SyncInterval && _syncPending.IsCompleted && _file is FileStream { SafeFileHandle: var handle })
        {
            _unsynced = 0;
            _syncPending = Task.Run(() => RandomAccess.FlushToDisk(handle), CancellationToken.None);
        }
        _index++;
        _filled = 0;
        _current ^= 1;
    }

    private int Encode(ReadOnlySpan<byte> plain)
    {
        _sha256.AppendData(plain);
        _crc.Append(plain);
        int written;
        if (_aes is not null)
        {
            Span<byte> nonce = stackalloc byte[12];
            Span<byte> aad = stackalloc byte[8];
            ObjectFrames.Nonce(nonce, _index);
            BinaryPrimitives.WriteInt64BigEndian(aad, _index);
            _aes.Encrypt(nonce, plain, _output.AsSpan(0, _filled), _output.AsSpan(_filled, ObjectFrames.TagSize), aad);
            written = _filled + ObjectFrames.TagSize;
        }
        else
        {
            plain.CopyTo(_output);
            BinaryPrimitives.WriteUInt32LittleEndian(_output.AsSpan(_filled), ObjectFrames.FrameCrc(plain, _index));
            written = _filled + sizeof(uint);
        }

        return written;
    }

    public void Dispose()
    {
        // A writer abandoned mid-frame may still have its MD5 running over a buffer; let it finish first.
        _md5Pending.Wait();
        _syncPending.Wait();
        _aes?.Dispose();
        _md5.Dispose();
        _sha256.Dispose();
    }
}

/// <summary>Raised when stored bytes fail their check; nothing of the failing frame has been returned.</summary>
public sealed class ObjectCorruptedException : IOException
{
    public ObjectCorruptedException()
        : base("stored object data failed its integrity check")
    {
    }

    public ObjectCorruptedException(string message)
        : base(message)
    {
    }

    public ObjectCorruptedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Reads a byte range of an object's plaintext from its frames. Each frame is verified (or authenticated and
/// decrypted) as a whole before any of its bytes are returned.
/// </summary>
public sealed class FrameReadStream : ForwardReadStream
{
    private readonly Stream _file;
    private readonly long _size;
    private readonly bool _encrypted;
    private readonly byte[]? _masterKey;
    private readonly byte[] _stored;
    private readonly byte[] _plain = new byte[ObjectFrames.FrameSize];
    private AesGcm? _aes;
    private long _position;
    private readonly long _end;
    private long _frameIndex = -1;
    private int _frameLength;
    private bool _headerChecked;

    /// <param name="file">The stored file; it is disposed with this stream.</param>
    /// <param name="size">The plaintext size the object's record states.</param>
    public FrameReadStream(Stream file, long size, byte[]? masterKey, bool encrypted, long offset, long length)
    {
        _file = file;
        _size = size;
        _masterKey = masterKey;
        _encrypted = encrypted;
        _position = offset;
        _end = offset + length;
        _stored = new byte[ObjectFrames.FrameSize + ObjectFrames.Overhead(encrypted)];
    }

    public override long Length => _end - _position;

    protected override long BytesRead => _position;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_position >= _end || buffer.Length == 0)
        {
            return 0;
        }

        var index = _position / ObjectFrames.FrameSize;
        if (index != _frameIndex)
        {
            await LoadFrameAsync(index, cancellationToken);
        }

        var within = (int)(_position - (index * ObjectFrames.FrameSize));
        var take = (int)Math.Min(Math.Min(buffer.Length, _frameLength - within), _end - _position);
        _plain.AsMemory(within, take).CopyTo(buffer);
        _position += take;
        return take;
    }

    private async Task LoadFrameAsync(long index, CancellationToken cancellationToken)
    {
        if (!_headerChecked)
        {
            var header = new byte[ObjectFrames.HeaderSize];
            await _file.ReadExactlyAsync(header, cancellationToken).ConfigureAwait(false);
            var fileId = ObjectFrames.ReadHeader(header, _encrypted) ?? throw new ObjectCorruptedException("stored object header is damaged");
            if (_encrypted)
            {
                _aes = new AesGcm(ObjectFrames.FileKey(_masterKey ?? throw new ObjectCorruptedException("the object's encryption key is not configured"), fileId), ObjectFrames.TagSize);
            }

            _headerChecked = true;
        }

        var overhead = ObjectFrames.Overhead(_encrypted);
        var plainLength = (int)Math.Min(ObjectFrames.FrameSize, _size - (index * ObjectFrames.FrameSize));
        var storedOffset = ObjectFrames.HeaderSize + (index * (ObjectFrames.FrameSize + overhead));
        if (_file.Position != storedOffset)
        {
            _file.Position = storedOffset;
        }

        var storedLength = plainLength + overhead;
        var read = await _file.ReadAtLeastAsync(_stored.AsMemory(0, storedLength), storedLength, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        if (read < storedLength)
        {
            throw new ObjectCorruptedException("stored object is truncated");
        }

        if (_aes is not null)
        {
            Span<byte> nonce = stackalloc byte[12];
            Span<byte> aad = stackalloc byte[8];
            ObjectFrames.Nonce(nonce, index);
            BinaryPrimitives.WriteInt64BigEndian(aad, index);
            try
            {
                _aes.Decrypt(nonce, _stored.AsSpan(0, plainLength), _stored.AsSpan(plainLength, ObjectFrames.TagSize), _plain.AsSpan(0, plainLength), aad);
            }
            catch (AuthenticationTagMismatchException ex)
            {
                _plain.AsSpan().Clear();
                throw new ObjectCorruptedException("stored object frame failed authentication", ex);
            }
        }
        else
        {
            if (ObjectFrames.FrameCrc(_stored.AsSpan(0, plainLength), index) != BinaryPrimitives.ReadUInt32LittleEndian(_stored.AsSpan(plainLength)))
            {
                throw new ObjectCorruptedException("stored object frame failed its CRC-32C check");
            }

            _stored.AsSpan(0, plainLength).CopyTo(_plain);
        }

        _frameIndex = index;
        _frameLength = plainLength;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _aes?.Dispose();
            _file.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        _aes?.Dispose();
        await _file.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
