namespace GoblinAspire.ChatFallback.Inference;

/// <summary>
/// The activations of several tokens at once, one row each, with their Q8_0 form: the input of a matrix-matrix
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

    public ReadOnlySpan<int> SumRow(int token) => Sums.AsSpan(token * Length / Quants.Q8Block, Length / Quants.Q8Block);

    public Span<float> Row(int token) => Values.AsSpan(token * Length, Length);

    public ReadOnlySpan<sbyte> QuantizedRow(int token) => Quantized.AsSpan(token * Length, Length);

    public ReadOnlySpan<float> ScaleRow(int token) => Scales.AsSpan(token * Length / Quants.Q8Block, Length / Quants.Q8Block);

    /// <summary>Call after writing the first <paramref name="tokens"/> rows of <see cref="Values"/>.</summary>
    public void Quantize(int tokens, bool needed)
    {
        if (!needed)
        {
            return;
        }

        for (var t = 0; t < tokens; t++)
        {
            Quants.QuantizeQ8(Row(t), Quantized.AsSpan(t * Length, Length), Scales.AsSpan(t * Length / Quants.Q8Block, Length / Quants.Q8Block));
            Quants.BlockSums(Quantized.AsSpan(t * Length, Length), Sums.AsSpan(t * Length / Quants.Q8Block, Length / Quants.Q8Block));
        }
    }
}
