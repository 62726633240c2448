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
        Assert.Contains("tokenizer 'gpt2'", Load(w => w.Metadata["tokenizer.ggml.model"] = "gpt2"), StringComparison.Ordinal);
        Assert.Contains("Q5_K", Load(w => w.Tensors[1] = (w.Tensors[1].Name, w.Tensors[1].Dimensions, GgmlType.Q5_K, w.Tensors[1].Data)), StringComparison.Ordinal);
        Assert.Contains("blk.0.ffn_up.weight is missing", Load(w => w.Tensors.RemoveAll(t => t.Name == "blk.0.ffn_up.weight")), StringComparison.Ordinal);
    }

    [Fact]
    public void Absurd_dimensions_are_refused_before_anything_is_allocated()
    {
        Assert.Contains("absurd", Load(w => w.Metadata["llama.embedding_length"] = 1 << 30), StringComparison.Ordinal);
        Assert.Contains("absurd", Load(w => w.Metadata["llama.attention.head_count"] = 3), StringComparison.Ordinal);
        Assert.Contains("absurd dimension", Load(w => w.Tensors[0] = (w.Tensors[0].Name, [64, 1L << 40], w.Tensors[0].Type, w.Tensors[0].Data)), StringComparison.Ordinal);
        Assert.Contains("expected", Load(w => w.Tensors[2] = (w.Tensors[2].Name, [32, 64], w.Tensors[2].Type, w.Tensors[2].Data[..(w.Tensors[2].Data.Length / 2)])), StringComparison.Ordinal);
    }

    private static string Load(Action<GgufWriter> breakIt)
    {
        var writer = TestModels.Writer(GgmlType.Q8_0);
        breakIt(writer);
        var path = Path.Combine(Directory.CreateTempSubdirectory("goblin-broken-").FullName, "broken.gguf");
        writer.Write(path);
        return Assert.Throws<GgufException>(() => LlamaModel.Load(path)).Message;
    }
}
