// The on-disk format is the platform's own: GCS keeps its storage format private, and the requirements here
// (verify every byte before it is served, encrypt in streamed chunks, serve ranges without reading from the start)
// are met by no file format a package here provides.
using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Threading.Channels;

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

    internal static uint FrameCrc(ReadOnlySpan<byte> data, long index) => FrameCrc(Crc32C.Update(uint.MaxValue, data), index);

    /// <summary>A frame's check from the raw CRC state over its data, continued over its index.</summary>
    internal static uint FrameCrc(uint dataState, long index)
    {
        Span<byte> indexBytes = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(indexBytes, index);
        return ~Crc32C.Update(dataState, indexBytes);
    }
}

/// <summary>Digests of an object's plaintext, computed while it is written.</summary>
public sealed record ObjectDigests(long Size, string Md5Base64, string Crc32CBase64, string Sha256Hex);

/// <summary>Writes plaintext as frames into a <see cref="StagingFile"/>, hashing it on the way.</summary>
public sealed class FrameWriter : IDisposable
{
    private readonly StagingFile _file;
    private readonly AesGcm? _aes;
    // MD5 (no hardware help, the slowest digest) runs on another core, a few frames behind: filled frames queue for
    // it and come back once hashed. Meanwhile the next frame is filled, hashed with SHA-256 and CRC-32C, framed and
    // written. The slack matters: handing over one frame at a time and waiting for it cost a thread wake-up per
    // 64 KiB on each side, and left the MD5 core idle half the time.
    private const int FramesInFlight = 4;
    private readonly Channel<(byte[] Frame, int Length)> _toHash = Channel.CreateUnbounded<(byte[], int)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly Channel<byte[]> _hashed = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly Task _hasher;
    private byte[] _frame;
    private readonly byte[] _output;
    private readonly IncrementalHash _md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
    private readonly IncrementalHash _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private uint _crc = Crc32C.Compute([]);
    private int _filled;
    private long _index;
    private bool _headerWritten;
    private bool _disposed;
    private readonly byte[] _header;

    public FrameWriter(StagingFile file, byte[]? masterKey)
    {
        _file = file;
        var fileId = RandomNumberGenerator.GetBytes(16);
        _header = ObjectFrames.Header(fileId, masterKey is not null);
        if (masterKey is not null)
        {
            _aes = new AesGcm(ObjectFrames.FileKey(masterKey, fileId), ObjectFrames.TagSize);
        }

        _output = ArrayPool<byte>.Shared.Rent(ObjectFrames.FrameSize + ObjectFrames.Overhead(_aes is not null));
        _frame = ArrayPool<byte>.Shared.Rent(ObjectFrames.FrameSize);
        for (var i = 1; i < FramesInFlight; i++)
        {
            _hashed.Writer.TryWrite(ArrayPool<byte>.Shared.Rent(ObjectFrames.FrameSize));
        }

        _hasher = Task.Run(HashAsync);
    }

    /// <summary>Plaintext bytes accepted so far.</summary>
    public long Length { get; private set; }

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await WriteHeaderAsync(cancellationToken);
        Length += data.Length;
        while (data.Length > 0)
        {
            var take = Math.Min(data.Length, ObjectFrames.FrameSize - _filled);
            data[..take].CopyTo(_frame.AsMemory(_filled));
            _filled += take;
            data = data[take..];
            if (_filled == ObjectFrames.FrameSize)
            {
                await FlushFrameAsync(cancellationToken);
            }
        }
    }

    /// <summary>Reads <paramref name="source"/> to its end straight into the frames; more than <paramref name="limit"/> bytes is refused.</summary>
    public async Task WriteFromAsync(Stream source, long? limit, CancellationToken cancellationToken)
    {
        await WriteHeaderAsync(cancellationToken);
        long copied = 0;
        while (true)
        {
            var room = _frame.AsMemory(_filled, ObjectFrames.FrameSize - _filled);
            // One byte past the limit is asked for, so a body longer than declared is seen.
            var read = await source.ReadAsync(limit is { } max ? room[..(int)Math.Min(room.Length, max - copied + 1)] : room, cancellationToken);
            if (read == 0)
            {
                return;
            }

            copied += read;
            if (copied > limit)
            {
                throw GcsException.Invalid("The request body is longer than the declared length.");
            }

            Length += read;
            _filled += read;
            if (_filled == ObjectFrames.FrameSize)
            {
                await FlushFrameAsync(cancellationToken);
            }
        }
    }

    /// <summary>
    /// Makes the whole frames written so far durable and returns how many plaintext bytes they hold; the frame being
    /// filled stays in memory, as it can still grow.
    /// </summary>
    public async Task<long> CheckpointAsync(CancellationToken cancellationToken)
    {
        await WriteHeaderAsync(cancellationToken);
        await _file.SyncAsync(cancellationToken);
        return _index * ObjectFrames.FrameSize;
    }

    /// <summary>Writes the last partial frame, flushes to disk, and returns the plaintext's digests.</summary>
    public async Task<ObjectDigests> CompleteAsync(CancellationToken cancellationToken)
    {
        await WriteHeaderAsync(cancellationToken);
        if (_filled > 0)
        {
            await FlushFrameAsync(cancellationToken);
        }

        _toHash.Writer.TryComplete();
        await _hasher;
        await _file.FlushAsync(cancellationToken);
        return new ObjectDigests(Length, Convert.ToBase64String(_md5.GetHashAndReset()), Crc32C.ToBase64(_crc), Convert.ToHexStringLower(_sha256.GetHashAndReset()));
    }

    private async ValueTask WriteHeaderAsync(CancellationToken cancellationToken)
    {
        if (!_headerWritten)
        {
            await _file.AppendAsync(_header, cancellationToken);
            _headerWritten = true;
        }
    }

    private async ValueTask FlushFrameAsync(CancellationToken cancellationToken)
    {
        var frame = _frame;
        var filled = _filled;
        // MD5 and the encoding below only read the frame, so both may run over it at once.
        _toHash.Writer.TryWrite((frame, filled));

        // Encoded straight into the staging file's block when the frame fits there, else through one more buffer.
        var size = filled + ObjectFrames.Overhead(_aes is not null);
        var available = _file.Available;
        var direct = available.Length >= size;
        var written = Encode(frame.AsSpan(0, filled), direct ? available.Span : _output);
        if (direct)
        {
            await _file.AdvanceAsync(written, cancellationToken);
        }
        else
        {
            await _file.AppendAsync(_output.AsMemory(0, written), cancellationToken);
        }

        _index++;
        _filled = 0;
        // The frame is the hasher's now; until one comes back this writer holds none.
        _frame = [];
        _frame = await _hashed.Reader.ReadAsync(cancellationToken);
    }

    private async Task HashAsync()
    {
        await foreach (var (frame, length) in _toHash.Reader.ReadAllAsync())
        {
            _md5.AppendData(frame, 0, length);
            _hashed.Writer.TryWrite(frame);
        }
    }

    private int Encode(ReadOnlySpan<byte> plain, Span<byte> output)
    {
        _sha256.AppendData(plain);
        if (_aes is not null)
        {
            _crc = Crc32C.Combine(_crc, Crc32C.Compute(plain), plain.Length);
            Span<byte> nonce = stackalloc byte[12];
            Span<byte> aad = stackalloc byte[8];
            ObjectFrames.Nonce(nonce, _index);
            BinaryPrimitives.WriteInt64BigEndian(aad, _index);
            _aes.Encrypt(nonce, plain, output[..plain.Length], output.Slice(plain.Length, ObjectFrames.TagSize), aad);
            return plain.Length + ObjectFrames.TagSize;
        }

        // One pass of CRC-32C over the plaintext serves both the frame's check and the whole object's CRC.
        plain.CopyTo(output);
        var state = Crc32C.Update(uint.MaxValue, plain);
        _crc = Crc32C.Combine(_crc, ~state, plain.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(output[plain.Length..], ObjectFrames.FrameCrc(state, _index));
        return plain.Length + sizeof(uint);
    }

    public void Dispose()
    {
        // Pending objects are disposed on more than one path; a second return of a pooled buffer would hand it to
        // two writers at once.
        if (_disposed)
        {
            return;
        }

        _disposed = true;

        // A writer abandoned mid-frame may still have its MD5 running over a buffer; let it finish first.
        _toHash.Writer.TryComplete();
        _hasher.Wait();
        if (_frame.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_frame);
        }

        while (_hashed.Reader.TryRead(out var frame))
        {
            ArrayPool<byte>.Shared.Return(frame);
        }

        ArrayPool<byte>.Shared.Return(_output);
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
