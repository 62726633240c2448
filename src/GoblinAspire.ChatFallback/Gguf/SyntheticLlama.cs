using GoblinAspire.ChatFallback.Tokenization;

namespace GoblinAspire.ChatFallback.Gguf;

/// <summary>The dimensions of a Llama model; <paramref name="HeadDimension"/> 0 means dimension / heads.</summary>
public sealed record LlamaShape(int Dimension = 64, int Layers = 2, int Heads = 4, int KvHeads = 2, int FeedForward = 128, int Context = 256, int HeadDimension = 0)
{
    public int Head => HeadDimension > 0 ? HeadDimension : Dimension / Heads;
}

/// <summary>The model families synthetic files imitate: architecture, vocabulary and the tensors that set them apart.</summary>
public enum SyntheticFamily
{
    /// <summary><c>llama</c> with a SentencePiece vocabulary and its own output matrix, like TinyLlama.</summary>
    TinyLlama,

    /// <summary><c>llama</c>, byte-level BPE (<c>llama-bpe</c>), <c>rope_freqs</c> and tied embeddings, like Llama 3.2.</summary>
    Llama3,

    /// <summary><c>qwen2</c>: q/k/v biases, byte-level BPE (<c>qwen2</c>), tied embeddings, like Qwen2.5 0.5B.</summary>
    Qwen2,

    /// <summary><c>qwen3</c>: per-head q/k norms, heads wider than dimension / heads, like Qwen3 0.6B.</summary>
    Qwen3,

    /// <summary><c>llama</c>, byte-level BPE (<c>smollm</c>), tied embeddings, like SmolLM2.</summary>
    SmolLm,
}

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

    public const string Llama3Template = "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}";

    public const string SmolLmTemplate = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// <summary>A random-weight model of <paramref name="family"/>; its own chat template unless <paramref name="chatTemplate"/> says otherwise.</summary>
    public static GgufWriter Family(SyntheticFamily family, GgmlType weights, LlamaShape? shape = null, int seed = 1, int merges = 400, int vocabularySize = 0, string? name = null)
    {
        if (family == SyntheticFamily.TinyLlama)
        {
            return Writer(weights, shape, seed, ChatMlTemplate, vocabularySize, name);
        }

        shape ??= new LlamaShape();
        var (architecture, pre, template, specials, addBos) = family switch
        {
            SyntheticFamily.Llama3 => ("llama", "llama-bpe", Llama3Template, new[] { "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>" }, true),
            SyntheticFamily.Qwen2 => ("qwen2", "qwen2", ChatMlTemplate, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], false),
            SyntheticFamily.Qwen3 => ("qwen3", "qwen2", ChatMlTemplate, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], false),
            _ => ("llama", "smollm", SmolLmTemplate, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], false),
        };
        var (learned, mergeList) = SyntheticBpeVocabulary.Learn(BpePreTokenizer.For(pre), merges);
        // SmolLM2 keeps its specials first (ids 0-2); Llama 3 and Qwen append them after the learned vocabulary.
        var tokens = family == SyntheticFamily.SmolLm ? specials.Concat(learned).ToList() : learned.Concat(specials).ToList();
        for (var i = tokens.Count; i < vocabularySize; i++)
        {
            tokens.Add($"<|reserved_{i}|>");
        }

        var types = tokens.Select(t => specials.Contains(t) || t.StartsWith("<|reserved_", StringComparison.Ordinal) ? GgufVocabulary.ControlType : GgufVocabulary.NormalType).ToArray();
        int Id(string token) => tokens.IndexOf(token);
        var (bos, eos) = family switch
        {
            SyntheticFamily.Llama3 => (Id("<|begin_of_text|>"), Id("<|eot_id|>")),
            SyntheticFamily.SmolLm => (Id("<|im_start|>"), Id("<|im_end|>")),
            _ => (Id("<|endoftext|>"), Id("<|im_end|>")),
        };

#pragma warning disable CA5394 // synthetic weights: reproducible, not secret
        var random = new Random(seed);
        var writer = new GgufWriter();
        var m = writer.Metadata;
        var a = architecture;
        m["general.architecture"] = architecture;
        m["general.name"] = name ?? $"synthetic-{family}-{weights}".ToLowerInvariant();
        m["general.alignment"] = 32u;
        m[$"{a}.context_length"] = (uint)shape.Context;
        m[$"{a}.embedding_length"] = (uint)shape.Dimension;
        m[$"{a}.block_count"] = (uint)shape.Layers;
        m[$"{a}.feed_forward_length"] = (uint)shape.FeedForward;
        m[$"{a}.attention.head_count"] = (uint)shape.Heads;
        m[$"{a}.attention.head_count_kv"] = (uint)shape.KvHeads;
        m[$"{a}.rope.freq_base"] = family == SyntheticFamily.Llama3 ? 500000f : family == SyntheticFamily.SmolLm ? 100000f : 1000000f;
        m[$"{a}.attention.layer_norm_rms_epsilon"] = family == SyntheticFamily.Llama3 ? 1e-5f : 1e-6f;
        if (shape.HeadDimension > 0)
        {
            m[$"{a}.attention.key_length"] = (uint)shape.Head;
            m[$"{a}.attention.value_length"] = (uint)shape.Head;
        }

        if (family == SyntheticFamily.Llama3)
        {
            m[$"{a}.rope.dimension_count"] = (uint)shape.Head;
        }

        m["tokenizer.ggml.model"] = "gpt2";
        m["tokenizer.ggml.pre"] = pre;
        m["tokenizer.ggml.tokens"] = tokens.ToArray();
        m["tokenizer.ggml.token_type"] = types;
        m["tokenizer.ggml.merges"] = mergeList;
        m["tokenizer.ggml.bos_token_id"] = (uint)bos;
        m["tokenizer.ggml.eos_token_id"] = (uint)eos;
        m["tokenizer.ggml.add_bos_token"] = addBos;
        m["tokenizer.chat_template"] = template;

        var head = shape.Head;
        void Matrix(string tensor, int rows, int columns, GgmlType type)
        {
            var values = new float[rows * columns];
            var scale = 1f / MathF.Sqrt(columns);
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = (float)(((random.NextDouble() * 2) - 1) * scale * 1.7);
            }

            writer.Tensors.Add((tensor, [columns, rows], type, GgmlQuantizer.Quantize(type, values, random)));
        }

        void Vector(string tensor, int length, double from, double width)
        {
            var values = Enumerable.Range(0, length).Select(_ => (float)(from + (random.NextDouble() * width))).ToArray();
            writer.Tensors.Add((tensor, [length], GgmlType.F32, GgmlQuantizer.Quantize(GgmlType.F32, values, random)));
        }

        var embeddingType = weights is GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K ? GgmlType.Q8_0 : weights;
        // Tied embeddings: the embedding is also the output projection, so it scales the logits; a wider spread keeps
        // greedy choices clear of near-ties.
        Matrix("token_embd.weight", tokens.Count, shape.Dimension, embeddingType);
        if (family == SyntheticFamily.Llama3)
        {
            writer.Tensors.Add(("rope_freqs.weight", [head / 2], GgmlType.F32, GgmlQuantizer.Quantize(GgmlType.F32, Llama3RopeFactors(head, 500000f), random)));
        }

        for (var l = 0; l < shape.Layers; l++)
        {
            Vector($"blk.{l}.attn_norm.weight", shape.Dimension, 0.8, 0.4);
            Matrix($"blk.{l}.attn_q.weight", shape.Heads * head, shape.Dimension, weights);
            Matrix($"blk.{l}.attn_k.weight", shape.KvHeads * head, shape.Dimension, weights);
            Matrix($"blk.{l}.attn_v.weight", shape.KvHeads * head, shape.Dimension, weights);
            if (family == SyntheticFamily.Qwen2)
            {
                Vector($"blk.{l}.attn_q.bias", shape.Heads * head, -0.5, 1);
                Vector($"blk.{l}.attn_k.bias", shape.KvHeads * head, -0.5, 1);
                Vector($"blk.{l}.attn_v.bias", shape.KvHeads * head, -0.5, 1);
            }

            if (family == SyntheticFamily.Qwen3)
            {
                Vector($"blk.{l}.attn_q_norm.weight", head, 0.8, 0.4);
                Vector($"blk.{l}.attn_k_norm.weight", head, 0.8, 0.4);
            }

            Matrix($"blk.{l}.attn_output.weight", shape.Dimension, shape.Heads * head, weights);
            Vector($"blk.{l}.ffn_norm.weight", shape.Dimension, 0.8, 0.4);
            Matrix($"blk.{l}.ffn_gate.weight", shape.FeedForward, shape.Dimension, weights);
            Matrix($"blk.{l}.ffn_up.weight", shape.FeedForward, shape.Dimension, weights);
            Matrix($"blk.{l}.ffn_down.weight", shape.Dimension, shape.FeedForward, weights);
        }

        // A larger output norm spreads the tied projection's logits, as trained models' are spread.
        Vector("output_norm.weight", shape.Dimension, 2.5, 1);
        return writer;
#pragma warning restore CA5394
    }

    /// <summary>
    /// Llama 3.1's frequency factors (factor 32, low 1, high 4, original context 8192): long wavelengths are slowed by
    /// the factor, short ones kept, the band between blended. Converters store these as <c>rope_freqs</c>.
    /// </summary>
    public static float[] Llama3RopeFactors(int headDimension, float frequencyBase)
    {
        const double Factor = 32, Low = 1, High = 4, Original = 8192;
        var factors = new float[headDimension / 2];
        for (var i = 0; i < factors.Length; i++)
        {
            var wavelength = 2 * Math.PI * Math.Pow(frequencyBase, 2.0 * i / headDimension);
            factors[i] = wavelength < Original / High ? 1f
                : wavelength > Original / Low ? (float)Factor
                : (float)(1 / (((1 - ((Original / wavelength) - Low) / (High - Low)) / Factor) + (((Original / wavelength) - Low) / (High - Low))));
        }

        return factors;
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
