using GoblinAspire.ChatFallback.Gguf;

namespace GoblinAspire.ChatFallback.Tests;

/// <summary>Synthetic models written to temporary files, in the shapes each weight type needs.</summary>
public static class TestModels
{
    public const string ChatMlTemplate = SyntheticLlama.ChatMlTemplate;

    public static GgufWriter Writer(GgmlType weights, LlamaShape? shape = null, int seed = 1, string? chatTemplate = ChatMlTemplate) =>
        SyntheticLlama.Writer(weights, shape, seed, chatTemplate);

    public static string Create(GgmlType weights, LlamaShape? shape = null, int seed = 1, string? chatTemplate = ChatMlTemplate)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("goblin-gguf-").FullName, $"model-{weights}.gguf".ToLowerInvariant());
        Writer(weights, shape, seed, chatTemplate).Write(path);
        return path;
    }

    /// <summary>The shape K-quant models need: every row a whole number of 256-value super-blocks.</summary>
    public static LlamaShape KQuantShape => new(Dimension: 256, Layers: 1, Heads: 4, KvHeads: 2, FeedForward: 256, Context: 128);

    public static LlamaShape ShapeFor(GgmlType type) => type is GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K ? KQuantShape : new LlamaShape();
}
