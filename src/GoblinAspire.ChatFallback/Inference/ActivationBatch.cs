
namespace GoblinAspire.ChatFallback.Inference;

/// <summary>The 8-bit forms of a batch's activations that the integer kernels read; a matrix asks for the ones it needs.</summary>
[Flags]
public enum ActivationForms
{
    None = 0,

    /// <summary>Q8_0 blocks in column order (the portable kernels).</summary>
    Blocks = 1,

    /// <summary>Q8_0 blocks regrouped by 128 columns for the AVX-512 Q8_0/Q4_0 kernels (<see cref="TiledKernels"/>).</summary>
    Groups = 2,

    /// <summary>One scale per 256 columns (ggml's Q8_K idea) for the K-quant kernels.</summary>
    SuperBlocks = 4,

    /// <summary>Q8_0 blocks in column order with each block's offset corrections, for <see cref="PanelKernels"/>.</summary>
    Panels = 8,
}

/// <summary>
/// The activations of several tokens at once, one row each, with their 8-bit forms: the input of a matrix-matrix
/// product, so every weight row is read from memory once for the whole batch instead of once per token.
/// </summary>
public sealed class ActivationBatch(int capacity, int length)
{
    public int Length { get; } = length;

    public int Capacity { get; } = capacity;

    public float[] Values { get; } = new float[capacity * length];

    public sbyte[] Quantized { get; } = new sbyte[capacity * length];

    public float[] Scales { get; } = new float[capacity * length / Quants.Q8Block];

    public int[] Sums { get; } = new int[capacity * length / Quants.Q8Block];

    /// <summary>
    /// <see cref="ActivationForms.Groups"/>: per 128 columns, the first 16 quants of each of the four blocks, then their
    /// last 16, matching how a Q4_0 block packs its low and high nibbles, so a weight group and a token group line up
    /// in two 64-byte registers.
    /// </summary>
    public sbyte[] GroupQuants => _groupQuants ??= new sbyte[Capacity * Length];

    /// <summary>
    /// Per 128 columns, 8 floats: the four blocks' scales d, then −2·d·Σq each, a quarter of the −8·Σx that Q4_0's
    /// offset of 8 takes off a block's dot (a 32-bit lane sums four of the block's byte products).
    /// </summary>
    public float[] GroupFactors4 => _groupFactors4 ??= new float[Capacity * Length / 16];

    /// <summary>As <see cref="GroupFactors4"/> with −32·d·Σq: a quarter of the −128·Σx that undoes Q8_0 weights made unsigned (w + 128).</summary>
    public float[] GroupFactors8 => _groupFactors8 ??= new float[Capacity * Length / 16];

    /// <summary><see cref="ActivationForms.SuperBlocks"/>: quants in column order with one scale per 256 columns.</summary>
    public sbyte[] SuperQuants => _superQuants ??= new sbyte[Capacity * Length];

    public float[] SuperScales => _superScales ??= new float[Capacity * Length / 256];

    /// <summary>Per 256 columns, 16 lanes: −d·Σq of each 32-value sub-block in lanes 0–7 (Q4_K's minimums), zeros after.</summary>
    public float[] SuperMins => _superMins ??= new float[Capacity * Length / 16];

    /// <summary>Per 16 columns, Σq (Q6_K's offset of 32 per 16-value scale).</summary>
    public short[] SuperSums16 => _superSums16 ??= new short[Capacity * Length / 16];

    /// <summary>
    /// <see cref="ActivationForms.Panels"/>: per block, −8·Σq, what Q4_0's offset of 8 takes off its integer dot.
    /// Taken off as an integer, so a block's sum is exact before it is scaled: in floats the two large terms would
    /// cancel and lose the small difference's low bits.
    /// </summary>
    public int[] PanelOffsets4 => _panelOffsets4 ??= new int[Capacity * Length / Quants.Q8Block];

    /// <summary>Per block, −128·Σq, what undoes Q8_0 weights made unsigned (w + 128).</summary>
    public int[] PanelOffsets8 => _panelOffsets8 ??= new int[Capacity * Length / Quants.Q8Block];

    private int[]? _panelOffsets4;
    private int[]? _panelOffsets8;
    private sbyte[]? _groupQuants;
    private float[]? _groupFactors4;
    private float[]? _groupFactors8;
    private sbyte[]? _superQuants;
    private float[]? _superScales;
    private float[]? _superMins;
    private short[]? _superSums16;

    public ReadOnlySpan<int> SumRow(int token) => Sums.AsSpan(token * Length / Quants.Q8Block, Length / Quants.Q8Block);

    public Span<float> Row(int token) => Values.AsSpan(token * Length, Length);

    public ReadOnlySpan<sbyte> QuantizedRow(int token) => Quantized.AsSpan(token * Length, Length);

    public ReadOnlySpan<float> ScaleRow(int token) => Scales.AsSpan(token * Length / Quants.Q8Block, Length / Quants.Q8Block);

    /// <summary>Call after writing the first <paramref name="tokens"/> rows of <see cref="Values"/>.</summary>
    public void Quantize(int tokens, ActivationForms forms) => Quantize(tokens, forms, threads: 1);

    /// <summary>As <see cref="Quantize(int, ActivationForms)"/>, tokens split across <paramref name="threads"/>.</summary>
    public void Quantize(int tokens, ActivationForms forms, int threads)
    {
        MakeArrays(forms);
        if (threads <= 1 || tokens < 2)
        {
            for (var t = 0; t < tokens; t++)
            {
                QuantizeRow(t, forms);
            }

            return;
        }

        Parallel.For(0, tokens, new ParallelOptions { MaxDegreeOfParallelism = threads }, t => QuantizeRow(t, forms));
    }

    /// <summary>Makes the arrays <paramref name="forms"/> write, once, before the tokens are split across threads that would race to make them.</summary>
    private void MakeArrays(ActivationForms forms)
    {
        if ((forms & ActivationForms.Panels) != 0)
        {
            _ = PanelOffsets4;
            _ = PanelOffsets8;
        }

        if ((forms & ActivationForms.Groups) != 0)
        {
            _ = GroupQuants;
            _ = GroupFactors4;
            _ = GroupFactors8;
        }

        if ((forms & ActivationForms.SuperBlocks) != 0)
        {
            _ = SuperQuants;
            _ = SuperScales;
            _ = SuperMins;
            _ = SuperSums16;
        }
    }

    private void QuantizeRow(int t, ActivationForms forms)
    {
        var blocks = Length / Quants.Q8Block;
        if ((forms & (ActivationForms.Blocks | ActivationForms.Groups | ActivationForms.Panels)) != 0)
        {
            Quants.QuantizeQ8(Row(t), Quantized.AsSpan(t * Length, Length), Scales.AsSpan(t * blocks, blocks));
            Quants.BlockSums(Quantized.AsSpan(t * Length, Length), Sums.AsSpan(t * blocks, blocks));
        }

        if ((forms & ActivationForms.Panels) != 0)
        {
            var offsets4 = PanelOffsets4;
            var offsets8 = PanelOffsets8;
            for (var b = t * blocks; b < (t + 1) * blocks; b++)
            {
                offsets4[b] = -8 * Sums[b];
                offsets8[b] = -128 * Sums[b];
            }
        }

        if ((forms & ActivationForms.Groups) != 0 && Length % 128 == 0)
        {
            Regroup(t);
        }

        if ((forms & ActivationForms.SuperBlocks) != 0 && Length % 256 == 0)
        {
            QuantizeSuper(t);
        }
    }

    private void Regroup(int token)
    {
        var quants = GroupQuants;
        var factors4 = GroupFactors4;
        var factors8 = GroupFactors8;
        var blocks = Length / Quants.Q8Block;
        var row = token * Length;
        var factor0 = token * Length / 16;
        for (var b = 0; b < blocks; b++)
        {
            var group = b / 4;
            var within = b % 4;
            var source = Quantized.AsSpan(row + (b * 32), 32);
            var destination = quants.AsSpan(row + (group * 128) + (within * 16));
            source[..16].CopyTo(destination);
            source[16..].CopyTo(destination[64..]);
            var d = Scales[(token * blocks) + b];
            var dsum = d * Sums[(token * blocks) + b];
            var f = factor0 + (group * 8) + within;
            factors4[f] = d;
            factors4[f + 4] = -2 * dsum;
            factors8[f] = d;
            factors8[f + 4] = -32 * dsum;
        }
    }

    private void QuantizeSuper(int token)
    {
        var x = Row(token);
        var quants = SuperQuants.AsSpan(token * Length, Length);
        var supers = Length / 256;
        for (var s = 0; s < supers; s++)
        {
            var block = x.Slice(s * 256, 256);
            var amax = MathF.Abs(System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(block));
            var d = amax / 127f;
            var inverse = d == 0 ? 0 : 1 / d;
            var q = quants.Slice(s * 256, 256);
            Quants.Round(block, inverse, q);
            SuperScales[(token * supers) + s] = d;
            var mins = SuperMins.AsSpan(((token * supers) + s) * 16, 16);
            mins.Clear();
            var sums16 = SuperSums16.AsSpan(((token * supers) + s) * 16, 16);
            for (var j = 0; j < 16; j++)
            {
                var sum = 0;
                foreach (var v in q.Slice(j * 16, 16))
                {
                    sum += v;
                }

                sums16[j] = (short)sum;
                mins[j / 2] -= d * sum;
            }
        }
    }
}

/// <summary>An activation vector (a batch of one), with its 8-bit forms computed once for every matrix that reads it.</summary>
public sealed class ActivationInput(int length)
{
    public ActivationBatch Batch { get; } = new(1, length);

    public float[] Values => Batch.Values;

    public sbyte[] Quantized => Batch.Quantized;

    public float[] Scales => Batch.Scales;

    /// <summary>Each block's sum of quants, for Q4_K's minimums.</summary>
    public int[] Sums => Batch.Sums;

    /// <summary>Call after writing <see cref="Values"/>; <paramref name="forms"/> as the matrices reading it need.</summary>
    public void Quantize(ActivationForms forms) => Batch.Quantize(1, forms);
}
