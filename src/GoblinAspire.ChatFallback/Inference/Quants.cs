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

    internal static readonly float[] HalfTable = BuildHalfTable();

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
            case GgmlType.Q5_K:
                for (int b = 0, o = 0; o < destination.Length; b += 176, o += 256)
                {
                    DequantizeQ5K(source.Slice(b, 176), destination.Slice(o, 256));
                }

                break;
            case GgmlType.Q6_K:
                for (int b = 0, o = 0; o < destination.Length; b += 210, o += 256)
                {
                    DequantizeQ6K(source.Slice(b, 210), destination.Slice(o, 256));
                }

                break;
            case GgmlType.BF16:
                for (var i = 0; i < destination.Length; i++)
                {
                    destination[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source[(2 * i)..]) << 16);
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

    /// <summary>
    /// Q5_K: Q4_K's header and nibbles plus 32 bytes of fifth bits; value l of 64-value group g takes bit 2g (low
    /// nibble) or 2g+1 (high nibble) of byte l. Order in the block: d, dmin, scales (12), high bits (32), nibbles (128).
    /// </summary>
    private static void DequantizeQ5K(ReadOnlySpan<byte> block, Span<float> y)
    {
        var d = Half(block);
        var dmin = Half(block[2..]);
        var scales = block.Slice(4, 12);
        var high = block.Slice(16, 32);
        var q = block.Slice(48, 128);
        for (int j = 0, sub = 0, qo = 0, bit = 0; j < 256; j += 64, sub += 2, qo += 32, bit += 2)
        {
            ScaleMin(sub, scales, out var sc1, out var m1);
            ScaleMin(sub + 1, scales, out var sc2, out var m2);
            float d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
            for (var l = 0; l < 32; l++)
            {
                y[j + l] = (d1 * ((q[qo + l] & 0x0F) + (((high[l] >> bit) & 1) << 4))) - min1;
                y[j + 32 + l] = (d2 * ((q[qo + l] >> 4) + (((high[l] >> (bit + 1)) & 1) << 4))) - min2;
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

    /// <summary>
    /// Quantises activations to Q8_0 (per 32 values: a scale and int8s), as ggml does before integer dots. Rounding is
    /// to nearest (ties to even, as ggml's SIMD quantiser does; the scalar one rounds ties away from zero).
    /// </summary>
    public static void QuantizeQ8(ReadOnlySpan<float> x, Span<sbyte> q, Span<float> scales)
    {
        for (int b = 0, o = 0; o < x.Length; b++, o += Q8Block)
        {
            var block = x.Slice(o, Q8Block);
            var amax = MathF.Abs(TensorPrimitives.MaxMagnitude(block));
            var d = amax / 127f;
            var inverse = d == 0 ? 0 : 1 / d;
            scales[b] = d;
            Round(block, inverse, q.Slice(o, Q8Block));
        }
    }

    /// <summary><c>q = round(x · scale)</c> for values that fit in a signed byte (|x·scale| ≤ 127).</summary>
    public static void Round(ReadOnlySpan<float> x, float scale, Span<sbyte> q)
    {
        var i = 0;
        if (Avx512F.IsSupported)
        {
            ref var f = ref MemoryMarshal.GetReference(x);
            ref var o = ref MemoryMarshal.GetReference(q);
            var s = Vector512.Create(scale);
            for (; i + 16 <= x.Length; i += 16)
            {
                // vcvtps2dq rounds to nearest even; vpmovdb narrows (the values already fit).
                var n = Avx512F.ConvertToVector512Int32(Vector512.LoadUnsafe(ref f, (nuint)i) * s);
                Avx512F.ConvertToVector128SByte(n).StoreUnsafe(ref o, (nuint)i);
            }
        }

        for (; i < x.Length; i++)
        {
            q[i] = (sbyte)MathF.Round(x[i] * scale, MidpointRounding.ToEven);
        }
    }

    /// <summary>Each Q8_0 block's sum of quants: what a Q4_K sub-block's minimum multiplies.</summary>
    public static void BlockSums(ReadOnlySpan<sbyte> q, Span<int> sums)
    {
        for (var b = 0; b < sums.Length; b++)
        {
            var block = q.Slice(b * Q8Block, Q8Block);
            var sum = 0;
            foreach (var v in block)
            {
                sum += v;
            }

            sums[b] = sum;
        }
    }

    /// <summary>
    /// Dot product of a Q4_K row with Q8_0 activations, as ggml multiplies K-quants with 8-bit activations: per
    /// 32-value sub-block, d·scale·xd·Σ(q·xq) − dmin·min·xd·Σxq. The quants are 0-15, so the byte products need no
    /// sign trick.
    /// </summary>
    public static float DotQ4K(ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> xq, ReadOnlySpan<float> xd, ReadOnlySpan<int> xsum)
    {
        var superBlocks = xd.Length / 8;
        var sum = 0f;
        var acc = Vector256<float>.Zero;
        ref var x = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetReference(xq));
        var low = Vector256.Create((byte)0x0F);
        var ones = Vector256.Create((short)1);
        for (var s = 0; s < superBlocks; s++)
        {
            var block = row.Slice(s * 144, 144);
            var d = Half(block);
            var dmin = Half(block[2..]);
            var scales = block.Slice(4, 12);
            ref var q = ref MemoryMarshal.GetReference(block[16..]);
            for (var g = 0; g < 4; g++)
            {
                ScaleMin(2 * g, scales, out var sc1, out var m1);
                ScaleMin((2 * g) + 1, scales, out var sc2, out var m2);
                var b1 = (s * 8) + (2 * g);
                var b2 = b1 + 1;
                sum -= dmin * ((m1 * xd[b1] * xsum[b1]) + (m2 * xd[b2] * xsum[b2]));
                if (FastPath)
                {
                    var packed = Vector256.LoadUnsafe(ref q, (nuint)(g * 32));
                    var lo = packed & low;
                    var hi = Vector256.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & low;
                    var p1 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(lo, Vector256.LoadUnsafe(ref x, (nuint)(b1 * Q8Block)).AsSByte()), ones);
                    var p2 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(hi, Vector256.LoadUnsafe(ref x, (nuint)(b2 * Q8Block)).AsSByte()), ones);
                    acc = Fma.MultiplyAdd(Vector256.Create(d * sc1 * xd[b1]), Avx.ConvertToVector256Single(p1), acc);
                    acc = Fma.MultiplyAdd(Vector256.Create(d * sc2 * xd[b2]), Avx.ConvertToVector256Single(p2), acc);
                }
                else
                {
                    int dot1 = 0, dot2 = 0;
                    for (var l = 0; l < 32; l++)
                    {
                        var packed = Unsafe.Add(ref q, (g * 32) + l);
                        dot1 += (packed & 0x0F) * xq[(b1 * Q8Block) + l];
                        dot2 += (packed >> 4) * xq[(b2 * Q8Block) + l];
                    }

                    sum += (d * sc1 * xd[b1] * dot1) + (d * sc2 * xd[b2] * dot2);
                }
            }
        }

        return sum + Vector256.Sum(acc);
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
    /// Dot product of an F16 row with float activations, converting eight halves at a time in registers: the 15 bits
    /// below the sign, moved to a float's exponent/mantissa position and multiplied by 2^112, give the value for
    /// normal and subnormal halves alike; infinities and NaNs get the all-ones exponent back.
    /// </summary>
    public static float DotF16(ReadOnlySpan<byte> row, ReadOnlySpan<float> x)
    {
        var halves = MemoryMarshal.Cast<byte, ushort>(row);
        var n = x.Length;
        var i = 0;
        var sum = 0f;
        if (Avx512F.IsSupported && n >= 32)
        {
            // The same conversion 16 halves at a time: decode reads F16 weights as fast as memory delivers them.
            ref var h = ref MemoryMarshal.GetReference(halves);
            ref var f = ref MemoryMarshal.GetReference(x);
            var magic = Vector512.Create(0x77800000).AsSingle();
            var exponent = Vector512.Create(0x7C00u);
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i + 32 <= n; i += 32)
            {
                acc0 = Vector512.FusedMultiplyAdd(Widen(Vector256.LoadUnsafe(ref h, (nuint)i), magic, exponent), Vector512.LoadUnsafe(ref f, (nuint)i), acc0);
                acc1 = Vector512.FusedMultiplyAdd(Widen(Vector256.LoadUnsafe(ref h, (nuint)(i + 16)), magic, exponent), Vector512.LoadUnsafe(ref f, (nuint)(i + 16)), acc1);
            }

            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            ref var h = ref MemoryMarshal.GetReference(halves);
            ref var f = ref MemoryMarshal.GetReference(x);
            var magic = Vector256.Create(0x77800000).AsSingle();
            var exponent = Vector256.Create(0x7C00u);
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                acc0 = Vector256.FusedMultiplyAdd(Widen(Vector128.LoadUnsafe(ref h, (nuint)i), magic, exponent), Vector256.LoadUnsafe(ref f, (nuint)i), acc0);
                acc1 = Vector256.FusedMultiplyAdd(Widen(Vector128.LoadUnsafe(ref h, (nuint)(i + 8)), magic, exponent), Vector256.LoadUnsafe(ref f, (nuint)(i + 8)), acc1);
            }

            for (; i + 8 <= n; i += 8)
            {
                acc0 = Vector256.FusedMultiplyAdd(Widen(Vector128.LoadUnsafe(ref h, (nuint)i), magic, exponent), Vector256.LoadUnsafe(ref f, (nuint)i), acc0);
            }

            sum = Vector256.Sum(acc0 + acc1);
        }

        for (; i < n; i++)
        {
            sum += HalfTable[halves[i]] * x[i];
        }

        return sum;
    }

    /// <summary>F16 to floats, 16 at a time with AVX-512 (the conversion of <see cref="DotF16"/>); any tail one by one.</summary>
    public static void ConvertF16(ReadOnlySpan<byte> row, Span<float> destination)
    {
        var halves = MemoryMarshal.Cast<byte, ushort>(row);
        var i = 0;
        if (Avx512F.IsSupported)
        {
            ref var h = ref MemoryMarshal.GetReference(halves);
            ref var f = ref MemoryMarshal.GetReference(destination);
            var magic = Vector512.Create(0x77800000).AsSingle();
            var exponent = Vector512.Create(0x7C00u);
            for (; i + 16 <= destination.Length; i += 16)
            {
                Widen(Vector256.LoadUnsafe(ref h, (nuint)i), magic, exponent).StoreUnsafe(ref f, (nuint)i);
            }
        }

        for (; i < destination.Length; i++)
        {
            destination[i] = HalfTable[halves[i]];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen(Vector256<ushort> halves, Vector512<float> magic, Vector512<uint> exponent)
    {
        var bits = Avx512F.ConvertToVector512UInt32(halves);
        var magnitude = (Vector512.ShiftLeft(bits & Vector512.Create(0x7FFFu), 13).AsSingle() * magic).AsUInt32();
        var special = Vector512.Equals(bits & exponent, exponent) & Vector512.Create(0x7F800000u);
        return (magnitude | special | Vector512.ShiftLeft(bits & Vector512.Create(0x8000u), 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Widen(Vector128<ushort> halves, Vector256<float> magic, Vector256<uint> exponent)
    {
        var (lower, upper) = Vector128.Widen(halves);
        var bits = Vector256.Create(lower, upper);
        var magnitude = (Vector256.ShiftLeft(bits & Vector256.Create(0x7FFFu), 13).AsSingle() * magic).AsUInt32();
        var special = Vector256.Equals(bits & exponent, exponent) & Vector256.Create(0x7F800000u);
        return (magnitude | special | Vector256.ShiftLeft(bits & Vector256.Create(0x8000u), 16)).AsSingle();
    }

    /// <summary>Dot product of a BF16 row with float activations: a bfloat16 is the top half of a float.</summary>
    public static float DotBF16(ReadOnlySpan<byte> row, ReadOnlySpan<float> x)
    {
        var halves = MemoryMarshal.Cast<byte, ushort>(row);
        var n = x.Length;
        var i = 0;
        var sum = 0f;
        if (Avx512F.IsSupported && n >= 32)
        {
            ref var h = ref MemoryMarshal.GetReference(halves);
            ref var f = ref MemoryMarshal.GetReference(x);
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i + 32 <= n; i += 32)
            {
                var a = Vector512.ShiftLeft(Avx512F.ConvertToVector512UInt32(Vector256.LoadUnsafe(ref h, (nuint)i)), 16).AsSingle();
                var b = Vector512.ShiftLeft(Avx512F.ConvertToVector512UInt32(Vector256.LoadUnsafe(ref h, (nuint)(i + 16))), 16).AsSingle();
                acc0 = Vector512.FusedMultiplyAdd(a, Vector512.LoadUnsafe(ref f, (nuint)i), acc0);
                acc1 = Vector512.FusedMultiplyAdd(b, Vector512.LoadUnsafe(ref f, (nuint)(i + 16)), acc1);
            }

            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            ref var h = ref MemoryMarshal.GetReference(halves);
            ref var f = ref MemoryMarshal.GetReference(x);
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var (a, b) = Vector256.Widen(Vector256.LoadUnsafe(ref h, (nuint)i));
                acc0 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(a, 16).AsSingle(), Vector256.LoadUnsafe(ref f, (nuint)i), acc0);
                acc1 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(b, 16).AsSingle(), Vector256.LoadUnsafe(ref f, (nuint)(i + 8)), acc1);
            }

            sum = Vector256.Sum(acc0 + acc1);
        }

        for (; i < n; i++)
        {
            sum += BitConverter.Int32BitsToSingle(halves[i] << 16) * x[i];
        }

        return sum;
    }

    /// <summary>
    /// Dots of one Q8_0 or Q4_0 row with four tokens' Q8_0 activations (rows <paramref name="token"/> to +3 of a batch
    /// whose rows are <paramref name="columns"/> long): each weight block is loaded, unpacked and made unsigned once
    /// for all four, and with AVX-VNNI one instruction does the byte products and their sums.
    /// </summary>
    public static void DotTokens4(bool q4, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> xq, ReadOnlySpan<float> xd, int columns, int token, Span<float> result)
    {
        var blocks = columns / Q8Block;
        if (!FastPath)
        {
            for (var k = 0; k < 4; k++)
            {
                var q = xq.Slice((token + k) * columns, columns);
                var d = xd.Slice((token + k) * blocks, blocks);
                result[k] = q4 ? DotQ4(row, q, d) : DotQ8(row, q, d);
            }

            return;
        }

        ref var w = ref MemoryMarshal.GetReference(row);
        ref var x = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetReference(xq));
        ref var scales = ref MemoryMarshal.GetReference(xd);
        var low = Vector128.Create((byte)0x0F);
        var eight = Vector256.Create((sbyte)8);
        var ones = Vector256.Create((short)1);
        var vnni = AvxVnni.IsSupported;
        var blockBytes = q4 ? 18 : 34;
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        nuint x0 = (nuint)(token * columns), x1 = x0 + (nuint)columns, x2 = x1 + (nuint)columns, x3 = x2 + (nuint)columns;
        int s0 = token * blocks, s1 = s0 + blocks, s2 = s1 + blocks, s3 = s2 + blocks;
        for (var b = 0; b < blocks; b++)
        {
            var offset = (nuint)(b * blockBytes);
            var dw = HalfTable[Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref w, offset))];
            Vector256<sbyte> wq;
            if (q4)
            {
                var packed = Vector128.LoadUnsafe(ref w, offset + 2);
                wq = Avx2.Subtract(Vector256.Create(packed & low, Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & low).AsSByte(), eight);
            }
            else
            {
                wq = Vector256.LoadUnsafe(ref w, offset + 2).AsSByte();
            }

            var magnitude = Avx2.Abs(wq);
            var column = (nuint)(b * Q8Block);
            acc0 = Accumulate(magnitude, wq, Vector256.LoadUnsafe(ref x, x0 + column).AsSByte(), dw * Unsafe.Add(ref scales, s0 + b), acc0, vnni, ones);
            acc1 = Accumulate(magnitude, wq, Vector256.LoadUnsafe(ref x, x1 + column).AsSByte(), dw * Unsafe.Add(ref scales, s1 + b), acc1, vnni, ones);
            acc2 = Accumulate(magnitude, wq, Vector256.LoadUnsafe(ref x, x2 + column).AsSByte(), dw * Unsafe.Add(ref scales, s2 + b), acc2, vnni, ones);
            acc3 = Accumulate(magnitude, wq, Vector256.LoadUnsafe(ref x, x3 + column).AsSByte(), dw * Unsafe.Add(ref scales, s3 + b), acc3, vnni, ones);
        }

        result[0] = Vector256.Sum(acc0);
        result[1] = Vector256.Sum(acc1);
        result[2] = Vector256.Sum(acc2);
        result[3] = Vector256.Sum(acc3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Accumulate(Vector256<byte> magnitude, Vector256<sbyte> w, Vector256<sbyte> x, float scale, Vector256<float> acc, bool vnni, Vector256<short> ones)
    {
        var signed = Avx2.Sign(x, w);
        var sums = vnni
            ? AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, magnitude, signed)
            : Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, signed), ones);
        return Fma.MultiplyAdd(Vector256.Create(scale), Avx.ConvertToVector256Single(sums), acc);
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
