// Prefill kernels for Q4_0, Q8_0 and Q4_K weights over panels of 16 rows. Written here for the same reason as
// Quants.cs (no package does GGML's block formats); the idea is ggml's repacked layouts, the code is this engine's own.
// A panel's weights are unpacked once per prompt chunk into 32-bit lanes that each belong to one row, four consecutive
// values of a block per lane, so one byte-product instruction against four broadcast activation bytes advances sixteen
// rows at once: the sums come out already one row per lane, and the per-block float work (offset, scale, accumulate)
// is done once for sixteen rows instead of per row. TiledKernels' row-by-row layout needs a reduction and two
// multiply-adds per four blocks of every row.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using GoblinAspire.ChatFallback.Gguf;

namespace GoblinAspire.ChatFallback.Inference;

/// <summary>Matrix products over 16-row panels of Q4_0/Q8_0/Q4_K weights, for batches of at least <see cref="MinimumTokens"/> tokens.</summary>
public static class PanelKernels
{
    /// <summary>Rows per panel: one per 32-bit lane of a 512-bit register.</summary>
    public const int PanelRows = 16;

    /// <summary>Below this many tokens unpacking a panel costs more than it saves, and the tiled kernels run.</summary>
    public const int MinimumTokens = 4;

    // Per 32-value block: eight 64-byte vectors (vector k holds values 4k..4k+3 of each row) and the 16 rows' scales.
    private const int BlockBytes = (8 * 64) + 64;

    // Per 256-value super-block of Q4_K: eight sub-blocks of eight weight vectors, then per sub-block its 6-bit scale
    // (in both 16-bit halves of each row's lane), per sub-block dmin·min as floats, and d.
    private const int SuperBytes = (8 * 8 * 64) + (8 * 64) + (8 * 64) + 64;

    [ThreadStatic]
    private static byte[]? t_panel;

    public static bool Handles(GgmlType type, int columns) => TiledKernels.Supported && type switch
    {
        GgmlType.Q4_0 or GgmlType.Q8_0 => columns % Quants.Q8Block == 0,
        GgmlType.Q4_K => columns % 256 == 0,
        _ => false,
    };

    /// <summary>The 8-bit activation forms the panel kernel for <paramref name="type"/> reads.</summary>
    public static ActivationForms FormsFor(GgmlType type) => type == GgmlType.Q4_K ? ActivationForms.SuperBlocks : ActivationForms.Panels;

    /// <summary>
    /// Rows [<paramref name="from"/>, <paramref name="to"/>), whole panels, of <c>Y = X·Wᵀ</c> for the first
    /// <paramref name="tokens"/> rows of <paramref name="x"/>, quantised in the forms of <see cref="FormsFor"/>.
    /// </summary>
    public static void Multiply(GgmlType type, byte[] data, int rowBytes, int rows, int columns, ActivationBatch x, int tokens, float[] y, int from, int to)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (from % PanelRows != 0 || (to - from) % PanelRows != 0)
        {
            throw new ArgumentException("panels start and end on multiples of 16 rows");
        }

        if (type == GgmlType.Q4_K)
        {
            MultiplyQ4K(data, rowBytes, rows, columns, x, tokens, y, from, to);
            return;
        }

        var blocks = columns / Quants.Q8Block;
        ref var panel = ref AlignedPanel(blocks * BlockBytes);
        ref var xq = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetArrayDataReference(x.Quantized));
        ref var dx = ref MemoryMarshal.GetArrayDataReference(x.Scales);
        ref var offsets = ref MemoryMarshal.GetArrayDataReference(type == GgmlType.Q4_0 ? x.PanelOffsets4 : x.PanelOffsets8);
        ref var output = ref MemoryMarshal.GetArrayDataReference(y);
        for (var r = from; r < to; r += PanelRows)
        {
            Prepare(type, data, rowBytes, r, blocks, ref panel);
            var t = 0;
            for (; t + 4 <= tokens; t += 4)
            {
                ref var o = ref Unsafe.Add(ref output, (t * rows) + r);
                if (type == GgmlType.Q4_0)
                {
                    Tile4<Q4Panel>(ref panel, blocks, ref xq, ref dx, ref offsets, columns, t, ref o, rows);
                }
                else
                {
                    Tile4<Q8Panel>(ref panel, blocks, ref xq, ref dx, ref offsets, columns, t, ref o, rows);
                }
            }

            for (; t < tokens; t++)
            {
                ref var o = ref Unsafe.Add(ref output, (t * rows) + r);
                if (type == GgmlType.Q4_0)
                {
                    Tile1<Q4Panel>(ref panel, blocks, ref xq, ref dx, ref offsets, columns, t, ref o);
                }
                else
                {
                    Tile1<Q8Panel>(ref panel, blocks, ref xq, ref dx, ref offsets, columns, t, ref o);
                }
            }
        }
    }

    /// <summary>
    /// This thread's panel buffer, pinned and 64-byte aligned so no vector load splits a cache line; kept between
    /// calls because a prefill asks for one per matrix per chunk.
    /// </summary>
    private static ref byte AlignedPanel(int bytes)
    {
        var buffer = t_panel;
        if (buffer is null || buffer.Length < bytes + 64)
        {
            buffer = t_panel = GC.AllocateUninitializedArray<byte>(bytes + 64, pinned: true);
        }

        ref var start = ref MemoryMarshal.GetArrayDataReference(buffer);
        var misalignment = (int)(Unsafe.ByteOffset(ref Unsafe.NullRef<byte>(), ref start) & 63);
        return ref Unsafe.Add(ref start, misalignment == 0 ? 0 : 64 - misalignment);
    }

    /// <summary>
    /// Unpacks rows r0..r0+15 into the panel layout: weights as unsigned bytes (Q4_0's nibbles as they are, Q8_0's
    /// values + 128; the offsets come off through the activations' block sums) and each block's 16 scales as floats.
    /// </summary>
    private static void Prepare(GgmlType type, byte[] data, int rowBytes, int r0, int blocks, ref byte panel)
    {
        var table = Quants.HalfTable;
        ref var w = ref MemoryMarshal.GetArrayDataReference(data);
        var q4 = type == GgmlType.Q4_0;
        var blockBytes = q4 ? 18 : 34;
        var mask = Vector128.Create((byte)0x0F);
        Span<uint> words = stackalloc uint[8];
        ref var word = ref Unsafe.As<uint, byte>(ref MemoryMarshal.GetReference(words));
        for (var rr = 0; rr < PanelRows; rr++)
        {
            ref var row = ref Unsafe.Add(ref w, (nint)(r0 + rr) * rowBytes);
            for (var b = 0; b < blocks; b++)
            {
                ref var source = ref Unsafe.Add(ref row, b * blockBytes);
                var values = q4
                    ? Vector256.Create(Vector128.LoadUnsafe(ref source, 2) & mask, Vector128.ShiftRightLogical(Vector128.LoadUnsafe(ref source, 2).AsUInt16(), 4).AsByte() & mask)
                    : Vector256.LoadUnsafe(ref source, 2) ^ Vector256.Create((byte)0x80);
                values.StoreUnsafe(ref word);
                ref var destination = ref Unsafe.Add(ref panel, (b * BlockBytes) + (rr * 4));
                for (var k = 0; k < 8; k++)
                {
                    Unsafe.WriteUnaligned(ref Unsafe.Add(ref destination, k * 64), words[k]);
                }

                Unsafe.WriteUnaligned(ref Unsafe.Add(ref destination, 512), table[Unsafe.ReadUnaligned<ushort>(ref source)]);
            }
        }
    }

    /// <summary>The eight weight vectors of a 32-value block (vector k: values 4k..4k+3 of each row).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Load(ref byte p, out Vector512<byte> w0, out Vector512<byte> w1, out Vector512<byte> w2, out Vector512<byte> w3, out Vector512<byte> w4, out Vector512<byte> w5, out Vector512<byte> w6, out Vector512<byte> w7)
    {
        w0 = Vector512.LoadUnsafe(ref p);
        w1 = Vector512.LoadUnsafe(ref p, 64);
        w2 = Vector512.LoadUnsafe(ref p, 128);
        w3 = Vector512.LoadUnsafe(ref p, 192);
        w4 = Vector512.LoadUnsafe(ref p, 256);
        w5 = Vector512.LoadUnsafe(ref p, 320);
        w6 = Vector512.LoadUnsafe(ref p, 384);
        w7 = Vector512.LoadUnsafe(ref p, 448);
    }

    /// <summary>Four activation bytes, the same in every lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> Broadcast(ref byte xq, nuint offset) => Vector512.Create(Unsafe.ReadUnaligned<int>(ref Unsafe.Add(ref xq, offset))).AsSByte();

    /// <summary>acc + d_w ⊙ d_x·(Σ + offset): the block's scales per row in lanes; the token's scale and offset as scalars.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Scale(Vector512<int> dot, Vector512<float> dw, float dx, int offset, Vector512<float> acc) =>
        Vector512.FusedMultiplyAdd(dw, Avx512F.ConvertToVector512Single(dot + Vector512.Create(offset)) * Vector512.Create(dx), acc);

    /// <summary>
    /// One Q4_0 block of 16 rows against one token. A byte product pair is at most 2·15·127 and eight of them add to
    /// 30,480, so the eight products are summed in 16 bits before one widening to 32.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Q4Dot(Vector512<byte> w0, Vector512<byte> w1, Vector512<byte> w2, Vector512<byte> w3, Vector512<byte> w4, Vector512<byte> w5, Vector512<byte> w6, Vector512<byte> w7, ref byte xq, nuint o) =>
        Avx512BW.MultiplyAddAdjacent(Q4Sums(w0, w1, w2, w3, w4, w5, w6, w7, ref xq, o), Vector512.Create((short)1));

    /// <summary>
    /// One Q8_0 block of 16 rows against one token. Unsigned weights up to 255 would overflow the 16-bit pair sums,
    /// so this uses VNNI's 32-bit four-product sums, eight rows (256 bits) at a time, in four independent chains.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Q8Dot(ref byte p, ref byte xq, nuint o)
    {
        Vector256<int> lo0 = default, hi0 = default, lo1 = default, hi1 = default;
        for (nuint k = 0; k < 8; k += 2)
        {
            var x0 = Vector256.Create(Unsafe.ReadUnaligned<int>(ref Unsafe.Add(ref xq, o + (4 * k)))).AsSByte();
            var x1 = Vector256.Create(Unsafe.ReadUnaligned<int>(ref Unsafe.Add(ref xq, o + (4 * k) + 4))).AsSByte();
            lo0 = AvxVnni.MultiplyWideningAndAdd(lo0, Vector256.LoadUnsafe(ref p, 64 * k), x0);
            hi0 = AvxVnni.MultiplyWideningAndAdd(hi0, Vector256.LoadUnsafe(ref p, (64 * k) + 32), x0);
            lo1 = AvxVnni.MultiplyWideningAndAdd(lo1, Vector256.LoadUnsafe(ref p, (64 * k) + 64), x1);
            hi1 = AvxVnni.MultiplyWideningAndAdd(hi1, Vector256.LoadUnsafe(ref p, (64 * k) + 96), x1);
        }

        return Vector512.Create(lo0 + lo1, hi0 + hi1);
    }

    /// <summary>How one block of a Q4_0 or Q8_0 panel meets the activations.</summary>
    private interface IPanelFormat
    {
        /// <summary>The block's integer dots with four tokens' activations, at <paramref name="x0"/>..<paramref name="x3"/>.</summary>
        static abstract void Dots(ref byte p, ref byte xq, nuint x0, nuint x1, nuint x2, nuint x3, out Vector512<int> d0, out Vector512<int> d1, out Vector512<int> d2, out Vector512<int> d3);

        /// <summary>The block's integer dots with one token's activations.</summary>
        static abstract Vector512<int> Dot(ref byte p, ref byte xq, nuint x);
    }

    /// <summary>Q4_0: the block's eight weight vectors are loaded once and stay in registers for the four tokens.</summary>
    private readonly struct Q4Panel : IPanelFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dots(ref byte p, ref byte xq, nuint x0, nuint x1, nuint x2, nuint x3, out Vector512<int> d0, out Vector512<int> d1, out Vector512<int> d2, out Vector512<int> d3)
        {
            Load(ref p, out var w0, out var w1, out var w2, out var w3, out var w4, out var w5, out var w6, out var w7);
            d0 = Q4Dot(w0, w1, w2, w3, w4, w5, w6, w7, ref xq, x0);
            d1 = Q4Dot(w0, w1, w2, w3, w4, w5, w6, w7, ref xq, x1);
            d2 = Q4Dot(w0, w1, w2, w3, w4, w5, w6, w7, ref xq, x2);
            d3 = Q4Dot(w0, w1, w2, w3, w4, w5, w6, w7, ref xq, x3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Dot(ref byte p, ref byte xq, nuint x)
        {
            Load(ref p, out var w0, out var w1, out var w2, out var w3, out var w4, out var w5, out var w6, out var w7);
            return Q4Dot(w0, w1, w2, w3, w4, w5, w6, w7, ref xq, x);
        }
    }

    /// <summary>Q8_0: the VNNI products take their weights from memory (sixteen 256-bit halves would not fit beside the sums).</summary>
    private readonly struct Q8Panel : IPanelFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dots(ref byte p, ref byte xq, nuint x0, nuint x1, nuint x2, nuint x3, out Vector512<int> d0, out Vector512<int> d1, out Vector512<int> d2, out Vector512<int> d3)
        {
            d0 = Q8Dot(ref p, ref xq, x0);
            d1 = Q8Dot(ref p, ref xq, x1);
            d2 = Q8Dot(ref p, ref xq, x2);
            d3 = Q8Dot(ref p, ref xq, x3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Dot(ref byte p, ref byte xq, nuint x) => Q8Dot(ref p, ref xq, x);
    }

    /// <summary>Sixteen rows by four tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4<TFormat>(ref byte panel, int blocks, ref byte xq, ref float dx, ref int offsets, int columns, int t, ref float y, int rows)
        where TFormat : struct, IPanelFormat
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var x0 = (nuint)(t * columns);
        var x1 = x0 + (nuint)columns;
        var x2 = x1 + (nuint)columns;
        var x3 = x2 + (nuint)columns;
        var s0 = (nuint)(t * blocks);
        var s1 = s0 + (nuint)blocks;
        var s2 = s1 + (nuint)blocks;
        var s3 = s2 + (nuint)blocks;
        for (var b = 0; b < blocks; b++)
        {
            ref var p = ref Unsafe.Add(ref panel, b * BlockBytes);
            var xb = (nuint)(b * Quants.Q8Block);
            var sb = (nuint)b;
            TFormat.Dots(ref p, ref xq, x0 + xb, x1 + xb, x2 + xb, x3 + xb, out var d0, out var d1, out var d2, out var d3);
            var dw = Vector512.LoadUnsafe(ref p, 512).AsSingle();
            a0 = Scale(d0, dw, Unsafe.Add(ref dx, s0 + sb), Unsafe.Add(ref offsets, s0 + sb), a0);
            a1 = Scale(d1, dw, Unsafe.Add(ref dx, s1 + sb), Unsafe.Add(ref offsets, s1 + sb), a1);
            a2 = Scale(d2, dw, Unsafe.Add(ref dx, s2 + sb), Unsafe.Add(ref offsets, s2 + sb), a2);
            a3 = Scale(d3, dw, Unsafe.Add(ref dx, s3 + sb), Unsafe.Add(ref offsets, s3 + sb), a3);
        }

        a0.StoreUnsafe(ref y);
        a1.StoreUnsafe(ref y, (nuint)rows);
        a2.StoreUnsafe(ref y, (nuint)(2 * rows));
        a3.StoreUnsafe(ref y, (nuint)(3 * rows));
    }

    /// <summary>Sixteen rows by one token: a chunk's last one to three tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile1<TFormat>(ref byte panel, int blocks, ref byte xq, ref float dx, ref int offsets, int columns, int t, ref float y)
        where TFormat : struct, IPanelFormat
    {
        var acc = Vector512<float>.Zero;
        var x0 = (nuint)(t * columns);
        var s0 = (nuint)(t * blocks);
        for (var b = 0; b < blocks; b++)
        {
            ref var p = ref Unsafe.Add(ref panel, b * BlockBytes);
            var dot = TFormat.Dot(ref p, ref xq, x0 + (nuint)(b * Quants.Q8Block));
            acc = Scale(dot, Vector512.LoadUnsafe(ref p, 512).AsSingle(), Unsafe.Add(ref dx, s0 + (nuint)b), Unsafe.Add(ref offsets, s0 + (nuint)b), acc);
        }

        acc.StoreUnsafe(ref y);
    }

    // ---- Q4_K: 16 rows per panel, one super-block of 256 values at a time ----

    private static void MultiplyQ4K(byte[] data, int rowBytes, int rows, int columns, ActivationBatch x, int tokens, float[] y, int from, int to)
    {
        var supers = columns / 256;
        ref var panel = ref AlignedPanel(supers * SuperBytes);
        ref var xq = ref Unsafe.As<sbyte, byte>(ref MemoryMarshal.GetArrayDataReference(x.SuperQuants));
        ref var dx = ref MemoryMarshal.GetArrayDataReference(x.SuperScales);
        ref var xm = ref MemoryMarshal.GetArrayDataReference(x.SuperMins);
        ref var output = ref MemoryMarshal.GetArrayDataReference(y);
        for (var r = from; r < to; r += PanelRows)
        {
            PrepareQ4K(data, rowBytes, r, supers, ref panel);
            var t = 0;
            for (; t + 4 <= tokens; t += 4)
            {
                Q4KTile(ref panel, supers, ref xq, ref dx, ref xm, columns, t, 4, ref Unsafe.Add(ref output, (t * rows) + r), rows);
            }

            for (; t < tokens; t++)
            {
                Q4KTile(ref panel, supers, ref xq, ref dx, ref xm, columns, t, 1, ref Unsafe.Add(ref output, (t * rows) + r), rows);
            }
        }
    }

    /// <summary>
    /// Rows r0..r0+15 of Q4_K: the 4-bit quants (low nibbles of each 32 bytes are one sub-block, high nibbles the
    /// next) into row lanes, the eight 6-bit scales and mins unpacked as ggml packs them.
    /// </summary>
    private static void PrepareQ4K(byte[] data, int rowBytes, int r0, int supers, ref byte panel)
    {
        var table = Quants.HalfTable;
        ref var w = ref MemoryMarshal.GetArrayDataReference(data);
        var mask = Vector256.Create((byte)0x0F);
        Span<uint> words = stackalloc uint[16];
        ref var word = ref Unsafe.As<uint, byte>(ref MemoryMarshal.GetReference(words));
        for (var rr = 0; rr < PanelRows; rr++)
        {
            for (var s = 0; s < supers; s++)
            {
                ref var block = ref Unsafe.Add(ref w, ((nint)(r0 + rr) * rowBytes) + (s * 144));
                ref var p = ref Unsafe.Add(ref panel, (s * SuperBytes) + (rr * 4));
                for (var i = 0; i < 4; i++)
                {
                    var packed = Vector256.LoadUnsafe(ref block, (nuint)(16 + (32 * i)));
                    (packed & mask).StoreUnsafe(ref word);
                    (Vector256.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & mask).StoreUnsafe(ref word, 32);
                    for (var k = 0; k < 16; k++)
                    {
                        // Words 0–7 are sub-block 2i, 8–15 sub-block 2i + 1; sub-block j's vector k sits at (8j + k)·64.
                        Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, ((16 * i) + k) * 64), words[k]);
                    }
                }

                var d = table[Unsafe.ReadUnaligned<ushort>(ref block)];
                var dmin = table[Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref block, 2))];
                for (var j = 0; j < 8; j++)
                {
                    int scale, min;
                    if (j < 4)
                    {
                        scale = Unsafe.Add(ref block, 4 + j) & 63;
                        min = Unsafe.Add(ref block, 8 + j) & 63;
                    }
                    else
                    {
                        scale = (Unsafe.Add(ref block, 8 + j) & 0x0F) | ((Unsafe.Add(ref block, j) >> 6) << 4);
                        min = (Unsafe.Add(ref block, 8 + j) >> 4) | ((Unsafe.Add(ref block, 4 + j) >> 6) << 4);
                    }

                    Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, 4096 + (j * 64)), (uint)(scale | (scale << 16)));
                    Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, 4608 + (j * 64)), dmin * min);
                }

                Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, 5120), d);
            }
        }
    }

    /// <summary>
    /// Sixteen rows by <paramref name="count"/> (4 or 1) tokens. Per sub-block the 16-bit sums of byte products are
    /// widened by a multiply with the sub-block's scale, so the eight sub-blocks add up in integers and the float
    /// work is once per super-block: d·d_x·Σ, and the eight minimums against the activations' sub-block sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q4KTile(ref byte panel, int supers, ref byte xq, ref float dx, ref float xm, int columns, int t, int count, ref float y, int rows)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var x0 = (nuint)(t * columns);
        var x1 = x0 + (nuint)columns;
        var x2 = x1 + (nuint)columns;
        var x3 = x2 + (nuint)columns;
        var four = count == 4;
        for (var s = 0; s < supers; s++)
        {
            ref var p = ref Unsafe.Add(ref panel, s * SuperBytes);
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            var xs = (nuint)(s * 256);
            for (var j = 0; j < 8; j++)
            {
                Load(ref Unsafe.Add(ref p, j * 512), out var w0, out var w1, out var w2, out var w3, out var w4, out var w5, out var w6, out var w7);
                var scale = Vector512.LoadUnsafe(ref p, (nuint)(4096 + (j * 64))).AsInt16();
                var xj = xs + (nuint)(j * 32);
                i0 += Avx512BW.MultiplyAddAdjacent(Q4Sums(w0, w1, w2, w3, w4, w5, w6, w7, ref xq, x0 + xj), scale);
                if (four)
                {
                    i1 += Avx512BW.MultiplyAddAdjacent(Q4Sums(w0, w1, w2, w3, w4, w5, w6, w7, ref xq, x1 + xj), scale);
                    i2 += Avx512BW.MultiplyAddAdjacent(Q4Sums(w0, w1, w2, w3, w4, w5, w6, w7, ref xq, x2 + xj), scale);
                    i3 += Avx512BW.MultiplyAddAdjacent(Q4Sums(w0, w1, w2, w3, w4, w5, w6, w7, ref xq, x3 + xj), scale);
                }
            }

            var d = Vector512.LoadUnsafe(ref p, 5120).AsSingle();
            a0 = SuperStep(ref p, d, i0, ref dx, ref xm, ((t * supers) + s), a0);
            if (four)
            {
                a1 = SuperStep(ref p, d, i1, ref dx, ref xm, ((t + 1) * supers) + s, a1);
                a2 = SuperStep(ref p, d, i2, ref dx, ref xm, ((t + 2) * supers) + s, a2);
                a3 = SuperStep(ref p, d, i3, ref dx, ref xm, ((t + 3) * supers) + s, a3);
            }
        }

        a0.StoreUnsafe(ref y);
        if (four)
        {
            a1.StoreUnsafe(ref y, (nuint)rows);
            a2.StoreUnsafe(ref y, (nuint)(2 * rows));
            a3.StoreUnsafe(ref y, (nuint)(3 * rows));
        }
    }

    /// <summary>The 16-bit sums of a sub-block's byte products, two per row lane (see <see cref="Q4Dot"/> for the bound).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Q4Sums(Vector512<byte> w0, Vector512<byte> w1, Vector512<byte> w2, Vector512<byte> w3, Vector512<byte> w4, Vector512<byte> w5, Vector512<byte> w6, Vector512<byte> w7, ref byte xq, nuint o)
    {
        var p0 = Avx512BW.MultiplyAddAdjacent(w0, Broadcast(ref xq, o));
        var p1 = Avx512BW.MultiplyAddAdjacent(w1, Broadcast(ref xq, o + 4));
        var p2 = Avx512BW.MultiplyAddAdjacent(w2, Broadcast(ref xq, o + 8));
        var p3 = Avx512BW.MultiplyAddAdjacent(w3, Broadcast(ref xq, o + 12));
        var p4 = Avx512BW.MultiplyAddAdjacent(w4, Broadcast(ref xq, o + 16));
        var p5 = Avx512BW.MultiplyAddAdjacent(w5, Broadcast(ref xq, o + 20));
        var p6 = Avx512BW.MultiplyAddAdjacent(w6, Broadcast(ref xq, o + 24));
        var p7 = Avx512BW.MultiplyAddAdjacent(w7, Broadcast(ref xq, o + 28));
        return ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7));
    }

    /// <summary>acc + d ⊙ d_x·Σ + Σ_j (dmin·min_j) ⊙ (−d_x·Σq_j), for one token's super-block <paramref name="k"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> SuperStep(ref byte p, Vector512<float> d, Vector512<int> sums, ref float dx, ref float xm, int k, Vector512<float> acc)
    {
        acc = Vector512.FusedMultiplyAdd(d * Vector512.Create(Unsafe.Add(ref dx, k)), Avx512F.ConvertToVector512Single(sums), acc);
        ref var m = ref Unsafe.Add(ref xm, k * 16);
        for (var j = 0; j < 8; j++)
        {
            acc = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref p, (nuint)(4608 + (j * 64))).AsSingle(), Vector512.Create(Unsafe.Add(ref m, j)), acc);
        }

        return acc;
    }
}
