using GoblinAspire.ChatFallback.Tokenization;

namespace GoblinAspire.ChatFallback.Gguf;

/// <summary>
/// A small byte-level BPE vocabulary learned from a built-in text the way real ones are: all 256 byte symbols, then
/// the most frequent adjacent pair of the pre-tokenised words merged, again and again. Its merges are therefore
/// consistent (every merge's parts and result are tokens) and exercise contractions, digits, spaces and non-ASCII.
/// </summary>
public static class SyntheticBpeVocabulary
{
    private const string Corpus = """
        The quick brown fox jumps over the lazy dog. It's a fine day, isn't it? We'll see, they'd say, and I'm sure you've heard.
        Hello world! Hello, assistant. The user asks; the assistant answers. System prompts set the scene.
        Numbers: 1, 12, 123, 1234, 2024, 3.14159, 100000 and 42. Prices rose 7% in 2023 to $19.99.
        Café, naïve, déjà vu, résumé — Ünïcödé text. 日本語のテキスト。中文文本。Привет, мир! 😀 emoji too.
        def main():\n    return "tokens"  # code has    runs of spaces\n\n\tand tabs.
        Question: what is the answer? Answer: the answer is that there is no answer, only better questions.
        """;

    /// <summary>Tokens (in GPT-2's byte alphabet: the 256 bytes, then one per new merge) and merges ("left right"), in rank order.</summary>
    public static (string[] Tokens, string[] Merges) Learn(BpePreTokenizer preTokenizer, int merges)
    {
        ArgumentNullException.ThrowIfNull(preTokenizer);
        var words = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var word in preTokenizer.Split(Corpus.Replace("\\n", "\n", StringComparison.Ordinal).Replace("\\t", "\t", StringComparison.Ordinal)))
        {
            var spelled = ByteLevelBpeTokenizer.Spell(word);
            words[spelled] = words.GetValueOrDefault(spelled) + 1;
        }

        var tokens = new List<string>();
        for (var b = 0; b < 256; b++)
        {
            tokens.Add(ByteLevelBpeTokenizer.SpellByte((byte)b).ToString());
        }

        var known = new HashSet<string>(tokens, StringComparer.Ordinal);
        var learned = new List<string>();
        var split = words.ToDictionary(w => w.Key, w => w.Key.Select(c => c.ToString()).ToList(), StringComparer.Ordinal);
        for (var m = 0; m < merges; m++)
        {
            var counts = new Dictionary<(string, string), int>();
            foreach (var (word, symbols) in split)
            {
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    counts[(symbols[i], symbols[i + 1])] = counts.GetValueOrDefault((symbols[i], symbols[i + 1])) + words[word];
                }
            }

            if (counts.Count == 0)
            {
                break;
            }

            // Most frequent first; ties in ordinal order so the vocabulary is the same on every machine.
            var best = counts.OrderByDescending(c => c.Value).ThenBy(c => c.Key.Item1, StringComparer.Ordinal).ThenBy(c => c.Key.Item2, StringComparer.Ordinal).First().Key;
            learned.Add(best.Item1 + " " + best.Item2);
            var merged = best.Item1 + best.Item2;
            if (known.Add(merged))
            {
                tokens.Add(merged);
            }

            foreach (var symbols in split.Values)
            {
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }
        }

        return (tokens.ToArray(), learned.ToArray());
    }
}
