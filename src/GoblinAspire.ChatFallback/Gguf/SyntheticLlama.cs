namespace GoblinAspire.ChatFallback.Gguf;

/// <summary>The dimensions of a Llama model.</summary>
public sealed record LlamaShape(int Dimension = 64, int Layers = 2, int Heads = 4, int KvHeads = 2, int FeedForward = 128, int Context = 256);

/// <summary>
/// Random-weight Llama models with a real SentencePiece-style vocabulary, written as GGUF: they load and generate
/// like a real model, but say nothing meaningful. The local host's demo model and the tests' models are these.
/// </summary>
public static class SyntheticLlama
{
    public const string ChatMlTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";

    /// <summary>
    /// &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, the ChatML markers (control), 256 byte tokens, then '▁', letters, digits,
    /// punctuation and a few merges with scores that favour longer pieces.
    /// </summary>
    public static (string[] Pieces, float[] Scores, int[] Types) Vocabulary(int size = 0)
    {
        var pieces = new List<string> { "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>" };
        var types = new List<int> { 2, 3, 3, 3, 3 };
        var scores = new List<float> { 0, 0, 0, 0, 0 };
        for (var b = 0; b < 256; b++)
        {
            pieces.Add($"<0x{b:X2}>");
            types.Add(6);
            scores.Add(0);
        }

        var singles = "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\n:-|<>/_".Select(c => c.ToString());
        var merges = new[] { "▁t", "▁a", "he", "▁the", "ll", "llo", "▁he", "▁hello", "or", "▁w", "▁wor", "ld", "▁world", "in", "ing", "▁is", "▁i", "er", "▁user", "▁us", "us", "se", "as", "▁as", "▁assistant", "ss", "ant", "ist", "▁system", "st", "em", "ys", "▁sy" };
        foreach (var piece in singles.Concat(merges))
        {
            if (!pieces.Contains(piece))
            {
                pieces.Add(piece);
                types.Add(1);
                scores.Add(-1000 + (piece.Length * 10) + pieces.Count * 0.001f);
            }
        }

        // Padding up to a real model's vocabulary size (TinyLlama's 32000) for benchmarks.
        for (var i = pieces.Count; i < size; i++)
        {
            pieces.Add($"▁w{i}");
            types.Add(1);
            scores.Add(-2000);
        }

        return (pieces.ToArray(), scores.ToArray(), types.ToArray());
    }

    public static GgufWriter Writer(GgmlType weights, LlamaShape? shape = null, int seed = 1, string? chatTemplate = ChatMlTemplate, int vocabularySize = 0, string? name = null)
    {
        shape ??= new LlamaShape();
        // Reproducible weights from a seed; nothing here needs unpredictability.
#pragma warning disable CA5394
        var random = new Random(seed);
        var (pieces, scores, types) = Vocabulary(vocabularySize);
        var writer = new GgufWriter();
        var m = writer.Metadata;
        m["general.architecture"] = "llama";
        m["general.name"] = name ?? $"synthetic-{weights}".ToLowerInvariant();
        m["general.alignment"] = 32u;
        m["llama.context_length"] = (uint)shape.Context;
        m["llama.embedding_length"] = (uint)shape.Dimension;
        m["llama.block_count"] = (uint)shape.Layers;
        m["llama.feed_forward_length"] = (uint)shape.FeedForward;
        m["llama.attention.head_count"] = (uint)shape.Heads;
        m["llama.attention.head_count_kv"] = (uint)shape.KvHeads;
        m["llama.rope.freq_base"] = 10000f;
        m["llama.attention.layer_norm_rms_epsilon"] = 1e-5f;
        m["tokenizer.ggml.model"] = "llama";
        m["tokenizer.ggml.tokens"] = pieces;
        m["tokenizer.ggml.scores"] = scores;
        m["tokenizer.ggml.token_type"] = types;
        m["tokenizer.ggml.bos_token_id"] = 1u;
        m["tokenizer.ggml.eos_token_id"] = 2u;
        m["tokenizer.ggml.unknown_token_id"] = 0u;
        if (chatTemplate is not null)
        {
            m["tokenizer.chat_template"] = chatTemplate;
        }

        var vocab = pieces.Length;
        var kv = shape.Dimension / shape.Heads * shape.KvHeads;
        void Matrix(string name, int rows, int columns, GgmlType type)
        {
            var values = new float[rows * columns];
            var scale = 1f / MathF.Sqrt(columns);
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = (float)(((random.NextDouble() * 2) - 1) * scale * 1.7);
            }

            writer.Tensors.Add((name, [columns, rows], type, GgmlQuantizer.Quantize(type, values, random)));
        }

        void Norm(string name, int length)
        {
            var values = Enumerable.Range(0, length).Select(_ => (float)(0.8 + (random.NextDouble() * 0.4))).ToArray();
            writer.Tensors.Add((name, [length], GgmlType.F32, GgmlQuantizer.Quantize(GgmlType.F32, values, random)));
        }

        // As in real Q4_K_M / Q8_0 files, the embedding and the small vectors keep simpler types.
        Matrix("token_embd.weight", vocab, shape.Dimension, weights is GgmlType.Q4_K or GgmlType.Q6_K ? GgmlType.Q8_0 : weights);
        for (var l = 0; l < shape.Layers; l++)
        {
            Norm($"blk.{l}.attn_norm.weight", shape.Dimension);
            Matrix($"blk.{l}.attn_q.weight", shape.Dimension, shape.Dimension, weights);
            Matrix($"blk.{l}.attn_k.weight", kv, shape.Dimension, weights);
            Matrix($"blk.{l}.attn_v.weight", kv, shape.Dimension, weights);
            Matrix($"blk.{l}.attn_output.weight", shape.Dimension, shape.Dimension, weights);
            Norm($"blk.{l}.ffn_norm.weight", shape.Dimension);
            Matrix($"blk.{l}.ffn_gate.weight", shape.FeedForward, shape.Dimension, weights);
            Matrix($"blk.{l}.ffn_up.weight", shape.FeedForward, shape.Dimension, weights);
            Matrix($"blk.{l}.ffn_down.weight", shape.Dimension, shape.FeedForward, weights);
        }

        Norm("output_norm.weight", shape.Dimension);
        Matrix("output.weight", vocab, shape.Dimension, weights == GgmlType.Q4_K ? GgmlType.Q6_K : weights);
        return writer;
    }
#pragma warning restore CA5394
}
