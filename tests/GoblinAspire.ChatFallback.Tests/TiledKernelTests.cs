using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Inference;

namespace GoblinAspire.ChatFallback.Tests;

/// <summary>
/// The tiled AVX-512 kernels compute, for every tensor type they take and for token and row counts that are not
/// multiples of their 4×4 tiles, what a row-by-row dot of the same 8-bit (or float) activations computes.
/// </summary>
public sealed class TiledKernelTests
{
    public static TheoryData<GgmlType, int> Cases()
    {
        var cases = new TheoryData<GgmlType, int>();
        foreach (var type in new[] { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.F16, GgmlType.BF16, GgmlType.F32 })
        {
            foreach (var tokens in new[] { 1, 3, 4, 7, 9 })
            {
                cases.Add(type, tokens);
            }
        }

        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Tiled_product_matches_row_by_row_dots(GgmlType type, int tokens)
    {
        if (!TiledKernels.Supported)
        {
            return;
        }

        var matrix = Matrix(type, rows: 10);
        Assert.True(matrix.Tiled);
        Assert.False(matrix.Paneled);
        ProductMatchesDots(matrix, tokens);
    }

    public static TheoryData<GgmlType, int, int> PanelCases()
    {
        var cases = new TheoryData<GgmlType, int, int>();
        foreach (var type in new[] { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K })
        {
            foreach (var tokens in new[] { 4, 7, 9, 64 })
            {
                cases.Add(type, tokens, 1280);
            }

            if (type != GgmlType.Q4_K)
            {
                // A width the tiled kernels do not take (not a multiple of 128): the leftover rows go to the portable kernel.
                cases.Add(type, 9, 96);
            }
        }

        return cases;
    }

    /// <summary>37 rows: two whole 16-row panels and five rows left to the other kernels, with 1–3 tokens after the last tile of four.</summary>
    [Theory]
    [MemberData(nameof(PanelCases))]
    public void Panel_product_matches_row_by_row_dots(GgmlType type, int tokens, int columns)
    {
        if (!TiledKernels.Supported)
        {
            return;
        }

        var matrix = Matrix(type, rows: 37, columns);
        Assert.True(matrix.Paneled);
        Assert.Equal(columns % 128 == 0, matrix.Tiled);
        ProductMatchesDots(matrix, tokens);
    }

    private static WeightMatrix Matrix(GgmlType type, int rows, int columns = 1280)
    {
        var random = new Random(7);
        var weights = Enumerable.Range(0, rows * columns).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        return new WeightMatrix("w", type, rows, columns, GgmlQuantizer.Quantize(type, weights, random));
    }

    private static void ProductMatchesDots(WeightMatrix matrix, int tokens)
    {
        var type = matrix.Type;
        var rows = matrix.Rows;
        var columns = matrix.Columns;
        var random = new Random(8);
        var x = new ActivationBatch(tokens, columns);
        for (var i = 0; i < x.Values.Length; i++)
        {
            x.Values[i] = (float)((random.NextDouble() * 4) - 2);
        }

        x.Quantize(tokens, matrix.BatchInputForms(tokens));
        var y = new float[tokens * rows];
        matrix.MultiplyBatch(x, tokens, y, threads: 2);

        var row = new float[columns];
        for (var r = 0; r < rows; r++)
        {
            matrix.DequantizeRow(r, row);
            for (var t = 0; t < tokens; t++)
            {
                double expected = 0, magnitude = 0;
                for (var c = 0; c < columns; c++)
                {
                    var input = Activation(type, x, t, c);
                    expected += (double)row[c] * input;
                    magnitude += Math.Abs((double)row[c] * input);
                }

                var actual = y[(t * rows) + r];
                Assert.True(Math.Abs(actual - expected) <= 1e-5 * magnitude, $"{type} row {r} token {t}: {actual} vs {expected}");
            }
        }

        // The single-token entry point (decode) agrees with the batch.
        var single = new ActivationInput(columns);
        x.Row(tokens - 1).CopyTo(single.Values);
        single.Quantize(matrix.InputForms);
        var one = new float[rows];
        matrix.Multiply(single, one, threads: 2);
        for (var r = 0; r < rows; r++)
        {
            Assert.Equal(y[((tokens - 1) * rows) + r], one[r], 1e-4f * Math.Max(1, Math.Abs(one[r])));
        }
    }

    /// <summary>The 16-lane F16 conversion gives every half exactly: zeros, subnormals, normals, infinities, NaNs, both signs.</summary>
    [Fact]
    public void Wide_f16_conversion_is_exact_for_every_half()
    {
        var bytes = new byte[65536 * 2];
        for (var i = 0; i < 65536; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), (ushort)i);
        }

        var converted = new float[65536];
        Quants.ConvertF16(bytes, converted);
        for (var i = 0; i < 65536; i++)
        {
            var expected = (float)BitConverter.UInt16BitsToHalf((ushort)i);
            Assert.True(float.IsNaN(expected) ? float.IsNaN(converted[i]) : BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(converted[i]), $"half 0x{i:X4}: {converted[i]} vs {expected}");
        }
    }

    /// <summary>The activation value the kernel for <paramref name="type"/> multiplies: its 8-bit form, or the float.</summary>
    private static float Activation(GgmlType type, ActivationBatch x, int token, int column) => type switch
    {
        GgmlType.Q8_0 or GgmlType.Q4_0 => x.Quantized[(token * x.Length) + column] * x.Scales[((token * x.Length) + column) / 32],
        GgmlType.Q4_K or GgmlType.Q6_K => x.SuperQuants[(token * x.Length) + column] * x.SuperScales[((token * x.Length) + column) / 256],
        _ => x.Values[(token * x.Length) + column],
    };
}
