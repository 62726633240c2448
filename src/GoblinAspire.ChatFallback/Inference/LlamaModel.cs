using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Tokenization;

namespace GoblinAspire.ChatFallback.Inference;

/// <summary>How a family rotates query/key pairs: adjacent pairs (Llama's GGUF layout) or the two halves of a head (GPT-NeoX, Qwen).</summary>
public enum RopeLayout
{
    Adjacent,
    Halves,
}

/// <summary>
/// A model's hyperparameters, all read from its GGUF file. <see cref="HeadDimension"/> is the file's
/// <c>attention.key_length</c> where it has one (Qwen3's heads are wider than dimension / heads).
/// </summary>
public sealed record LlamaConfig(int Dimension, int Layers, int Heads, int KvHeads, int FeedForward, int Vocabulary, int ContextLength, float RopeFrequencyBase, float NormEpsilon)
{
    public string Architecture { get; init; } = "llama";

    public int HeadDimension { get; init; } = Heads > 0 ? Dimension / Heads : 0;

    /// <summary>Leading values of each head that are rotated (<c>rope.dimension_count</c>); the rest pass through.</summary>
    public int RopeDimensions { get; init; } = Heads > 0 ? Dimension / Heads : 0;

    public RopeLayout RopeLayout { get; init; } = RopeLayout.Adjacent;

    /// <summary>Linear RoPE scaling: positions are multiplied by this (1 / <c>rope.scaling.factor</c>).</summary>
    public float RopeFrequencyScale { get; init; } = 1f;

    public int KvDimension => HeadDimension * KvHeads;

    public int QueryDimension => HeadDimension * Heads;
}

public sealed class LlamaLayer
{
    public required float[] AttentionNorm { get; init; }

    public required WeightMatrix Query { get; init; }

    public required WeightMatrix Key { get; init; }

    public required WeightMatrix Value { get; init; }

    /// <summary>Qwen2's projection biases; null where the file has none.</summary>
    public float[]? QueryBias { get; init; }

    public float[]? KeyBias { get; init; }

    public float[]? ValueBias { get; init; }

    /// <summary>Qwen3's per-head RMS norms of queries and keys (one head's width); null where the file has none.</summary>
    public float[]? QueryNorm { get; init; }

    public float[]? KeyNorm { get; init; }

    public required WeightMatrix Output { get; init; }

    public required float[] FeedForwardNorm { get; init; }

    public required WeightMatrix Gate { get; init; }

    public required WeightMatrix Up { get; init; }

    public required WeightMatrix Down { get; init; }
}

/// <summary>
/// A decoder of the Llama family (<c>llama</c>, <c>qwen2</c>, <c>qwen3</c>) loaded from GGUF: configuration,
/// tokenizer and weights, all in memory.
/// </summary>
public sealed class LlamaModel
{
    public static readonly IReadOnlyList<string> Architectures = ["llama", "qwen2", "qwen3"];

    private LlamaModel(string name, LlamaConfig config, ITokenizer tokenizer, WeightMatrix embedding, LlamaLayer[] layers, float[] outputNorm, WeightMatrix output, float[]? ropeFactors, string? chatTemplate, long bytes)
    {
        Name = name;
        Config = config;
        Tokenizer = tokenizer;
        Embedding = embedding;
        Layers = layers;
        OutputNorm = outputNorm;
        Output = output;
        RopeFactors = ropeFactors;
        ChatTemplate = chatTemplate;
        WeightBytes = bytes;
    }

    public string Name { get; }

    public LlamaConfig Config { get; }

    public ITokenizer Tokenizer { get; }

    public WeightMatrix Embedding { get; }

    public IReadOnlyList<LlamaLayer> Layers { get; }

    public float[] OutputNorm { get; }

    public WeightMatrix Output { get; }

    /// <summary>Llama 3's <c>rope_freqs</c>: each rotation frequency is divided by its factor. Null where the file has none.</summary>
    public float[]? RopeFactors { get; }

    /// <summary><c>tokenizer.chat_template</c>, when the file has one.</summary>
    public string? ChatTemplate { get; }

    public long WeightBytes { get; }

    /// <summary>Loads and checks a GGUF file; every problem is a <see cref="GgufException"/> naming it in one line.</summary>
    public static LlamaModel Load(string path, string? name = null)
    {
        var file = GgufFile.Open(path);
        var architecture = file.Get<string>("general.architecture", "");
        if (!Architectures.Contains(architecture))
        {
            throw new GgufException($"architecture '{architecture}' is not supported ({string.Join(", ", Architectures)} are)");
        }

        var a = architecture;
        var dimension = file.Require<int>($"{a}.embedding_length");
        var heads = file.Require<int>($"{a}.attention.head_count");
        var headDimension = dimension / Math.Max(1, heads);
        headDimension = file.Get($"{a}.attention.key_length", headDimension);
        if (file.Get($"{a}.attention.value_length", headDimension) != headDimension)
        {
            throw new GgufException("attention.value_length differs from attention.key_length, which this engine does not run");
        }

        var scaling = file.Get($"{a}.rope.scaling.type", "none");
        var frequencyScale = scaling switch
        {
            "none" => 1f,
            "linear" => 1f / file.Get($"{a}.rope.scaling.factor", 1f),
            _ => throw new GgufException($"rope scaling '{scaling}' is not supported (none and linear are; Llama 3's scaling comes as rope_freqs)"),
        };
        var config = new LlamaConfig(
            dimension,
            file.Require<int>($"{a}.block_count"),
            heads,
            file.Get($"{a}.attention.head_count_kv", heads),
            file.Require<int>($"{a}.feed_forward_length"),
            0,
            file.Get($"{a}.context_length", 2048),
            file.Get($"{a}.rope.freq_base", 10000f),
            file.Get($"{a}.attention.layer_norm_rms_epsilon", 1e-5f))
        {
            Architecture = architecture,
            HeadDimension = headDimension,
            RopeDimensions = file.Get($"{a}.rope.dimension_count", headDimension),
            // llama.cpp's rope type per architecture: Llama's converter permutes q/k into adjacent pairs, Qwen's do not.
            RopeLayout = architecture == "llama" ? RopeLayout.Adjacent : RopeLayout.Halves,
            RopeFrequencyScale = frequencyScale,
        };
        if (config.Dimension is <= 0 or > 65536 || config.Layers is <= 0 or > 1024 || config.Heads is <= 0 or > 1024 || config.KvHeads <= 0
            || config.HeadDimension is <= 0 or > 1024 || config.Heads % config.KvHeads != 0 || config.RopeDimensions % 2 != 0
            || config.RopeDimensions <= 0 || config.RopeDimensions > config.HeadDimension
            || config.FeedForward is <= 0 or > 1 << 20 || config.ContextLength <= 0 || !(config.RopeFrequencyScale > 0))
        {
            throw new GgufException($"absurd dimensions: {config}");
        }

        var tokenizer = GgufVocabulary.Load(file);
        long bytes = 0;
        WeightMatrix Matrix(string tensorName, int rows, int columns)
        {
            var info = file.Tensors.GetValueOrDefault(tensorName) ?? throw new GgufException($"tensor {tensorName} is missing");
            if (info.Dimensions.Length != 2 || info.Dimensions[0] != columns || info.Dimensions[1] != rows)
            {
                throw new GgufException($"tensor {tensorName} is [{string.Join(", ", info.Dimensions)}], expected [{columns}, {rows}]");
            }

            bytes += info.ByteLength;
            return new WeightMatrix(tensorName, info.Type, rows, columns, file.ReadTensor(info));
        }

        float[] Vector(string tensorName, int length)
        {
            var info = file.Tensors.GetValueOrDefault(tensorName) ?? throw new GgufException($"tensor {tensorName} is missing");
            if (info.Elements != length)
            {
                throw new GgufException($"tensor {tensorName} has {info.Elements} values, expected {length}");
            }

            bytes += info.ByteLength;
            var values = new float[length];
            Quants.Dequantize(info.Type, file.ReadTensor(info), values);
            return values;
        }

        float[]? Optional(string tensorName, int length) => file.Tensors.ContainsKey(tensorName) ? Vector(tensorName, length) : null;

        var vocabulary = tokenizer.Count;
        config = config with { Vocabulary = vocabulary };
        var queryDimension = config.QueryDimension;
        var kvDimension = config.KvDimension;
        var embedding = Matrix("token_embd.weight", vocabulary, dimension);
        var layers = new LlamaLayer[config.Layers];
        for (var i = 0; i < layers.Length; i++)
        {
            layers[i] = new LlamaLayer
            {
                AttentionNorm = Vector($"blk.{i}.attn_norm.weight", dimension),
                Query = Matrix($"blk.{i}.attn_q.weight", queryDimension, dimension),
                Key = Matrix($"blk.{i}.attn_k.weight", kvDimension, dimension),
                Value = Matrix($"blk.{i}.attn_v.weight", kvDimension, dimension),
                QueryBias = Optional($"blk.{i}.attn_q.bias", queryDimension),
                KeyBias = Optional($"blk.{i}.attn_k.bias", kvDimension),
                ValueBias = Optional($"blk.{i}.attn_v.bias", kvDimension),
                QueryNorm = Optional($"blk.{i}.attn_q_norm.weight", config.HeadDimension),
                KeyNorm = Optional($"blk.{i}.attn_k_norm.weight", config.HeadDimension),
                Output = Matrix($"blk.{i}.attn_output.weight", dimension, queryDimension),
                FeedForwardNorm = Vector($"blk.{i}.ffn_norm.weight", dimension),
                Gate = Matrix($"blk.{i}.ffn_gate.weight", config.FeedForward, dimension),
                Up = Matrix($"blk.{i}.ffn_up.weight", config.FeedForward, dimension),
                Down = Matrix($"blk.{i}.ffn_down.weight", dimension, config.FeedForward),
            };
            if (architecture == "qwen3" && (layers[i].QueryNorm is null || layers[i].KeyNorm is null))
            {
                throw new GgufException($"qwen3 layer {i} lacks attn_q_norm / attn_k_norm");
            }
        }

        foreach (var unexpected in file.Tensors.Keys.Where(n => n.EndsWith(".attn_output.bias", StringComparison.Ordinal) || n.Contains("ffn_gate_inp", StringComparison.Ordinal)))
        {
            // A tensor the forward pass would ignore means the file is a variant this engine would answer wrongly.
            throw new GgufException($"tensor {unexpected} belongs to a variant of {architecture} this engine does not run");
        }

        var outputNorm = Vector("output_norm.weight", dimension);
        var ropeFactors = Optional("rope_freqs.weight", config.RopeDimensions / 2);
        // Models with tied embeddings have no output tensor: the embedding matrix is the output projection.
        var output = file.Tensors.ContainsKey("output.weight") ? Matrix("output.weight", vocabulary, dimension) : embedding;
        return new LlamaModel(name ?? file.Get("general.name", Path.GetFileNameWithoutExtension(path)), config, tokenizer, embedding, layers, outputNorm, output, ropeFactors, file.Get<string?>("tokenizer.chat_template", null), bytes);
    }
}
