namespace GoblinAspire.ChatFallback.Tokenization;

/// <summary>A GGUF file's vocabulary: text to ids as llama.cpp does it, and ids back to bytes.</summary>
public interface ITokenizer
{
    int Count { get; }

    /// <summary>The beginning-of-sequence id; -1 where the vocabulary has none.</summary>
    int Bos { get; }

    int Eos { get; }

    /// <summary><c>tokenizer.ggml.add_bos_token</c>, or the vocabulary type's default as llama.cpp has it.</summary>
    bool AddBos { get; }

    string Piece(int id);

    bool IsControl(int id);

    /// <summary>Whether <paramref name="id"/> ends a generation: EOS, EOT, EOM and the end-of-turn tokens llama.cpp recognises by text.</summary>
    bool IsEndOfGeneration(int id);

    int? Find(string piece);

    List<int> Encode(string text, bool addBos, bool parseSpecial);

    /// <summary>The bytes a token contributes to the text (none for control tokens).</summary>
    void AppendBytes(int id, List<byte> bytes);
}

public static class TokenizerExtensions
{
    /// <summary>The text of <paramref name="ids"/>, control tokens left out: every vocabulary decodes through its bytes.</summary>
    public static string Decode(this ITokenizer tokenizer, IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            tokenizer.AppendBytes(id, bytes);
        }

        return System.Text.Encoding.UTF8.GetString(bytes.ToArray());
    }
}
