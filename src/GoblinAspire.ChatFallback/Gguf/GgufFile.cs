// GGUF is read by hand: no package on NuGet here reads it, and the service's whole point is to need no native
// library. Format: github.com/ggml-org/ggml docs/gguf.md (v3; v2 has the same layout).
using System.Buffers.Binary;
using System.Text;

namespace GoblinAspire.ChatFallback.Gguf;

/// <summary>ggml's tensor element types; the numbers are the file format's.</summary>
public enum GgmlType
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    BF16 = 30,
}

public static class GgmlTypes
{
    /// <summary>Elements per block and bytes per block of the types this engine computes with.</summary>
    public static (int Elements, int Bytes) Block(GgmlType type) => type switch
    {
        GgmlType.F32 => (1, 4),
        GgmlType.F16 => (1, 2),
        GgmlType.Q8_0 => (32, 34),
        GgmlType.Q4_0 => (32, 18),
        GgmlType.BF16 => (1, 2),
        GgmlType.Q4_K => (256, 144),
        GgmlType.Q5_K => (256, 176),
        GgmlType.Q6_K => (256, 210),
        _ => throw new GgufException($"tensor type {TypeName(type)} is not supported (supported: {Supported})"),
    };

    public const string Supported = "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K";

    public static string TypeName(GgmlType type) => Enum.IsDefined(type) ? type.ToString() : $"#{(int)type}";

    public static long RowBytes(GgmlType type, long elements)
    {
        var (per, bytes) = Block(type);
        if (elements % per != 0)
        {
            throw new GgufException($"a row of {elements} elements is not a whole number of {type} blocks");
        }

        return elements / per * bytes;
    }
}

/// <summary>A file that is not a GGUF model this engine can load; the message says what is wrong.</summary>
public sealed class GgufException : Exception
{
    public GgufException()
    {
    }

    public GgufException(string message)
        : base(message)
    {
    }

    public GgufException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

public sealed record GgufTensorInfo(string Name, long[] Dimensions, GgmlType Type, long Offset)
{
    public long Elements => Dimensions.Aggregate(1L, (a, b) => a * b);

    public long ByteLength => GgmlTypes.RowBytes(Type, Dimensions[0]) * (Elements / Dimensions[0]);
}

/// <summary>A GGUF file's metadata and tensor directory; tensor bytes are read on request.</summary>
public sealed class GgufFile
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    private const int MaxStringBytes = 16 * 1024 * 1024;
    private const long MaxArrayItems = 16 * 1024 * 1024;
    private const long MaxTensors = 100_000;

    private GgufFile(string path, Dictionary<string, object> metadata, Dictionary<string, GgufTensorInfo> tensors, long dataOffset, uint version)
    {
        Path = path;
        Metadata = metadata;
        Tensors = tensors;
        DataOffset = dataOffset;
        Version = version;
    }

    public string Path { get; }

    public uint Version { get; }

    public IReadOnlyDictionary<string, object> Metadata { get; }

    public IReadOnlyDictionary<string, GgufTensorInfo> Tensors { get; }

    public long DataOffset { get; }

    public static GgufFile Open(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var reader = new Reader(stream);
        try
        {
            if (reader.U32() != Magic)
            {
                throw new GgufException("not a GGUF file (wrong magic)");
            }

            var version = reader.U32();
            if (version is not (2 or 3))
            {
                throw new GgufException($"GGUF version {version} is not supported (2 and 3 are)");
            }

            var tensorCount = reader.U64();
            var kvCount = reader.U64();
            if (tensorCount > MaxTensors || kvCount > MaxTensors)
            {
                throw new GgufException("absurd tensor or metadata count");
            }

            var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
            for (ulong i = 0; i < kvCount; i++)
            {
                var key = reader.String();
                metadata[key] = reader.Value(reader.U32());
            }

            var tensors = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);
            for (ulong i = 0; i < tensorCount; i++)
            {
                var name = reader.String();
                var dimensionCount = reader.U32();
                if (dimensionCount is 0 or > 4)
                {
                    throw new GgufException($"tensor {name} has {dimensionCount} dimensions");
                }

                var dimensions = new long[dimensionCount];
                for (var d = 0; d < dimensionCount; d++)
                {
                    var size = reader.U64();
                    if (size is 0 or > 1L << 32)
                    {
                        throw new GgufException($"tensor {name} has an absurd dimension ({size})");
                    }

                    dimensions[d] = (long)size;
                }

                var type = (GgmlType)reader.U32();
                var offset = reader.U64();
                try
                {
                    GgmlTypes.Block(type);
                }
                catch (GgufException)
                {
                    throw new GgufException($"tensor {name} has type {GgmlTypes.TypeName(type)}, which this engine cannot run (supported: {GgmlTypes.Supported})");
                }

                tensors[name] = new GgufTensorInfo(name, dimensions, type, (long)offset);
            }

            var alignment = metadata.TryGetValue("general.alignment", out var a) ? System.Convert.ToInt64(a, System.Globalization.CultureInfo.InvariantCulture) : 32;
            if (alignment is <= 0 or > 1 << 20 || (alignment & (alignment - 1)) != 0)
            {
                throw new GgufException($"general.alignment {alignment} is not a power of two");
            }

            var dataOffset = (stream.Position + alignment - 1) / alignment * alignment;
            foreach (var tensor in tensors.Values)
            {
                if (tensor.Offset % alignment != 0 || dataOffset + tensor.Offset + tensor.ByteLength > stream.Length)
                {
                    throw new GgufException($"tensor {tensor.Name} lies outside the file (truncated?)");
                }
            }

            return new GgufFile(path, metadata, tensors, dataOffset, version);
        }
        catch (EndOfStreamException ex)
        {
            throw new GgufException("the file is truncated", ex);
        }
    }

    /// <summary>Reads one tensor's bytes into a new array.</summary>
    public byte[] ReadTensor(GgufTensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.ByteLength > Array.MaxLength)
        {
            throw new GgufException($"tensor {tensor.Name} is larger than 2 GB");
        }

        var bytes = GC.AllocateUninitializedArray<byte>((int)tensor.ByteLength);
        using var handle = File.OpenHandle(Path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var done = 0;
        while (done < bytes.Length)
        {
            var read = RandomAccess.Read(handle, bytes.AsSpan(done), DataOffset + tensor.Offset + done);
            if (read == 0)
            {
                throw new GgufException($"tensor {tensor.Name} is truncated");
            }

            done += read;
        }

        return bytes;
    }

    public T Get<T>(string key, T fallback) =>
        Metadata.TryGetValue(key, out var value) ? Convert<T>(key, value) : fallback;

    public T Require<T>(string key) =>
        Metadata.TryGetValue(key, out var value) ? Convert<T>(key, value) : throw new GgufException($"metadata '{key}' is missing");

    private static T Convert<T>(string key, object value)
    {
        try
        {
            return value is T typed ? typed : (T)System.Convert.ChangeType(value, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is InvalidCastException or FormatException or OverflowException)
        {
            throw new GgufException($"metadata '{key}' has the wrong type", ex);
        }
    }

    private sealed class Reader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[8];

        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Fill(4));

        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Fill(8));

        public string String()
        {
            var length = U64();
            if (length > MaxStringBytes)
            {
                throw new GgufException($"a string of {length} bytes is absurd");
            }

            var bytes = new byte[length];
            stream.ReadExactly(bytes);
            return Encoding.UTF8.GetString(bytes);
        }

        public object Value(uint type) => type switch
        {
            0 => Fill(1)[0],
            1 => (sbyte)Fill(1)[0],
            2 => BinaryPrimitives.ReadUInt16LittleEndian(Fill(2)),
            3 => BinaryPrimitives.ReadInt16LittleEndian(Fill(2)),
            4 => U32(),
            5 => BinaryPrimitives.ReadInt32LittleEndian(Fill(4)),
            6 => BinaryPrimitives.ReadSingleLittleEndian(Fill(4)),
            7 => Fill(1)[0] != 0,
            8 => String(),
            9 => Array(),
            10 => U64(),
            11 => BinaryPrimitives.ReadInt64LittleEndian(Fill(8)),
            12 => BinaryPrimitives.ReadDoubleLittleEndian(Fill(8)),
            _ => throw new GgufException($"unknown metadata value type {type}"),
        };

        private object Array()
        {
            var type = U32();
            var count = U64();
            if (count > MaxArrayItems)
            {
                throw new GgufException($"an array of {count} items is absurd");
            }

            switch (type)
            {
                case 8:
                    var strings = new string[count];
                    for (ulong i = 0; i < count; i++)
                    {
                        strings[i] = String();
                    }

                    return strings;
                case 6:
                    var floats = new float[count];
                    for (ulong i = 0; i < count; i++)
                    {
                        floats[i] = BinaryPrimitives.ReadSingleLittleEndian(Fill(4));
                    }

                    return floats;
                case 4 or 5:
                    var ints = new int[count];
                    for (ulong i = 0; i < count; i++)
                    {
                        ints[i] = BinaryPrimitives.ReadInt32LittleEndian(Fill(4));
                    }

                    return ints;
                default:
                    var items = new object[count];
                    for (ulong i = 0; i < count; i++)
                    {
                        items[i] = Value(type);
                    }

                    return items;
            }
        }

        private byte[] Fill(int count)
        {
            stream.ReadExactly(_buffer, 0, count);
            return _buffer;
        }
    }
}
