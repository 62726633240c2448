using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Inference;

namespace GoblinAspire.ChatFallback.Tests;

public sealed class BrokenFileTests
{
    [Fact]
    public void A_truncated_file_is_refused_with_a_clear_error()
    {
        var path = TestModels.Create(GgmlType.Q8_0);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Assert.Contains("truncated", Assert.Throws<GgufException>(() => LlamaModel.Load(path)).Message, StringComparison.Ordinal);
        File.WriteAllBytes(path, bytes[..40]);
        Assert.Contains("truncated", Assert.Throws<GgufException>(() => LlamaModel.Load(path)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_magic_version_architecture_and_types_are_named()
    {
        Assert.Contains("magic", Load(w => w.Magic = 0x12345678), StringComparison.Ordinal);
        Assert.Contains("version 9", Load(w => w.Version = 9), StringComparison.Ordinal);
        Assert.Contains("architecture 'gpt2'", Load(w => w.Metadata["general.architecture"] = "gpt2"), StringComparison.Ordinal);
        Assert.Contains("tokenizer 'bert'", Load(w => w.Metadata["tokenizer.ggml.model"] = "bert"), StringComparison.Ordinal);
        Assert.Contains("no tokenizer.ggml.merges", Load(w => w.Metadata["tokenizer.ggml.model"] = "gpt2"), StringComparison.Ordinal);
        Assert.Contains("tensor blk.0.attn_norm.weight has type Q2_K, which this engine cannot run", Load(w => w.Tensors[1] = (w.Tensors[1].Name, w.Tensors[1].Dimensions, GgmlType.Q2_K, w.Tensors[1].Data)), StringComparison.Ordinal);
        Assert.Contains("has type #39", Load(w => w.Tensors[1] = (w.Tensors[1].Name, w.Tensors[1].Dimensions, (GgmlType)39, w.Tensors[1].Data)), StringComparison.Ordinal);
        Assert.Contains("blk.0.ffn_up.weight is missing", Load(w => w.Tensors.RemoveAll(t => t.Name == "blk.0.ffn_up.weight")), StringComparison.Ordinal);
    }

    /// <summary>What the engine would answer wrongly is refused at load, in one line naming it.</summary>
    [Fact]
    public void Unsupported_architectures_pre_tokenizers_and_rope_scaling_are_refused_in_one_line()
    {
        var phi = Load(w => w.Metadata["general.architecture"] = "phi3");
        Assert.Equal("architecture 'phi3' is not supported (llama, qwen2, qwen3 are)", phi);
        Assert.Contains("rope scaling 'yarn' is not supported", Load(w => w.Metadata["llama.rope.scaling.type"] = "yarn"), StringComparison.Ordinal);
        var pre = Assert.Throws<GgufException>(() => Write(SyntheticLlama.Family(SyntheticFamily.Qwen2, GgmlType.F32), w => w.Metadata["tokenizer.ggml.pre"] = "tekken")).Message;
        Assert.Equal("pre-tokenizer 'tekken' is not supported (llama-bpe, qwen2, smollm, gpt-2, default are)", pre);
        var norms = Assert.Throws<GgufException>(() => Write(SyntheticLlama.Family(SyntheticFamily.Qwen3, GgmlType.F32), w => w.Tensors.RemoveAll(t => t.Name.Contains("attn_q_norm", StringComparison.Ordinal)))).Message;
        Assert.Contains("qwen3 layer 0 lacks attn_q_norm", norms, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', phi + pre + norms);
    }

    [Fact]
    public void Absurd_dimensions_are_refused_before_anything_is_allocated()
    {
        Assert.Contains("absurd", Load(w => w.Metadata["llama.embedding_length"] = 1 << 30), StringComparison.Ordinal);
        Assert.Contains("absurd", Load(w => w.Metadata["llama.attention.head_count"] = 3), StringComparison.Ordinal);
        Assert.Contains("absurd dimension", Load(w => w.Tensors[0] = (w.Tensors[0].Name, [64, 1L << 40], w.Tensors[0].Type, w.Tensors[0].Data)), StringComparison.Ordinal);
        Assert.Contains("expected", Load(w => w.Tensors[2] = (w.Tensors[2].Name, [32, 64], w.Tensors[2].Type, w.Tensors[2].Data[..(w.Tensors[2].Data.Length / 2)])), StringComparison.Ordinal);
    }

    private static string Load(Action<GgufWriter> breakIt) => Assert.Throws<GgufException>(() => Write(TestModels.Writer(GgmlType.Q8_0), breakIt)).Message;

    private static LlamaModel Write(GgufWriter writer, Action<GgufWriter> breakIt)
    {
        breakIt(writer);
        var path = Path.Combine(Directory.CreateTempSubdirectory("goblin-broken-").FullName, "broken.gguf");
        writer.Write(path);
        return LlamaModel.Load(path);
    }
}
