using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Inference;
using Xunit.Abstractions;

namespace GoblinAspire.ChatFallback.Tests;

/// <summary>
/// The engine against llama.cpp on the same random-weight F32 file of each family: identical token ids for text that
/// stresses the pre-tokenizers, identical greedy continuations, and logits equal to float rounding under teacher forcing.
/// </summary>
public sealed class LlamaCppParityTests(ITestOutputHelper output)
{
    /// <summary>Spaces, digit runs, contractions, newlines, non-ASCII, punctuation runs and special-token text.</summary>
    public static readonly string[] Texts =
    [
        "Hello world",
        "  leading spaces and   runs of   spaces  ",
        "Digits 1 12 123 1234 12345 and 3.14159, 2024!",
        "don't, it's, we'll, I'M, you'VE, they'd, she'S",
        "line one\nline two\n\n\tindented\r\nwindows\n",
        "Café naïve déjà vu — 日本語のテキスト Привет, мир! 😀",
        "!!! ??? ... $$$ +++ <=> ^^^ ~~~ ||| ``` @@@",
        "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
        "<s>[INST] question [/INST] answer </s>",
        "",
    ];

    public static TheoryData<SyntheticFamily> Families => new(SyntheticFamily.TinyLlama, SyntheticFamily.Llama3, SyntheticFamily.Qwen2, SyntheticFamily.Qwen3, SyntheticFamily.SmolLm);

    public static LlamaShape ShapeOf(SyntheticFamily family) => family switch
    {
        // Qwen3's heads are wider than dimension / heads, as in Qwen3 0.6B (1024 wide, 16 heads of 128).
        SyntheticFamily.Qwen3 => new LlamaShape(Dimension: 64, Layers: 2, Heads: 4, KvHeads: 2, FeedForward: 128, Context: 256, HeadDimension: 32),
        _ => new LlamaShape(Dimension: 64, Layers: 2, Heads: 4, KvHeads: 2, FeedForward: 128, Context: 256),
    };

    [Theory]
    [MemberData(nameof(Families))]
    public void Token_ids_greedy_continuation_and_logits_match_llama_cpp(SyntheticFamily family)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("goblin-parity-").FullName, $"{family}.gguf".ToLowerInvariant());
        SyntheticLlama.Family(family, GgmlType.F32, ShapeOf(family), seed: 11).Write(path);
        var model = LlamaModel.Load(path);
        var tokenizer = model.Tokenizer;
        var prompts = Texts.SelectMany(t => new[] { new LlamaCppReference.Prompt(t, true), new LlamaCppReference.Prompt(t, false) }).ToList();
        var prompt = tokenizer.Encode("<|im_start|>user\nWhat's 12 + 30? Tell me, please.<|im_end|>\n", tokenizer.AddBos, parseSpecial: true);
        const int Generate = 16;
        var reference = LlamaCppReference.Ask(path, tokenizer.Count, prompts, prompt, Generate, prompt);

        for (var i = 0; i < prompts.Count; i++)
        {
            var ours = tokenizer.Encode(prompts[i].Text, addBos: false, parseSpecial: prompts[i].Special);
            Assert.True(reference.Tokens[i].SequenceEqual(ours), $"{family} '{prompts[i].Text}' (special {prompts[i].Special}): llama.cpp {LlamaCppReference.Describe(reference.Tokens[i])}, engine {LlamaCppReference.Describe(ours)}");
        }

        var session = new InferenceSession(model, 256, threads: 2);
        var worst = 0f;
        float[] logits = [];
        for (var p = 0; p < prompt.Count; p++)
        {
            logits = session.Forward(prompt[p]);
            worst = Math.Max(worst, LlamaCppReference.RelativeMaxError(logits, reference.Logits[p]));
        }

        var greedy = new List<int>();
        for (var step = 0; step < Generate; step++)
        {
            var next = Array.IndexOf(logits, logits.Max());
            greedy.Add(next);
            logits = session.Forward(next);
        }

        output.WriteLine($"{family}: worst logit difference {worst:E2} of the largest logit; greedy {LlamaCppReference.Describe(greedy)}");
        Assert.True(worst < 1e-3f, $"{family}: logits differ from llama.cpp's by {worst:E2} of the largest");
        Assert.Equal(reference.Greedy, greedy);
    }
}

/// <summary>
/// Quantised and half-precision weights against llama.cpp by teacher forcing (same ids in, logits compared at every
/// position). The tolerances are the engine's documented ones (docs/chatfallback.md): llama.cpp rounds activations to
/// 8 bits before its quantised dot products (Q8_0 blocks, Q8_K for the K-quants); with its AVX-512 kernels the engine
/// does so for Q8_0, Q4_0, Q4_K and Q6_K weights (per 32 values, or per 256 for the K-quants), and Q5_K multiplies
/// float activations, so that type differs by the rounding.
/// </summary>
public sealed class LlamaCppQuantisedParityTests(ITestOutputHelper output)
{
    /// <summary>Type, largest relative RMS difference of a position's logits allowed.</summary>
    public static TheoryData<GgmlType, float> Types => new()
    {
        { GgmlType.F16, 0.005f },
        { GgmlType.BF16, 0.015f },
        { GgmlType.Q8_0, 0.04f },
        { GgmlType.Q4_0, 0.04f },
        { GgmlType.Q4_K, 0.06f },
        { GgmlType.Q5_K, 0.06f },
        { GgmlType.Q6_K, 0.06f },
    };

    [Theory]
    [MemberData(nameof(Types))]
    public void Teacher_forced_logits_match_llama_cpp_within_the_documented_tolerance(GgmlType type, float tolerance)
    {
        // Every row a whole number of 256-value super-blocks, as the K-quants need.
        var shape = new LlamaShape(Dimension: 256, Layers: 2, Heads: 4, KvHeads: 2, FeedForward: 512, Context: 256);
        var path = Path.Combine(Directory.CreateTempSubdirectory("goblin-parity-").FullName, $"qwen2-{type}.gguf".ToLowerInvariant());
        SyntheticLlama.Family(SyntheticFamily.Qwen2, type, shape, seed: 5).Write(path);
        var model = LlamaModel.Load(path);
        var prompt = model.Tokenizer.Encode("<|im_start|>user\nHow many r's are in 'strawberry'? 3, I think.<|im_end|>\n", addBos: false, parseSpecial: true);
        var reference = LlamaCppReference.Ask(path, model.Tokenizer.Count, [], teacher: prompt);
        var session = new InferenceSession(model, 256, threads: 2);
        var worst = 0f;
        var agree = 0;
        for (var p = 0; p < prompt.Count; p++)
        {
            var logits = session.Forward(prompt[p]);
            worst = Math.Max(worst, LlamaCppReference.RelativeRms(logits, reference.Logits[p]));
            agree += Array.IndexOf(logits, logits.Max()) == Array.IndexOf(reference.Logits[p], reference.Logits[p].Max()) ? 1 : 0;
        }

        output.WriteLine($"{type}: worst relative RMS {worst:P3}, argmax agrees at {agree} of {prompt.Count} positions");
        Assert.True(worst <= tolerance, $"{type}: logits differ from llama.cpp's by {worst:P3} RMS (tolerance {tolerance:P1})");
    }
}
