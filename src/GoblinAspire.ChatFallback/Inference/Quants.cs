// The quantised kernels are written here because no package on NuGet here provides GGML's block formats. The
// layouts and the activation quantisation (Q8_0 per 32 values, integer dot products) follow ggml's, so results and
// speed are comparable with llama.cpp's.
using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using GoblinAspire.ChatFallback.Gguf;

namespace GoblinAspire.ChatFallback.Inference;

/// <summary>Dequantisation of every supported block type, and the fast dot products of Q8_0 and Q4_0 rows.</summary>
public static class Quants
{
    public const int Q8Block = 32;

    private static readonly float[] HalfTable = BuildHalfTable();

    public static bool FastPath => Avx2.IsSupported && Fma.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Half(ReadOnlySpan<byte> bytes) => HalfTable[BinaryPrimitives.ReadUInt16LittleEndian(bytes)];

    /// <summary>Dequantises a row (a whole number of blocks) of <paramref name="type"/> into floats.</summary>
    public static void Dequantize(GgmlType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.Cast<byte, float>(source)[..destination.Length].CopyTo(destination);
                break;
            case GgmlType.F16:
                for (var i = 0; i < destination.Length; i++)
                {
                    destination[i] = Half(source[(2 * i)..]);
                }

                break;
            case GgmlType.Q8_0:
                for (int b = 0, o = 0; o < destination.Length; b += 34, o += 32)
                {
                    var d = Half(source[b..]);
                    for (var j = 0; j < 32; j++)
                    {
                        destination[o + j] = d * (sbyte)source[b + 2 + j];
                    }
                }

                break;
            case GgmlType.Q4_0:
                for (int b = 0, o = 0; o < destination.Length; b += 18, o += 32)
                {
                    var d = Half(source[b..]);
                    for (var j = 0; j < 16; j++)
                    {
                        var q = source[b + 2 + j];
                        destination[o + j] = d * ((q & 0x0F) - 8);
                        destination[o + j + 16] = d * ((q >> 4) - 8);
                    }
                }

                break;
            case GgmlType.Q4_K:
                for (int b = 0, o = 0; o < destination.Length; b += 144, o += 256)
                {
                    DequantizeQ4K(source.Slice(b, 144), destination.Slice(o, 256));
                }

                break;
            case GgmlType.Q6_K:
                for (int b = 0, o = 0; o < destination.Length; b += 210, o += 256)
                {
                    DequantizeQ6K(source.Slice(b, 210), destination.Slice(o, 256));
                }

                break;
            default:
                throw new GgufException($"tensor type {type} is not supported");
        }
    }

    /// <summary>Q4_K: d, dmin (f16), 12 bytes of packed 6-bit scales and mins for 8 sub-blocks, 128 bytes of nibbles.</summary>
    private static void DequantizeQ4K(ReadOnlySpan<byte> block, Span<float> y)
    {
        var d = Half(block);
        var dmin = Half(block[2..]);
        var scales = block.Slice(4, 12);
        var q = block.Slice(16, 128);
        for (int j = 0, sub = 0, qo = 0; j < 256; j += 64, sub += 2, qo += 32)
        {
            ScaleMin(sub, scales, out var sc1, out var m1);
            ScaleMin(sub + 1, scales, out var sc2, out var m2);
            float d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
            for (var l = 0; l < 32; l++)
            {
                y[j + l] = (d1 * (q[qo + l] & 0x0F)) - min1;
                y[j + 32 + l] = (d2 * (q[qo + l] >> 4)) - min2;
            }
        }
    }

    private static void ScaleMin(int j, ReadOnlySpan<byte> q, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        }
        else
        {
            scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    /// <summary>Q6_K: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 int8 scales, d (f16).</summary>
    private static void DequantizeQ6K(ReadOnlySpan<byte> block, Span<float> y)
    {
        var d = Half(block[208..]);
        for (var half = 0; half < 2; half++)
        {
            var ql = block.Slice(half * 64, 64);
            var qh = block.Slice(128 + (half * 32), 32);
            var sc = block.Slice(192 + (half * 8), 8);
            var o = half * 128;
            for (var l = 0; l < 32; l++)
            {
                var s = l / 16;
                var q1 = (sbyte)((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32;
                var q2 = (sbyte)((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                var q3 = (sbyte)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                var q4 = (sbyte)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[o + l] = d * (sbyte)sc[s] * q1;
                y[o + l + 32] = d * (sbyte)sc[s + 2] * q2;
                y[o + l + 64] = d * (sbyte)sc[s + 4] * q3;
                y[o + l + 96] = d * (sbyte)sc[s + 6] * q4;
            }
        }
    }

    /// <summary>Quantises activations to Q8_0 (per 32 values: a scale and int8s), as ggml does before integer dots.</summary>
    public static void QuantizeQ8(ReadOnlySpan<float> x, Span<sbyte> q, Span<float> scales)
    {
        for (int b = 0, o = 0; o < x.Length; b++, o += Q8Block)
        {
            var block = x.Slice(o, Q8Block);
            var max = TensorPrimitives.MaxMagnitude(block);
            var amax = MathF.Abs(max);
            var d = amax / 127f;
            var inverse = d == 0 ? 0 : 1 / d;
            scales[b] = d;
            for (var j = 0; j < Q8Block; j++)
            {
                q[o + j] = (sbyte)MathF.Round(block[j] * inverse, MidpointRounding.AwayFromZero);
            }
        }
    }

    /// <summary>Dot product of a Q8_0 row with Q8_0 activations.</summary>
    public static float DotQ8(ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> xq, ReadOnlySpan<float> xd)
    {
        var blocks = xd.Length;
        if (FastPath)
        {
            ref var w = ref MemoryMarshal.GetReference(row);
            ref var x = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetReference(xq));
            var acc = Vector256<float>.Zero;
            for (var b = 0; b < blocks; b++)
            {
                var offset = (nuint)(b * 34);
                var scale = HalfTable[Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref w, offset))] * xd[b];
                var wq = Vector256.LoadUnsafe(ref w, offset + 2).AsSByte();
                acc = AccumulateBlock(wq, Vector256.LoadUnsafe(ref x, (nuint)(b * 32)).AsSByte(), scale, acc);
            }

            return Vector256.Sum(acc);
        }

        var sum = 0f;
        for (var b = 0; b < blocks; b++)
        {
            var block = row.Slice(b * 34, 34);
            var dot = 0;
            for (var j = 0; j < 32; j++)
            {
                dot += (sbyte)block[2 + j] * xq[(b * 32) + j];
            }

            sum += Half(block) * xd[b] * dot;
        }

        return sum;
    }

    /// <summary>Dot product of a Q4_0 row with Q8_0 activations.</summary>
    public static float DotQ4(ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> xq, ReadOnlySpan<float> xd)
    {
        var blocks = xd.Length;
        if (FastPath)
        {
            ref var w = ref MemoryMarshal.GetReference(row);
            ref var x = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetReference(xq));
            var low = Vector128.Create((byte)0x0F);
            var eight = Vector256.Create((sbyte)8);
            var acc = Vector256<float>.Zero;
            for (var b = 0; b < blocks; b++)
            {
                var offset = (nuint)(b * 18);
                var scale = HalfTable[Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref w, offset))] * xd[b];
                var packed = Vector128.LoadUnsafe(ref w, offset + 2);
                var nibbles = Vector256.Create(packed & low, Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & low);
                var wq = Avx2.Subtract(nibbles.AsSByte(), eight);
                acc = AccumulateBlock(wq, Vector256.LoadUnsafe(ref x, (nuint)(b * 32)).AsSByte(), scale, acc);
            }

            return Vector256.Sum(acc);
        }

        var sum = 0f;
        for (var b = 0; b < blocks; b++)
        {
            var block = row.Slice(b * 18, 18);
            var dot = 0;
            for (var j = 0; j < 16; j++)
            {
                dot += ((block[2 + j] & 0x0F) - 8) * xq[(b * 32) + j];
                dot += ((block[2 + j] >> 4) - 8) * xq[(b * 32) + j + 16];
            }

            sum += Half(block) * xd[b] * dot;
        }

        return sum;
    }

    /// <summary>
    /// acc + scale · Σ w·x over one block of 32 int8 pairs: |w| times x signed like w (maddubs takes unsigned × signed),
    /// pairwise to int16, then to int32, then to float.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> AccumulateBlock(Vector256<sbyte> w, Vector256<sbyte> x, float scale, Vector256<float> acc)
    {
        var products = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w)), Vector256.Create((short)1));
        return Fma.MultiplyAdd(Vector256.Create(scale), Avx.ConvertToVector256Single(products), acc);
    }

    private static float[] BuildHalfTable()
    {
        var table = new float[65536];
        for (var i = 0; i < table.Length; i++)
        {
            table[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        }

        return table;
    }
}
