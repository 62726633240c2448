using GoblinAspire.ChatFallback.Gguf;

namespace GoblinAspire.ChatFallback.Tokenization;

/// <summary>Picks the tokenizer a GGUF file declares, and what every vocabulary type shares: token types and end-of-generation ids.</summary>
public static class GgufVocabulary
{
    public const int NormalType = 1;
    public const int UnknownType = 2;
    public const int ControlType = 3;
    public const int UserDefinedType = 4;
    public const int UnusedType = 5;
    public const int ByteType = 6;

    /// <summary>Texts llama.cpp treats as ending a generation wherever they occur in a vocabulary.</summary>
    public static readonly IReadOnlyList<string> EndOfGenerationTexts =
        ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>"];

    public static ITokenizer Load(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var model = file.Get("tokenizer.ggml.model", "");
        return model switch
        {
            "llama" => SentencePieceTokenizer.FromGguf(file),
            "gpt2" => ByteLevelBpeTokenizer.FromGguf(file),
            _ => throw new GgufException($"tokenizer '{model}' is not supported (llama, SentencePiece; gpt2, byte-level BPE)"),
        };
    }

    /// <summary>An id from the file, checked against the vocabulary; <paramref name="fallback"/> where the key is absent.</summary>
    public static int Id(GgufFile file, string key, int fallback, int count)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!file.Metadata.ContainsKey(key))
        {
            return fallback;
        }

        var id = file.Get(key, fallback);
        return id >= 0 && id < count ? id : throw new GgufException($"{key} {id} is outside the vocabulary");
    }

    /// <summary>
    /// llama.cpp's end-of-generation set: EOS, the file's EOT and EOM ids, and every token whose text is one of
    /// <see cref="EndOfGenerationTexts"/> (those are treated as control tokens, whatever the file says).
    /// </summary>
    public static HashSet<int> EndOfGeneration(GgufFile file, string[] pieces, int[] types, int eos)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(pieces);
        ArgumentNullException.ThrowIfNull(types);
        var ids = new HashSet<int>();
        if (eos >= 0)
        {
            ids.Add(eos);
        }

        foreach (var key in new[] { "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id" })
        {
            var id = Id(file, key, -1, pieces.Length);
            if (id >= 0)
            {
                ids.Add(id);
            }
        }

        for (var i = 0; i < pieces.Length; i++)
        {
            if (EndOfGenerationTexts.Contains(pieces[i]))
            {
                ids.Add(i);
                types[i] = ControlType;
            }
        }

        return ids;
    }
}
