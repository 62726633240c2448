using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Inference;

namespace GoblinAspire.ChatFallback.Tests;

/// <summary>The batched prompt path computes what feeding the tokens one at a time computes.</summary>
public sealed class PrefillTests
{
    public static TheoryData<SyntheticFamily, GgmlType> Cases => new()
    {
        { SyntheticFamily.TinyLlama, GgmlType.Q8_0 },
        { SyntheticFamily.TinyLlama, GgmlType.Q4_0 },
        { SyntheticFamily.Llama3, GgmlType.F16 },
        { SyntheticFamily.Qwen2, GgmlType.F32 },
        { SyntheticFamily.Qwen3, GgmlType.BF16 },
        { SyntheticFamily.SmolLm, GgmlType.Q8_0 },
        { SyntheticFamily.Qwen2, GgmlType.Q4_K },
        { SyntheticFamily.Qwen2, GgmlType.Q5_K },
        { SyntheticFamily.Qwen2, GgmlType.Q6_K },
    };

    /// <summary>
    /// A full prompt chunk and a partial one, after 3 tokens already in the cache, then 3 more one at
    /// a time: the logits agree with token-by-token feeding to float rounding (1e-4 of the largest logit), or for 8-bit
    /// activations to the size of their rounding (<see cref="AssertClose"/>).
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Batched_prefill_matches_feeding_one_token_at_a_time(SyntheticFamily family, GgmlType type)
    {
        var shape = type is GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K
            ? new LlamaShape(Dimension: 256, Layers: 2, Heads: 4, KvHeads: 2, FeedForward: 256, Context: 256)
            : LlamaCppParityTests.ShapeOf(family);
        BatchedMatchesSingle(family, type, shape);
    }

    /// <summary>
    /// 64-wide heads take the grouped attention of <see cref="ChunkAttention"/>: three query heads per key/value head
    /// (an odd group, so a four-head pass has one spare), seven (Qwen2.5 0.5B's 14/2) and four, over 143 positions (a
    /// partial block of 16); F32 to float rounding, Q8_0/Q4_0 (panel kernels) to their 8-bit rounding.
    /// </summary>
    [Theory]
    [InlineData(3, 1, GgmlType.F32)]
    [InlineData(7, 1, GgmlType.Q8_0)]
    [InlineData(8, 2, GgmlType.Q4_0)]
    [InlineData(7, 1, GgmlType.F32)]
    [InlineData(8, 2, GgmlType.F32)]
    public void Batched_prefill_with_64_wide_heads_matches_feeding_one_token_at_a_time(int heads, int kvHeads, GgmlType type)
    {
        var shape = new LlamaShape(Dimension: heads * 64, Layers: 2, Heads: heads, KvHeads: kvHeads, FeedForward: 256, Context: 256);
        Assert.True(ChunkAttention.Handles(64) || !System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated);
        BatchedMatchesSingle(SyntheticFamily.Qwen2, type, shape);
    }

    private static void BatchedMatchesSingle(SyntheticFamily family, GgmlType type, LlamaShape shape)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("goblin-prefill-").FullName, "model.gguf");
        SyntheticLlama.Family(family, type, shape, seed: 21).Write(path);
        var model = LlamaModel.Load(path);
        var random = new Random(4);
        // A full chunk and a partial one (12 tokens: three tiles of four) after 3 tokens already in the cache.
        var fed = 3 + InferenceSession.PrefillChunk + 12;
        var tokens = Enumerable.Range(0, fed + 3).Select(_ => random.Next(model.Config.Vocabulary)).ToArray();

        var single = new InferenceSession(model, 256, threads: 2);
        var batched = new InferenceSession(model, 256, threads: 2);
        float[] expected = [];
        for (var i = 0; i < fed; i++)
        {
            expected = (float[])single.Forward(tokens[i]).Clone();
        }

        batched.Prefill(tokens[..3]);
        var actual = batched.Prefill(tokens[3..fed]);
        Assert.Equal(fed, batched.Position);
        AssertClose(type, expected, actual, $"{family} {type} after the prefill");
        for (var i = fed; i < fed + 3; i++)
        {
            AssertClose(type, single.Forward(tokens[i]), batched.Forward(tokens[i]), $"{family} {type} decoding token {i}");
        }
    }

    private static void AssertClose(GgmlType type, float[] expected, float[] actual, string what)
    {
        if (type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_K or GgmlType.Q6_K)
        {
            // These multiply 8-bit activations. Where the batch and the single-token kernels add in different orders
            // (grouped attention, panels against tiles), one last-bit difference can move an activation across a
            // rounding boundary of its 8-bit form; the change that makes downstream moves others, and the two paths
            // end up as two roundings of the same model. So they agree to that rounding's size (measured up to 1.1 %
            // RMS; llama.cpp against the engine, 2 %), which a wrong position, mask or row would exceed many times.
            // The 64-wide-head F32 cases hold the new kernels to float rounding.
            var rms = LlamaCppReference.RelativeRms(actual, expected);
            Assert.True(rms <= 0.03, $"{what}: logits differ by {rms:P3} RMS");
            return;
        }

        var scale = expected.Max(Math.Abs);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= (1e-4f * scale) + 1e-5f, $"{what}: logit {i} {actual[i]} vs {expected[i]}");
        }
    }
}
