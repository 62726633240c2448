using System.Buffers.Binary;
using System.Text;
namespace GoblinAspire.ChatFallback.Gguf;

/// <summary>
/// Writes GGUF v3 files (metadata, tensor directory, aligned data): the reader's counterpart, for the demo model the
/// local host provisions and the models tests and benchmarks make.
/// </summary>
public sealed class GgufWriter
{
    public Dictionary<string, object> Metadata { get; } = new(StringComparer.Ordinal);

    public List<(string Name, long[] Dimensions, GgmlType Type, byte[] Data)> Tensors { get; } = [];

    public uint Version { get; set; } = 3;

    public uint Magic { get; set; } = GgufFile.Magic;

    public void Write(string path)
    {
        using var stream = File.Create(path);
        using var writer = new BinaryWriter(stream, Encoding.UTF8);
        writer.Write(Magic);
        writer.Write(Version);
        writer.Write((ulong)Tensors.Count);
        writer.Write((ulong)Metadata.Count);
        foreach (var (key, value) in Metadata)
        {
            WriteString(writer, key);
            WriteValue(writer, value);
        }

        ulong offset = 0;
        var offsets = new List<ulong>();
        foreach (var tensor in Tensors)
        {
            WriteString(writer, tensor.Name);
            writer.Write((uint)tensor.Dimensions.Length);
            foreach (var d in tensor.Dimensions)
            {
                writer.Write((ulong)d);
            }

            writer.Write((uint)tensor.Type);
            writer.Write(offset);
            offsets.Add(offset);
            offset += Align((ulong)tensor.Data.Length);
        }

        writer.Flush();
        Pad(stream);
        foreach (var tensor in Tensors)
        {
            stream.Write(tensor.Data);
            Pad(stream);
        }
    }

    private static ulong Align(ulong value) => (value + 31) / 32 * 32;

    private static void Pad(Stream stream)
    {
        while (stream.Position % 32 != 0)
        {
            stream.WriteByte(0);
        }
    }

    private static void WriteString(BinaryWriter writer, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        writer.Write((ulong)bytes.Length);
        writer.Write(bytes);
    }

    private static void WriteValue(BinaryWriter writer, object value)
    {
        switch (value)
        {
            case string s:
                writer.Write(8u);
                WriteString(writer, s);
                break;
            case int i:
                writer.Write(5u);
                writer.Write(i);
                break;
            case uint u:
                writer.Write(4u);
                writer.Write(u);
                break;
            case float f:
                writer.Write(6u);
                writer.Write(f);
                break;
            case bool b:
                writer.Write(7u);
                writer.Write(b ? (byte)1 : (byte)0);
                break;
            case string[] strings:
                writer.Write(9u);
                writer.Write(8u);
                writer.Write((ulong)strings.Length);
                foreach (var s in strings)
                {
                    WriteString(writer, s);
                }

                break;
            case float[] floats:
                writer.Write(9u);
                writer.Write(6u);
                writer.Write((ulong)floats.Length);
                foreach (var f in floats)
                {
                    writer.Write(f);
                }

                break;
            case int[] ints:
                writer.Write(9u);
                writer.Write(5u);
                writer.Write((ulong)ints.Length);
                foreach (var i in ints)
                {
                    writer.Write(i);
                }

                break;
            default:
                throw new ArgumentException($"unsupported metadata value {value.GetType()}", nameof(value));
        }
    }
}

/// <summary>Quantisers for synthetic weights, written from ggml's block layouts.</summary>
public static class GgmlQuantizer
{
    public static byte[] Quantize(GgmlType type, float[] values, Random random)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(random);
        switch (type)
        {
            case GgmlType.F32:
                var f32 = new byte[values.Length * 4];
                for (var i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(f32.AsSpan(i * 4), values[i]);
                }

                return f32;
            case GgmlType.F16:
                var f16 = new byte[values.Length * 2];
                for (var i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteHalfLittleEndian(f16.AsSpan(i * 2), (Half)values[i]);
                }

                return f16;
            case GgmlType.BF16:
                var bf16 = new byte[values.Length * 2];
                for (var i = 0; i < values.Length; i++)
                {
                    // Round to nearest even, as ggml's converter does.
                    var bits = BitConverter.SingleToUInt32Bits(values[i]);
                    BinaryPrimitives.WriteUInt16LittleEndian(bf16.AsSpan(i * 2), (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16));
                }

                return bf16;
            case GgmlType.Q8_0:
                var q8 = new byte[values.Length / 32 * 34];
                for (var b = 0; b < values.Length / 32; b++)
                {
                    var block = values.AsSpan(b * 32, 32);
                    var amax = 0f;
                    foreach (var v in block)
                    {
                        amax = Math.Max(amax, Math.Abs(v));
                    }

                    var d = amax / 127f;
                    BinaryPrimitives.WriteHalfLittleEndian(q8.AsSpan(b * 34), (Half)d);
                    for (var j = 0; j < 32; j++)
                    {
                        q8[(b * 34) + 2 + j] = (byte)(sbyte)(d == 0 ? 0 : Math.Round(block[j] / d));
                    }
                }

                return q8;
            case GgmlType.Q4_0:
                var q4 = new byte[values.Length / 32 * 18];
                for (var b = 0; b < values.Length / 32; b++)
                {
                    var block = values.AsSpan(b * 32, 32);
                    float max = 0, amax = 0;
                    foreach (var v in block)
                    {
                        if (Math.Abs(v) > amax)
                        {
                            amax = Math.Abs(v);
                            max = v;
                        }
                    }

                    var d = max / -8f;
                    var inverse = d == 0 ? 0 : 1 / d;
                    BinaryPrimitives.WriteHalfLittleEndian(q4.AsSpan(b * 18), (Half)d);
                    for (var j = 0; j < 16; j++)
                    {
                        var lo = Math.Min(15, (int)((block[j] * inverse) + 8.5f));
                        var hi = Math.Min(15, (int)((block[j + 16] * inverse) + 8.5f));
                        q4[(b * 18) + 2 + j] = (byte)(lo | (hi << 4));
                    }
                }

                return q4;
            case GgmlType.Q4_K:
            case GgmlType.Q5_K:
            case GgmlType.Q6_K:
                return RandomKQuant(type, values, random);
            default:
                throw new ArgumentException($"no quantiser for {type}", nameof(type));
        }
    }

    /// <summary>
    /// Random but well-formed K-quant super-blocks whose values are centred on zero with the spread of
    /// <paramref name="values"/> (their own values are not kept): per sub-block a random scale, the minimum that centres
    /// it, random quants. Real files' statistics without writing ggml's search for the best scales.
    /// </summary>
#pragma warning disable CA5394 // synthetic weights: reproducible, not secret
    private static byte[] RandomKQuant(GgmlType type, float[] values, Random random)
    {
        var (per, size) = GgmlTypes.Block(type);
        var spread = values.Length == 0 ? 0 : (float)Math.Sqrt(values.Sum(v => (double)v * v) / values.Length);
        var bytes = new byte[values.Length / per * size];
        random.NextBytes(bytes);
        Span<int> scales = stackalloc int[8];
        Span<int> mins = stackalloc int[8];
        for (var b = 0; b < bytes.Length; b += size)
        {
            var block = bytes.AsSpan(b, size);
            if (type == GgmlType.Q6_K)
            {
                // 16 signed scales of 8-16, quants 0-63 centred by ggml's own -32: spread = d · 12 · 18.5.
                for (var i = 0; i < 16; i++)
                {
                    block[192 + i] = (byte)random.Next(8, 17);
                }

                BinaryPrimitives.WriteHalfLittleEndian(block[208..], (Half)(spread / 222f));
                continue;
            }

            // Q4_K quants 0-15 (mean 7.5), Q5_K 0-31 (mean 15.5): the minimum is scale · mean, so values centre on zero.
            var (low, high, mean) = type == GgmlType.Q4_K ? (4, 8, 7.5) : (2, 4, 15.5);
            for (var j = 0; j < 8; j++)
            {
                scales[j] = random.Next(low, high + 1);
                mins[j] = (int)Math.Round(scales[j] * mean);
            }

            for (var j = 0; j < 4; j++)
            {
                block[4 + j] = (byte)(scales[j] | ((scales[j + 4] >> 4) << 6));
                block[8 + j] = (byte)(mins[j] | ((mins[j + 4] >> 4) << 6));
                block[12 + j] = (byte)((scales[j + 4] & 0x0F) | ((mins[j + 4] & 0x0F) << 4));
            }

            var d = spread / (float)((low + high) / 2.0 * (type == GgmlType.Q4_K ? 4.6 : 9.2));
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
            BinaryPrimitives.WriteHalfLittleEndian(block[2..], (Half)d);
        }

        return bytes;
    }
#pragma warning restore CA5394
}
