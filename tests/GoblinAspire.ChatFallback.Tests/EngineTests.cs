using System.Buffers.Binary;
using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Inference;

namespace GoblinAspire.ChatFallback.Tests;

public sealed class EngineTests
{
    public static TheoryData<GgmlType> WeightTypes => new(GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K);

    /// <summary>
    /// Tolerance: every logit within 0.1 % of the largest reference logit (plus 1e-4). For Q8_0 and Q4_0 weights the
    /// reference rounds activations through Q8_0 before multiplying, as ggml and the engine do.
    /// </summary>
    [Theory]
    [MemberData(nameof(WeightTypes))]
    public void Logits_match_the_plain_reference_and_greedy_decoding_picks_the_same_tokens(GgmlType type)
    {
        var model = LlamaModel.Load(TestModels.Create(type, TestModels.ShapeFor(type), seed: 7));
        var session = new InferenceSession(model, 128, threads: 2);
        var reference = new ReferenceLlama(model);
        var tolerance = 0.001f;
        var token = model.Tokenizer.Bos;
        var engineTokens = new List<int>();
        var referenceTokens = new List<int>();
        for (var step = 0; step < 8; step++)
        {
            var expected = reference.Forward(token);
            var actual = session.Forward(token);
            var scale = expected.Max(Math.Abs);
            for (var i = 0; i < expected.Length; i++)
            {
                Assert.True(Math.Abs(expected[i] - actual[i]) <= (tolerance * scale) + 1e-4f, $"step {step} logit {i}: {actual[i]} vs {expected[i]} (scale {scale})");
            }

            var next = Array.IndexOf(expected, expected.Max());
            engineTokens.Add(Array.IndexOf(actual, actual.Max()));
            referenceTokens.Add(next);
            token = next;
        }

        Assert.Equal(referenceTokens, engineTokens);
    }

    [Fact]
    public void Q4_K_blocks_decode_per_ggml_layout()
    {
        var random = new Random(3);
        var scales = Enumerable.Range(0, 8).Select(_ => random.Next(64)).ToArray();
        var mins = Enumerable.Range(0, 8).Select(_ => random.Next(64)).ToArray();
        var nibbles = Enumerable.Range(0, 256).Select(_ => random.Next(16)).ToArray();
        var block = new byte[144];
        BinaryPrimitives.WriteHalfLittleEndian(block, (Half)0.5f);
        BinaryPrimitives.WriteHalfLittleEndian(block.AsSpan(2), (Half)0.25f);
        // Sub-blocks 0-3 keep 6 bits in bytes 0-3 (scale) and 4-7 (min); 4-7 split low nibbles into bytes 8-11
        // and their top two bits into the top of bytes 0-7.
        for (var j = 0; j < 4; j++)
        {
            block[4 + j] = (byte)(scales[j] | ((scales[j + 4] >> 4) << 6));
            block[4 + j + 4] = (byte)(mins[j] | ((mins[j + 4] >> 4) << 6));
            block[4 + j + 8] = (byte)((scales[j + 4] & 0x0F) | ((mins[j + 4] & 0x0F) << 4));
        }

        // Each 64-value group: 32 bytes, low nibbles the first 32 values, high nibbles the next 32.
        for (var g = 0; g < 4; g++)
        {
            for (var l = 0; l < 32; l++)
            {
                block[16 + (g * 32) + l] = (byte)(nibbles[(g * 64) + l] | (nibbles[(g * 64) + 32 + l] << 4));
            }
        }

        var decoded = new float[256];
        Quants.Dequantize(GgmlType.Q4_K, block, decoded);
        for (var i = 0; i < 256; i++)
        {
            var sub = i / 32;
            Assert.Equal((0.5f * scales[sub] * nibbles[i]) - (0.25f * mins[sub]), decoded[i], 4);
        }
    }

    [Fact]
    public void Q6_K_blocks_decode_per_ggml_layout()
    {
        var random = new Random(4);
        var q = Enumerable.Range(0, 256).Select(_ => random.Next(64)).ToArray();
        var scales = Enumerable.Range(0, 16).Select(_ => (sbyte)random.Next(-128, 128)).ToArray();
        var block = new byte[210];
        // Per 128 values: ql holds low nibbles (values l and l+64 share byte l; l+32 and l+96 share byte l+32),
        // qh holds the top two bits of l, l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7 of byte l.
        for (var half = 0; half < 2; half++)
        {
            for (var l = 0; l < 32; l++)
            {
                int V(int k) => q[(half * 128) + l + (32 * k)];
                block[(half * 64) + l] = (byte)((V(0) & 0xF) | ((V(2) & 0xF) << 4));
                block[(half * 64) + l + 32] = (byte)((V(1) & 0xF) | ((V(3) & 0xF) << 4));
                block[128 + (half * 32) + l] = (byte)((V(0) >> 4) | ((V(1) >> 4) << 2) | ((V(2) >> 4) << 4) | ((V(3) >> 4) << 6));
            }
        }

        for (var s = 0; s < 16; s++)
        {
            block[192 + s] = (byte)scales[s];
        }

        BinaryPrimitives.WriteHalfLittleEndian(block.AsSpan(208), (Half)0.125f);
        var decoded = new float[256];
        Quants.Dequantize(GgmlType.Q6_K, block, decoded);
        for (var i = 0; i < 256; i++)
        {
            // 16 values share a scale.
            Assert.Equal(0.125f * scales[i / 16] * (q[i] - 32), decoded[i], 3);
        }
    }

    /// <summary>The F16 and BF16 kernels convert in registers; zeros, subnormals, extremes and odd lengths included.</summary>
    [Fact]
    public void Half_precision_dot_kernels_agree_with_converting_each_value()
    {
        var random = new Random(9);
        foreach (var length in new[] { 1, 7, 8, 16, 33, 256, 259 })
        {
            var x = Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
            var values = Enumerable.Range(0, length).Select(i => (i % 5) switch
            {
                0 => 0f,
                1 => 3e-6f, // subnormal in F16
                2 => -60000f,
                _ => (float)((random.NextDouble() * 2) - 1),
            }).ToArray();
            foreach (var type in new[] { GgmlType.F16, GgmlType.BF16 })
            {
                var row = GgmlQuantizer.Quantize(type, values, random);
                var floats = new float[length];
                Quants.Dequantize(type, row, floats);
                double expected = 0;
                for (var i = 0; i < length; i++)
                {
                    expected += floats[i] * (double)x[i];
                }

                var actual = type == GgmlType.F16 ? Quants.DotF16(row, x) : Quants.DotBF16(row, x);
                Assert.True(Math.Abs(actual - expected) <= 1e-3 * (1 + Math.Abs(expected)), $"{type} length {length}: {actual} vs {expected}");
            }
        }

        var infinity = new byte[16];
        BinaryPrimitives.WriteHalfLittleEndian(infinity, System.Half.PositiveInfinity);
        Assert.Equal(float.PositiveInfinity, Quants.DotF16(infinity, [1, 0, 0, 0, 0, 0, 0, 0]));
    }

    [Fact]
    public void The_quantised_dot_products_agree_with_dequantised_floats()
    {
        var random = new Random(5);
        var values = Enumerable.Range(0, 256).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        var input = new ActivationInput(256);
        for (var i = 0; i < 256; i++)
        {
            input.Values[i] = (float)((random.NextDouble() * 2) - 1);
        }

        input.Quantize(ActivationForms.Blocks);
        foreach (var type in new[] { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K })
        {
            var row = GgmlQuantizer.Quantize(type, values, random);
            var dense = new float[256];
            Quants.Dequantize(type, row, dense);
            var exact = dense.Zip(input.Values, (a, b) => (double)a * b).Sum();
            var fast = type switch
            {
                GgmlType.Q8_0 => Quants.DotQ8(row, input.Quantized, input.Scales),
                GgmlType.Q4_0 => Quants.DotQ4(row, input.Quantized, input.Scales),
                _ => Quants.DotQ4K(row, input.Quantized, input.Scales, input.Sums),
            };
            var rounded = dense.Select((w, i) => (double)w * input.Quantized[i] * input.Scales[i / 32]).Sum();
            Assert.True(Math.Abs(rounded - fast) < 1e-3 * Math.Max(1, Math.Abs(rounded)), $"{type}: {fast} vs {rounded} with activations rounded to Q8_0");
            Assert.True(Math.Abs(exact - fast) < 0.05 * Math.Max(1, Math.Abs(exact)), $"{type}: {fast} vs {exact}");
        }
    }
}
