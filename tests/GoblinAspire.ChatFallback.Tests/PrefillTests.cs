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
    /// 70 prompt tokens (a full chunk of 64 and a partial one), after 3 tokens already in the cache, then 3 more one at
    /// a time: the logits agree with token-by-token feeding to float rounding (1e-4 of the largest logit).
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Batched_prefill_matches_feeding_one_token_at_a_time(SyntheticFamily family, GgmlType type)
    {
        var shape = type is GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K
            ? new LlamaShape(Dimension: 256, Layers: 2, Heads: 4, KvHeads: 2, FeedForward: 256, Context: 256)
            : LlamaCppParityTests.ShapeOf(family);
        var path = Path.Combine(Directory.CreateTempSubdirectory("goblin-prefill-").FullName, "model.gguf");
        SyntheticLlama.Family(family, type, shape, seed: 21).Write(path);
        var model = LlamaModel.Load(path);
        var random = new Random(4);
        var tokens = Enumerable.Range(0, 76).Select(_ => random.Next(model.Config.Vocabulary)).ToArray();

        var single = new InferenceSession(model, 256, threads: 2);
        var batched = new InferenceSession(model, 256, threads: 2);
        float[] expected = [];
        for (var i = 0; i < 73; i++)
        {
            expected = (float[])single.Forward(tokens[i]).Clone();
        }

        batched.Prefill(tokens[..3]);
        var actual = batched.Prefill(tokens[3..73]);
        Assert.Equal(73, batched.Position);
        AssertClose(expected, actual, $"{family} {type} after the prefill");
        for (var i = 73; i < 76; i++)
        {
            AssertClose(single.Forward(tokens[i]), batched.Forward(tokens[i]), $"{family} {type} decoding token {i}");
        }
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        var scale = expected.Max(Math.Abs);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= (1e-4f * scale) + 1e-5f, $"{what}: logit {i} {actual[i]} vs {expected[i]}");
        }
    }
}
