// AVX-512 matrix kernels for decode (one token) and for what PanelKernels does not take. The ideas are ggml's (8-bit
// activations, integer dot products per block, one float multiply-add per block), the code is this engine's own:
// Q8_0/Q4_0 rows are dotted 128 columns (four blocks) at a time and Q4_K/Q6_K rows a 256-value super-block at a time,
// unpacked in registers, with the float work 16 lanes wide; F16/BF16/F32 batches are tiled four rows by four tokens
// over rows converted to floats once per four.
using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using GoblinAspire.ChatFallback.Gguf;

namespace GoblinAspire.ChatFallback.Inference;

/// <summary>The tiled AVX-512 kernels of <see cref="WeightMatrix"/>; <see cref="Handles"/> says when they apply.</summary>
public static class TiledKernels
{
    /// <summary>
    /// AVX-512 BW for the 64-byte integer work; AVX-VNNI for Q8_0's signed weights (.NET 10 exposes VNNI's
    /// four-product sums at 256 bits only, so Q8_0 uses two of those per 64 bytes).
    /// </summary>
    public static bool Supported { get; } = Avx512BW.IsSupported && Avx512F.IsSupported && AvxVnni.IsSupported;

    public static bool Handles(GgmlType type, int columns) => Supported && type switch
    {
        GgmlType.Q4_0 or GgmlType.Q8_0 => columns % 128 == 0,
        GgmlType.Q4_K or GgmlType.Q6_K => columns % 256 == 0,
        GgmlType.F16 or GgmlType.BF16 or GgmlType.F32 => columns % 16 == 0,
        _ => false,
    };

    /// <summary>The 8-bit activation forms the kernel for <paramref name="type"/> reads.</summary>
    public static ActivationForms FormsFor(GgmlType type) => type switch
    {
        GgmlType.Q4_0 or GgmlType.Q8_0 => ActivationForms.Groups,
        GgmlType.Q4_K or GgmlType.Q6_K => ActivationForms.SuperBlocks,
        _ => ActivationForms.None,
    };

    /// <summary>
    /// Rows [<paramref name="from"/>, <paramref name="to"/>) of <c>Y = X·Wᵀ</c> for the first <paramref name="tokens"/>
    /// rows of <paramref name="x"/>; <paramref name="y"/> holds one row of <paramref name="rows"/> outputs per token.
    /// </summary>
    public static void Multiply(GgmlType type, byte[] data, int rowBytes, int rows, int columns, ActivationBatch x, int tokens, float[] y, int from, int to)
    {
        switch (type)
        {
            case GgmlType.Q4_0:
                Groups<Q4_0Group>(data, rowBytes, rows, columns, x, x.GroupFactors4, tokens, y, from, to);
                break;
            case GgmlType.Q8_0:
                Groups<Q8_0Group>(data, rowBytes, rows, columns, x, x.GroupFactors8, tokens, y, from, to);
                break;
            case GgmlType.Q4_K:
                SuperQ4K(data, rowBytes, rows, columns, x, tokens, y, from, to);
                break;
            case GgmlType.Q6_K:
                for (var t = 0; t < tokens; t++)
                {
                    for (var r = from; r < to; r++)
                    {
                        y[(t * rows) + r] = DotQ6K(data, r * rowBytes, columns, x, t);
                    }
                }

                break;
            default:
                Floats(type, data, rowBytes, rows, columns, x, tokens, y, from, to);
                break;
        }
    }

    // ---- Q8_0 and Q4_0: groups of four 32-value blocks ----

    private interface IGroupFormat
    {
        /// <summary>Bytes of four blocks.</summary>
        static abstract int GroupBytes { get; }

        /// <summary>
        /// A group's weights as unsigned bytes in <see cref="ActivationBatch.GroupQuants"/>'s order (first halves of
        /// the four blocks, then second halves) and its block scales spread to 16 lanes.
        /// </summary>
        static abstract void Prepare(ref byte group, out Vector512<byte> low, out Vector512<byte> high, out Vector512<float> scale);

        /// <summary>Per 32-bit lane, the sum of four weight-activation byte products (four lanes per block).</summary>
        static abstract Vector512<int> Dot(Vector512<byte> low, Vector512<byte> high, Vector512<sbyte> xLow, Vector512<sbyte> xHigh);
    }

    /// <summary>Q4_0: nibbles 0–15 are already unsigned; the offset of 8 is taken off through the activation sums.</summary>
    private readonly struct Q4_0Group : IGroupFormat
    {
        public static int GroupBytes => 72;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prepare(ref byte group, out Vector512<byte> low, out Vector512<byte> high, out Vector512<float> scale)
        {
            var packed = Vector512.Create(
                Vector256.Create(Vector128.LoadUnsafe(ref group, 2), Vector128.LoadUnsafe(ref group, 20)),
                Vector256.Create(Vector128.LoadUnsafe(ref group, 38), Vector128.LoadUnsafe(ref group, 56)));
            var mask = Vector512.Create((byte)0x0F);
            low = packed & mask;
            high = Vector512.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & mask;
            scale = Spread(ref group, 18);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Dot(Vector512<byte> low, Vector512<byte> high, Vector512<sbyte> xLow, Vector512<sbyte> xHigh)
        {
            // Each byte product is at most 15·127, so the pairs, and the sum of both halves' pairs, fit in 16 bits.
            var pairs = Avx512BW.Add(Avx512BW.MultiplyAddAdjacent(low, xLow), Avx512BW.MultiplyAddAdjacent(high, xHigh));
            return Avx512BW.MultiplyAddAdjacent(pairs, Vector512.Create((short)1));
        }
    }

    /// <summary>Q8_0: weights made unsigned (w + 128) for VNNI's unsigned×signed products; the 128·Σx comes off later.</summary>
    private readonly struct Q8_0Group : IGroupFormat
    {
        public static int GroupBytes => 136;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prepare(ref byte group, out Vector512<byte> low, out Vector512<byte> high, out Vector512<float> scale)
        {
            var a = Vector512.Create(Vector256.LoadUnsafe(ref group, 2), Vector256.LoadUnsafe(ref group, 36)).AsUInt64();
            var b = Vector512.Create(Vector256.LoadUnsafe(ref group, 70), Vector256.LoadUnsafe(ref group, 104)).AsUInt64();
            var flip = Vector512.Create((byte)0x80);
            low = Avx512F.PermuteVar8x64x2(a, Vector512.Create(0ul, 1, 4, 5, 8, 9, 12, 13), b).AsByte() ^ flip;
            high = Avx512F.PermuteVar8x64x2(a, Vector512.Create(2ul, 3, 6, 7, 10, 11, 14, 15), b).AsByte() ^ flip;
            scale = Spread(ref group, 34);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Dot(Vector512<byte> low, Vector512<byte> high, Vector512<sbyte> xLow, Vector512<sbyte> xHigh)
        {
            var first = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, low.GetLower(), xLow.GetLower());
            first = AvxVnni.MultiplyWideningAndAdd(first, high.GetLower(), xHigh.GetLower());
            var second = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, low.GetUpper(), xLow.GetUpper());
            second = AvxVnni.MultiplyWideningAndAdd(second, high.GetUpper(), xHigh.GetUpper());
            return Vector512.Create(first, second);
        }
    }

    /// <summary>The f16 scales at the start of four blocks <paramref name="stride"/> bytes apart, each in four lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Spread(ref byte group, int stride)
    {
        var table = Quants.HalfTable;
        var scales = Vector128.Create(
            table[Unsafe.ReadUnaligned<ushort>(ref group)],
            table[Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref group, stride))],
            table[Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref group, 2 * stride))],
            table[Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref group, 3 * stride))]);
        return Avx512F.PermuteVar16x32(scales.ToVector256Unsafe().ToVector512Unsafe(), Vector512.Create(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
    }

    /// <summary>
    /// One group of one row against one token: acc + d_w ⊙ (d_x ⊙ Σ + offset), 16 lanes. A token group's four scales
    /// and four offsets are read as 32 bytes and spread to lanes in registers: the activations' side is what streams
    /// from L2 in a prefill, so it is kept small.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Step<TFormat>(Vector512<byte> low, Vector512<byte> high, Vector512<float> scale, ref byte xq, nuint q, ref float xs, nuint s, Vector512<float> acc)
        where TFormat : struct, IGroupFormat
    {
        var dot = TFormat.Dot(low, high, Vector512.LoadUnsafe(ref xq, q).AsSByte(), Vector512.LoadUnsafe(ref xq, q + 64).AsSByte());
        var factors = Vector256.LoadUnsafe(ref xs, s).ToVector512Unsafe();
        var dx = Avx512F.PermuteVar16x32(factors, Vector512.Create(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
        var offset = Avx512F.PermuteVar16x32(factors, Vector512.Create(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7));
        var scaled = Vector512.FusedMultiplyAdd(dx, Avx512F.ConvertToVector512Single(dot), offset);
        return Vector512.FusedMultiplyAdd(scale, scaled, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Groups<TFormat>(byte[] data, int rowBytes, int rows, int columns, ActivationBatch x, float[] factors, int tokens, float[] y, int from, int to)
        where TFormat : struct, IGroupFormat
    {
        var groups = columns / 128;
        var groupBytes = TFormat.GroupBytes;
        ref var w = ref MemoryMarshal.GetArrayDataReference(data);
        ref var xq = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetArrayDataReference(x.GroupQuants));
        ref var xs = ref MemoryMarshal.GetArrayDataReference(factors);
        var laneStride = columns / 16;

        // A row at a time, unpacked in registers: decode, and the few rows a batch leaves after PanelKernels' panels.
        for (var r = from; r < to; r++)
        {
            ref var row = ref Unsafe.Add(ref w, (nint)r * rowBytes);
            for (var t = 0; t < tokens; t++)
            {
                var acc0 = Vector512<float>.Zero;
                var acc1 = Vector512<float>.Zero;
                var q = (nuint)(t * columns);
                var s = (nuint)(t * laneStride);
                var g = 0;
                for (; g + 2 <= groups; g += 2)
                {
                    TFormat.Prepare(ref Unsafe.Add(ref row, g * groupBytes), out var low, out var high, out var scale);
                    acc0 = Step<TFormat>(low, high, scale, ref xq, q + (nuint)(g * 128), ref xs, s + (nuint)(g * 8), acc0);
                    TFormat.Prepare(ref Unsafe.Add(ref row, (g + 1) * groupBytes), out low, out high, out scale);
                    acc1 = Step<TFormat>(low, high, scale, ref xq, q + (nuint)((g + 1) * 128), ref xs, s + (nuint)((g + 1) * 8), acc1);
                }

                if (g < groups)
                {
                    TFormat.Prepare(ref Unsafe.Add(ref row, g * groupBytes), out var low, out var high, out var scale);
                    acc0 = Step<TFormat>(low, high, scale, ref xq, q + (nuint)(g * 128), ref xs, s + (nuint)(g * 8), acc0);
                }

                y[(t * rows) + r] = Vector512.Sum(acc0 + acc1);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store4(float[] y, int rows, int t, int r, Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3)
    {
        var o = (t * rows) + r;
        y[o] = Vector512.Sum(a0);
        y[o + 1] = Vector512.Sum(a1);
        y[o + 2] = Vector512.Sum(a2);
        y[o + 3] = Vector512.Sum(a3);
    }

    // ---- Q4_K: 256-value super-blocks against activations with one scale per 256 ----

    /// <summary>maddubs leaves 32 pair sums per 64 values from 64g: the first 16 belong to sub-block 2g, the rest to 2g+1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> SubBlockControl(int g) => Vector512.ShiftRightLogical(Vector512<short>.Indices, 4) + Vector512.Create((short)(2 * g));

    /// <summary>
    /// Q4_K's twelve bytes of 6-bit scales and minimums, unpacked with word-wide masks (bytes 0–3 hold scales 0–3 and
    /// the top bits of scales 4–7, bytes 4–7 minimums 0–3 and the top bits of minimums 4–7, bytes 8–11 the low
    /// nibbles of both): scales as 16-bit lanes 0–7, and dmin·minimum as floats in lanes 0–7 (the rest zero).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void UnpackScales(ref byte block, out Vector512<short> scales, out Vector512<float> mins)
    {
        var a = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref block, 4));
        var b = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref block, 8));
        var c = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref block, 12));
        var scaleBytes = (a & 0x3F3F3F3Fu) | ((ulong)((c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u)) << 32);
        var minBytes = (b & 0x3F3F3F3Fu) | ((ulong)(((c >> 4) & 0x0F0F0F0Fu) | ((b >> 2) & 0x30303030u)) << 32);
        scales = Avx2.ConvertToVector256Int16(Vector128.CreateScalarUnsafe(scaleBytes).AsByte()).ToVector512Unsafe();
        var dmin = Quants.HalfTable[Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref block, 2))];
        mins = (Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Vector128.CreateScalarUnsafe(minBytes).AsByte())) * dmin).ToVector512();
    }

    /// <summary>One Q4_K super-block of one row against one token, unpacked in registers (decode).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> DirectQ4K(ref byte block, ref byte xq, nuint q, float dx, ref float xm, nuint m, Vector512<float> acc)
    {
        var mask = Vector256.Create((byte)0x0F);
        UnpackScales(ref block, out var scales, out var mins);
        var sums = Vector512<int>.Zero;
        for (var g = 0; g < 4; g++)
        {
            var packed = Vector256.LoadUnsafe(ref block, (nuint)(16 + (32 * g)));
            var w = Vector512.Create(packed & mask, Vector256.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & mask);
            sums += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(w, Vector512.LoadUnsafe(ref xq, q + (nuint)(64 * g)).AsSByte()), Avx512BW.PermuteVar32x16(scales, SubBlockControl(g)));
        }

        acc = Vector512.FusedMultiplyAdd(mins, Vector512.LoadUnsafe(ref xm, m), acc);
        var d = Quants.HalfTable[Unsafe.ReadUnaligned<ushort>(ref block)] * dx;
        return Vector512.FusedMultiplyAdd(Vector512.Create(d), Avx512F.ConvertToVector512Single(sums), acc);
    }

    /// <summary>A row at a time, unpacked in registers: decode, and the few rows a batch leaves after PanelKernels' panels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SuperQ4K(byte[] data, int rowBytes, int rows, int columns, ActivationBatch x, int tokens, float[] y, int from, int to)
    {
        var supers = columns / 256;
        ref var w = ref MemoryMarshal.GetArrayDataReference(data);
        ref var xq = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetArrayDataReference(x.SuperQuants));
        ref var xd = ref MemoryMarshal.GetArrayDataReference(x.SuperScales);
        ref var xm = ref MemoryMarshal.GetArrayDataReference(x.SuperMins);
        for (var r = from; r < to; r++)
        {
            ref var row = ref Unsafe.Add(ref w, (nint)r * rowBytes);
            for (var t = 0; t < tokens; t++)
            {
                var acc0 = Vector512<float>.Zero;
                var acc1 = Vector512<float>.Zero;
                var s = 0;
                for (; s + 2 <= supers; s += 2)
                {
                    var k = (t * supers) + s;
                    acc0 = DirectQ4K(ref Unsafe.Add(ref row, s * 144), ref xq, (nuint)((t * columns) + (s * 256)), Unsafe.Add(ref xd, k), ref xm, (nuint)(k * 16), acc0);
                    acc1 = DirectQ4K(ref Unsafe.Add(ref row, (s + 1) * 144), ref xq, (nuint)((t * columns) + ((s + 1) * 256)), Unsafe.Add(ref xd, k + 1), ref xm, (nuint)((k + 1) * 16), acc1);
                }

                if (s < supers)
                {
                    var k = (t * supers) + s;
                    acc0 = DirectQ4K(ref Unsafe.Add(ref row, s * 144), ref xq, (nuint)((t * columns) + (s * 256)), Unsafe.Add(ref xd, k), ref xm, (nuint)(k * 16), acc0);
                }

                y[(t * rows) + r] = Vector512.Sum(acc0 + acc1);
            }
        }
    }

    // ---- Q6_K (the output matrix of Q4_K_M files): one row against one token ----

    /// <summary>
    /// Q6_K against activations with one scale per 256: the 6-bit quants (0–63) as unsigned bytes, their int8 scales
    /// per 16 values through the pair sums, and the offset of 32 taken off as 32·Σ scale·Σx per 16 values.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotQ6K(byte[] data, int offset, int columns, ActivationBatch x, int token)
    {
        var supers = columns / 256;
        ref var w = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(data), offset);
        ref var xq = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetArrayDataReference(x.SuperQuants));
        ref var xd = ref MemoryMarshal.GetArrayDataReference(x.SuperScales);
        ref var xs = ref MemoryMarshal.GetArrayDataReference(x.SuperSums16);
        var mask = Vector512.Create((byte)0x0F);
        var three = Vector512.Create((byte)3);
        var acc = Vector512<float>.Zero;
        for (var s = 0; s < supers; s++)
        {
            ref var block = ref Unsafe.Add(ref w, s * 210);
            var scales = Avx2.ConvertToVector256Int16(Vector128.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref block), 192));
            var spread = scales.ToVector512Unsafe();
            var q = (nuint)((token * columns) + (s * 256));
            var sums = Vector512<int>.Zero;
            for (var half = 0; half < 2; half++)
            {
                var low = Vector512.LoadUnsafe(ref block, (nuint)(64 * half));
                var bits = Vector256.LoadUnsafe(ref block, (nuint)(128 + (32 * half)));
                var bits01 = Vector512.Create(bits, Vector256.ShiftRightLogical(bits.AsUInt16(), 2).AsByte()) & three;
                var bits23 = Vector512.Create(Vector256.ShiftRightLogical(bits.AsUInt16(), 4).AsByte(), Vector256.ShiftRightLogical(bits.AsUInt16(), 6).AsByte()) & three;
                var w0 = (low & mask) | Vector512.ShiftLeft(bits01.AsUInt16(), 4).AsByte();
                var w1 = (Vector512.ShiftRightLogical(low.AsUInt16(), 4).AsByte() & mask) | Vector512.ShiftLeft(bits23.AsUInt16(), 4).AsByte();
                var k = 2 * half;
                sums += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(w0, Vector512.LoadUnsafe(ref xq, q + (nuint)(128 * half)).AsSByte()), Avx512BW.PermuteVar32x16(spread, ScaleControl(k)));
                sums += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(w1, Vector512.LoadUnsafe(ref xq, q + (nuint)((128 * half) + 64)).AsSByte()), Avx512BW.PermuteVar32x16(spread, ScaleControl(k + 1)));
            }

            var offsets = Avx2.MultiplyAddAdjacent(scales, Vector256.LoadUnsafe(ref xs, (nuint)(((token * supers) + s) * 16)));
            sums -= Vector256.ShiftLeft(offsets, 5).ToVector512();
            var d = Quants.HalfTable[Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref block, 208))] * Unsafe.Add(ref xd, (token * supers) + s);
            acc = Vector512.FusedMultiplyAdd(Vector512.Create(d), Avx512F.ConvertToVector512Single(sums), acc);
        }

        return Vector512.Sum(acc);
    }

    /// <summary>For the 64 values from 64k: pair sum l (two values) takes scale 4k + l/8 (a scale covers 16 values).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> ScaleControl(int k) => Vector512.ShiftRightLogical(Vector512<short>.Indices, 3) + Vector512.Create((short)(4 * k));

    // ---- F32, F16, BF16: float rows, converted once per four rows and reused for every tile of four tokens ----

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Floats(GgmlType type, byte[] data, int rowBytes, int rows, int columns, ActivationBatch x, int tokens, float[] y, int from, int to)
    {
        ref var xf = ref MemoryMarshal.GetArrayDataReference(x.Values);
        var r = from;
        if (tokens >= 4)
        {
            var converted = ArrayPool<float>.Shared.Rent(4 * columns);
            try
            {
                ref var c = ref MemoryMarshal.GetArrayDataReference(converted);
                for (; r + 4 <= to; r += 4)
                {
                    for (var rr = 0; rr < 4; rr++)
                    {
                        Convert(type, data.AsSpan((r + rr) * rowBytes, rowBytes), converted.AsSpan(rr * columns, columns));
                    }

                    var t = 0;
                    for (; t + 4 <= tokens; t += 4)
                    {
                        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
                        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
                        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
                        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
                        var x0 = (nuint)(t * columns);
                        var x1 = x0 + (nuint)columns;
                        var x2 = x1 + (nuint)columns;
                        var x3 = x2 + (nuint)columns;
                        for (var i = 0; i < columns; i += 16)
                        {
                            var k = (nuint)i;
                            var v0 = Vector512.LoadUnsafe(ref xf, x0 + k);
                            var v1 = Vector512.LoadUnsafe(ref xf, x1 + k);
                            var v2 = Vector512.LoadUnsafe(ref xf, x2 + k);
                            var v3 = Vector512.LoadUnsafe(ref xf, x3 + k);
                            var w0 = Vector512.LoadUnsafe(ref c, k);
                            a00 = Vector512.FusedMultiplyAdd(w0, v0, a00);
                            a01 = Vector512.FusedMultiplyAdd(w0, v1, a01);
                            a02 = Vector512.FusedMultiplyAdd(w0, v2, a02);
                            a03 = Vector512.FusedMultiplyAdd(w0, v3, a03);
                            var w1 = Vector512.LoadUnsafe(ref c, (nuint)columns + k);
                            a10 = Vector512.FusedMultiplyAdd(w1, v0, a10);
                            a11 = Vector512.FusedMultiplyAdd(w1, v1, a11);
                            a12 = Vector512.FusedMultiplyAdd(w1, v2, a12);
                            a13 = Vector512.FusedMultiplyAdd(w1, v3, a13);
                            var w2 = Vector512.LoadUnsafe(ref c, (nuint)(2 * columns) + k);
                            a20 = Vector512.FusedMultiplyAdd(w2, v0, a20);
                            a21 = Vector512.FusedMultiplyAdd(w2, v1, a21);
                            a22 = Vector512.FusedMultiplyAdd(w2, v2, a22);
                            a23 = Vector512.FusedMultiplyAdd(w2, v3, a23);
                            var w3 = Vector512.LoadUnsafe(ref c, (nuint)(3 * columns) + k);
                            a30 = Vector512.FusedMultiplyAdd(w3, v0, a30);
                            a31 = Vector512.FusedMultiplyAdd(w3, v1, a31);
                            a32 = Vector512.FusedMultiplyAdd(w3, v2, a32);
                            a33 = Vector512.FusedMultiplyAdd(w3, v3, a33);
                        }

                        Store4(y, rows, t, r, a00, a10, a20, a30);
                        Store4(y, rows, t + 1, r, a01, a11, a21, a31);
                        Store4(y, rows, t + 2, r, a02, a12, a22, a32);
                        Store4(y, rows, t + 3, r, a03, a13, a23, a33);
                    }

                    for (; t < tokens; t++)
                    {
                        var v = x.Values.AsSpan(t * columns, columns);
                        for (var rr = 0; rr < 4; rr++)
                        {
                            y[(t * rows) + r + rr] = TensorPrimitives.Dot(converted.AsSpan(rr * columns, columns), v);
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(converted);
            }
        }

        for (; r < to; r++)
        {
            var row = data.AsSpan(r * rowBytes, rowBytes);
            for (var t = 0; t < tokens; t++)
            {
                var v = x.Values.AsSpan(t * columns, columns);
                y[(t * rows) + r] = type switch
                {
                    GgmlType.F16 => Quants.DotF16(row, v),
                    GgmlType.BF16 => Quants.DotBF16(row, v),
                    _ => TensorPrimitives.Dot(MemoryMarshal.Cast<byte, float>(row), v),
                };
            }
        }
    }

    private static void Convert(GgmlType type, ReadOnlySpan<byte> row, Span<float> destination)
    {
        switch (type)
        {
            case GgmlType.F16:
                Quants.ConvertF16(row, destination);
                break;
            case GgmlType.BF16:
                ref var h = ref MemoryMarshal.GetReference(MemoryMarshal.Cast<byte, ushort>(row));
                ref var f = ref MemoryMarshal.GetReference(destination);
                for (var i = 0; i < destination.Length; i += 16)
                {
                    Vector512.ShiftLeft(Avx512F.ConvertToVector512UInt32(Vector256.LoadUnsafe(ref h, (nuint)i)), 16).AsSingle().StoreUnsafe(ref f, (nuint)i);
                }

                break;
            default:
                MemoryMarshal.Cast<byte, float>(row).CopyTo(destination);
                break;
        }
    }
}
