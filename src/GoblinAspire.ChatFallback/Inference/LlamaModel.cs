using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Tokenization;

namespace GoblinAspire.ChatFallback.Inference;

public sealed record LlamaConfig(int Dimension, int Layers, int Heads, int KvHeads, int FeedForward, int Vocabulary, int ContextLength, float RopeFrequencyBase, float NormEpsilon)
{
    public int HeadDimension => Dimension / Heads;

    public int KvDimension => HeadDimension * KvHeads;
}

public sealed class LlamaLayer
{
    public required float[] AttentionNorm { get; init; }

    public required WeightMatrix Query { get; init; }

    public required WeightMatrix Key { get; init; }

    public required WeightMatrix Value { get; init; }

    public required WeightMatrix Output { get; init; }

    public required float[] FeedForwardNorm { get; init; }

    public required WeightMatrix Gate { get; init; }

    public required WeightMatrix Up { get; init; }

    public required WeightMatrix Down { get; init; }
}

/// <summary>A Llama-architecture model loaded from GGUF: configuration, tokenizer and weights, all in memory.</summary>
public sealed class LlamaModel
{
    private LlamaModel(string name, LlamaConfig config, SentencePieceTokenizer tokenizer, WeightMatrix embedding, LlamaLayer[] layers, float[] outputNorm, WeightMatrix output, string? chatTemplate, long bytes)
    {
        Name = name;
        Config = config;
        Tokenizer = tokenizer;
        Embedding = embedding;
        Layers = layers;
        OutputNorm = outputNorm;
        Output = output;
        ChatTemplate = chatTemplate;
        WeightBytes = bytes;
    }

    public string Name { get; }

    public LlamaConfig Config { get; }

    public SentencePieceTokenizer Tokenizer { get; }

    public WeightMatrix Embedding { get; }

    public IReadOnlyList<LlamaLayer> Layers { get; }

    public float[] OutputNorm { get; }

    public WeightMatrix Output { get; }

    /// <summary><c>tokenizer.chat_template</c>, when the file has one.</summary>
    public string? ChatTemplate { get; }

    public long WeightBytes { get; }

    /// <summary>Loads and checks a GGUF file; every problem is a <see cref="GgufException"/> naming it.</summary>
    public static LlamaModel Load(string path, string? name = null)
    {
        var file = GgufFile.Open(path);
        var architecture = file.Get<string>("general.architecture", "");
        if (architecture != "llama")
        {
            throw new GgufException($"architecture '{architecture}' is not supported (llama is)");
        }

        var dimension = file.Require<int>("llama.embedding_length");
        var heads = file.Require<int>("llama.attention.head_count");
        var config = new LlamaConfig(
            dimension,
            file.Require<int>("llama.block_count"),
            heads,
            file.Get("llama.attention.head_count_kv", heads),
            file.Require<int>("llama.feed_forward_length"),
            0,
            file.Get("llama.context_length", 2048),
            file.Get("llama.rope.freq_base", 10000f),
            file.Get("llama.attention.layer_norm_rms_epsilon", 1e-5f));
        if (config.Dimension is <= 0 or > 65536 || config.Layers is <= 0 or > 1024 || config.Heads <= 0 || config.KvHeads <= 0
            || config.Dimension % config.Heads != 0 || config.Heads % config.KvHeads != 0 || config.HeadDimension % 2 != 0
            || config.FeedForward is <= 0 or > 1 << 20 || config.ContextLength <= 0)
        {
            throw new GgufException($"absurd dimensions: {config}");
        }

        var tokenizer = SentencePieceTokenizer.FromGguf(file);
        long bytes = 0;
        WeightMatrix Matrix(string tensorName, int rows, int columns)
        {
            var info = file.Tensors.GetValueOrDefault(tensorName) ?? throw new GgufException($"tensor {tensorName} is missing");
            if (info.Dimensions.Length != 2 || info.Dimensions[0] != columns || info.Dimensions[1] != rows)
            {
                throw new GgufException($"tensor {tensorName} is [{string.Join(", ", info.Dimensions)}], expected [{columns}, {rows}]");
            }

            GgmlTypes.Block(info.Type);
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

        var vocabulary = tokenizer.Count;
        config = config with { Vocabulary = vocabulary };
        var embedding = Matrix("token_embd.weight", vocabulary, dimension);
        var layers = new LlamaLayer[config.Layers];
        for (var i = 0; i < layers.Length; i++)
        {
            layers[i] = new LlamaLayer
            {
                AttentionNorm = Vector($"blk.{i}.attn_norm.weight", dimension),
                Query = Matrix($"blk.{i}.attn_q.weight", dimension, dimension),
                Key = Matrix($"blk.{i}.attn_k.weight", config.KvDimension, dimension),
                Value = Matrix($"blk.{i}.attn_v.weight", config.KvDimension, dimension),
                Output = Matrix($"blk.{i}.attn_output.weight", dimension, dimension),
                FeedForwardNorm = Vector($"blk.{i}.ffn_norm.weight", dimension),
                Gate = Matrix($"blk.{i}.ffn_gate.weight", config.FeedForward, dimension),
                Up = Matrix($"blk.{i}.ffn_up.weight", config.FeedForward, dimension),
                Down = Matrix($"blk.{i}.ffn_down.weight", dimension, config.FeedForward),
            };
        }

        var outputNorm = Vector("output_norm.weight", dimension);
        // Models with tied embeddings have no output tensor: the embedding matrix is the output projection.
        var output = file.Tensors.ContainsKey("output.weight") ? Matrix("output.weight", vocabulary, dimension) : embedding;
        return new LlamaModel(name ?? file.Get("general.name", Path.GetFileNameWithoutExtension(path)), config, tokenizer, embedding, layers, outputNorm, output, file.Get<string?>("tokenizer.chat_template", null), bytes);
    }
}
