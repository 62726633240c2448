// Written here, as the rest of the engine: no package on the feed computes attention over this engine's key/value
// cache, and TensorPrimitives' per-call overhead is larger than a 64-wide head's arithmetic.
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace GoblinAspire.ChatFallback.Inference;

/// <summary>
/// Causal attention for a prompt chunk with 64-wide heads. The query heads that share a key/value head are taken
/// together, and the keys are laid out transposed in blocks of 16 positions, so a score is sixteen positions'
/// multiply-adds in one register instead of a 64-wide dot and a horizontal sum per position; each key and value is
/// read once for all the heads of its group.
/// </summary>
public sealed class ChunkAttention
{
    public const int HeadDimension = 64;
    private const int Lanes = 16;

    private float[] _keysT = [];
    private int _blocks;

    public static bool Handles(int headDimension) => Vector512.IsHardwareAccelerated && headDimension == HeadDimension;

    /// <summary>
    /// Lays out the first <paramref name="length"/> cached keys as, per key/value head and per 16 positions, 64 rows
    /// of 16 lanes; positions past the end (up to an even number of blocks) are zeros, whose scores are never read.
    /// </summary>
    public void Prepare(float[] keys, int kvDim, int length)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var kvHeads = kvDim / HeadDimension;
        // An even number of blocks, so scores are always computed two blocks at a time (a spare one is zeros).
        _blocks = (length + (2 * Lanes) - 1) / (2 * Lanes) * 2;
        var size = kvHeads * _blocks * HeadDimension * Lanes;
        if (_keysT.Length < size)
        {
            _keysT = new float[size];
        }

        for (var g = 0; g < kvHeads; g++)
        {
            for (var blk = 0; blk < _blocks; blk++)
            {
                var destination = _keysT.AsSpan(((g * _blocks) + blk) * HeadDimension * Lanes, HeadDimension * Lanes);
                var count = Math.Min(Lanes, length - (blk * Lanes));
                if (count < Lanes)
                {
                    destination.Clear();
                }

                for (var lane = 0; lane < count; lane++)
                {
                    var key = keys.AsSpan((((blk * Lanes) + lane) * kvDim) + (g * HeadDimension), HeadDimension);
                    for (var d = 0; d < HeadDimension; d++)
                    {
                        destination[(d * Lanes) + lane] = key[d];
                    }
                }
            }
        }
    }

    /// <summary>Scratch for one thread's <see cref="Attend"/>: scores of four heads.</summary>
    public float[] Scratch() => new float[4 * _blocks * Lanes];

    /// <summary>
    /// The heads <paramref name="firstHead"/>..+<paramref name="heads"/> (all reading key/value head <paramref name="kvHead"/>)
    /// of one token that sees <paramref name="length"/> positions: <paramref name="queries"/> holds the token's query
    /// vector, <paramref name="output"/> its attention output, both <c>heads × 64</c> wide per head index.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Attend(ReadOnlySpan<float> queries, float[] values, int kvDim, int kvHead, int firstHead, int heads, int length, float scale, float[] scratch, Span<float> output)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(scratch);
        var stride = _blocks * Lanes;
        var blocks = (length + (2 * Lanes) - 1) / (2 * Lanes) * 2;
        for (var h0 = firstHead; h0 < firstHead + heads; h0 += 4)
        {
            var n = Math.Min(4, firstHead + heads - h0);
            // Heads past the group's end repeat the last one: four score rows are computed, n are used.
            ref var q0 = ref Unsafe.AsRef(in queries[h0 * HeadDimension]);
            ref var q1 = ref Unsafe.AsRef(in queries[Math.Min(h0 + 1, h0 + n - 1) * HeadDimension]);
            ref var q2 = ref Unsafe.AsRef(in queries[Math.Min(h0 + 2, h0 + n - 1) * HeadDimension]);
            ref var q3 = ref Unsafe.AsRef(in queries[Math.Min(h0 + 3, h0 + n - 1) * HeadDimension]);
            ref var kt = ref MemoryMarshal.GetArrayDataReference(_keysT);
            ref var s = ref MemoryMarshal.GetArrayDataReference(scratch);
            var factor = Vector512.Create(scale);
            for (var blk = 0; blk < blocks; blk += 2)
            {
                Scores2(ref Unsafe.Add(ref kt, ((kvHead * _blocks) + blk) * HeadDimension * Lanes), ref q0, ref q1, ref q2, ref q3, factor, ref Unsafe.Add(ref s, blk * Lanes), stride);
            }

            for (var j = 0; j < n; j++)
            {
                var span = scratch.AsSpan(j * stride, length);
                TensorPrimitives.SoftMax(span, span);
            }

            for (var j = 0; j < n; j += 2)
            {
                Weigh(values, kvDim, kvHead * HeadDimension, length, scratch.AsSpan(j * stride, length), scratch.AsSpan(Math.Min(j + 1, n - 1) * stride, length), output.Slice((h0 + j) * HeadDimension, HeadDimension), j + 1 < n ? output.Slice((h0 + j + 1) * HeadDimension, HeadDimension) : default);
            }
        }
    }

    /// <summary>Four heads' scores for 32 positions: eight independent multiply-add chains over the 64 dimensions.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scores2(ref float kt, ref float q0, ref float q1, ref float q2, ref float q3, Vector512<float> factor, ref float s, int stride)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        for (nuint d = 0; d < HeadDimension; d++)
        {
            var k0 = Vector512.LoadUnsafe(ref kt, d * Lanes);
            var k1 = Vector512.LoadUnsafe(ref kt, (HeadDimension * Lanes) + (d * Lanes));
            var x0 = Vector512.Create(Unsafe.Add(ref q0, d));
            var x1 = Vector512.Create(Unsafe.Add(ref q1, d));
            var x2 = Vector512.Create(Unsafe.Add(ref q2, d));
            var x3 = Vector512.Create(Unsafe.Add(ref q3, d));
            a0 = Vector512.FusedMultiplyAdd(x0, k0, a0);
            a1 = Vector512.FusedMultiplyAdd(x1, k0, a1);
            a2 = Vector512.FusedMultiplyAdd(x2, k0, a2);
            a3 = Vector512.FusedMultiplyAdd(x3, k0, a3);
            b0 = Vector512.FusedMultiplyAdd(x0, k1, b0);
            b1 = Vector512.FusedMultiplyAdd(x1, k1, b1);
            b2 = Vector512.FusedMultiplyAdd(x2, k1, b2);
            b3 = Vector512.FusedMultiplyAdd(x3, k1, b3);
        }

        var row = (nuint)stride;
        (a0 * factor).StoreUnsafe(ref s);
        (b0 * factor).StoreUnsafe(ref s, Lanes);
        (a1 * factor).StoreUnsafe(ref s, row);
        (b1 * factor).StoreUnsafe(ref s, row + Lanes);
        (a2 * factor).StoreUnsafe(ref s, 2 * row);
        (b2 * factor).StoreUnsafe(ref s, (2 * row) + Lanes);
        (a3 * factor).StoreUnsafe(ref s, 3 * row);
        (b3 * factor).StoreUnsafe(ref s, (3 * row) + Lanes);
    }

    /// <summary>Two heads' weighted sums of the values; each value row is loaded once for both (eight chains).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Weigh(float[] values, int kvDim, int offset, int length, ReadOnlySpan<float> p0, ReadOnlySpan<float> p1, Span<float> out0, Span<float> out1)
    {
        ref var v = ref MemoryMarshal.GetArrayDataReference(values);
        ref var w0 = ref MemoryMarshal.GetReference(p0);
        ref var w1 = ref MemoryMarshal.GetReference(p1);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        for (var s = 0; s < length; s++)
        {
            var o = (nuint)((s * kvDim) + offset);
            var v0 = Vector512.LoadUnsafe(ref v, o);
            var v1 = Vector512.LoadUnsafe(ref v, o + 16);
            var v2 = Vector512.LoadUnsafe(ref v, o + 32);
            var v3 = Vector512.LoadUnsafe(ref v, o + 48);
            var x = Vector512.Create(Unsafe.Add(ref w0, s));
            var y = Vector512.Create(Unsafe.Add(ref w1, s));
            a0 = Vector512.FusedMultiplyAdd(x, v0, a0);
            a1 = Vector512.FusedMultiplyAdd(x, v1, a1);
            a2 = Vector512.FusedMultiplyAdd(x, v2, a2);
            a3 = Vector512.FusedMultiplyAdd(x, v3, a3);
            b0 = Vector512.FusedMultiplyAdd(y, v0, b0);
            b1 = Vector512.FusedMultiplyAdd(y, v1, b1);
            b2 = Vector512.FusedMultiplyAdd(y, v2, b2);
            b3 = Vector512.FusedMultiplyAdd(y, v3, b3);
        }

        ref var d0 = ref MemoryMarshal.GetReference(out0);
        a0.StoreUnsafe(ref d0);
        a1.StoreUnsafe(ref d0, 16);
        a2.StoreUnsafe(ref d0, 32);
        a3.StoreUnsafe(ref d0, 48);
        if (!out1.IsEmpty)
        {
            ref var d1 = ref MemoryMarshal.GetReference(out1);
            b0.StoreUnsafe(ref d1);
            b1.StoreUnsafe(ref d1, 16);
            b2.StoreUnsafe(ref d1, 32);
            b3.StoreUnsafe(ref d1, 48);
        }
    }
}
