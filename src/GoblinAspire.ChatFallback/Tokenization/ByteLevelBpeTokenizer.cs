// Written here rather than on Microsoft.ML.Tokenizers 2.0.1: what decides llama.cpp's ids lies around the merge loop,
// not in it. llama.cpp applies a *sequence* of regexes per tokenizer.ggml.pre (SmolLM first splits every digit off, the
// default pre-tokenizer runs four in turn, each over the previous one's pieces), partitions special tokens longest-first
// over the whole text before any regex (user-defined tokens even without special parsing), skips merges for words
// already in a Llama 3 vocabulary (ignore_merges), and falls back to single-byte tokens in its own way. Rebuilding all
// of that around the library's BpeTokenizer would leave it only the rank-ordered merge loop, so the whole tokenizer is
// written here, and the parity tests hold it to llama.cpp's ids.
using System.Text;
using System.Text.RegularExpressions;
using GoblinAspire.ChatFallback.Gguf;

namespace GoblinAspire.ChatFallback.Tokenization;

/// <summary>
/// GGUF byte-level BPE (<c>tokenizer.ggml.model = gpt2</c>): special tokens are cut out first, the rest is split
/// into words by the pre-tokenizer <c>tokenizer.ggml.pre</c> names, each word's UTF-8 bytes are spelled in GPT-2's
/// byte alphabet, and adjacent symbols merge by <c>tokenizer.ggml.merges</c> rank, lowest first.
/// </summary>
public sealed class ByteLevelBpeTokenizer : ITokenizer
{
    private static readonly char[] ByteToChar = BuildByteAlphabet();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(p => p.c, p => (byte)p.b);

    private readonly string[] _pieces;
    private readonly int[] _types;
    private readonly Dictionary<string, int> _ids;
    private readonly Dictionary<string, int> _ranks;
    private readonly BpePreTokenizer _preTokenizer;
    private readonly HashSet<int> _endOfGeneration;
    private readonly int[] _specials;

    public ByteLevelBpeTokenizer(string[] pieces, int[] types, string[] merges, BpePreTokenizer preTokenizer, int bos, int eos, bool addBos, IEnumerable<int> endOfGeneration)
    {
        ArgumentNullException.ThrowIfNull(pieces);
        ArgumentNullException.ThrowIfNull(types);
        ArgumentNullException.ThrowIfNull(merges);
        ArgumentNullException.ThrowIfNull(preTokenizer);
        _pieces = pieces;
        _types = types;
        _preTokenizer = preTokenizer;
        Bos = bos;
        Eos = eos;
        AddBos = addBos;
        _endOfGeneration = [.. endOfGeneration];
        _ids = new Dictionary<string, int>(pieces.Length, StringComparer.Ordinal);
        for (var i = 0; i < pieces.Length; i++)
        {
            // As llama.cpp's token_to_id map: a later duplicate wins.
            _ids[pieces[i]] = i;
        }

        _ranks = new Dictionary<string, int>(merges.Length, StringComparer.Ordinal);
        for (var i = 0; i < merges.Length; i++)
        {
            // "left right", split at the first space after the first character; the first of equal pairs keeps its rank.
            var space = merges[i].IndexOf(' ', Math.Min(1, merges[i].Length));
            _ranks.TryAdd(space < 0 ? "\0" : merges[i][..space] + "\0" + merges[i][(space + 1)..], i);
        }

        _specials = Enumerable.Range(0, pieces.Length)
            .Where(i => types[i] is GgufVocabulary.ControlType or GgufVocabulary.UserDefinedType or GgufVocabulary.UnknownType && pieces[i].Length > 0)
            .OrderByDescending(i => Encoding.UTF8.GetByteCount(pieces[i]))
            .ToArray();
    }

    public int Count => _pieces.Length;

    public int Bos { get; }

    public int Eos { get; }

    public bool AddBos { get; }

    public string PreTokenizer => _preTokenizer.Name;

    public static ByteLevelBpeTokenizer FromGguf(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var pieces = file.Require<string[]>("tokenizer.ggml.tokens");
        var types = (int[])file.Get("tokenizer.ggml.token_type", Enumerable.Repeat(GgufVocabulary.NormalType, pieces.Length).ToArray()).Clone();
        var merges = file.Metadata.ContainsKey("tokenizer.ggml.merges") ? file.Require<string[]>("tokenizer.ggml.merges") : throw new GgufException("the gpt2 tokenizer has no tokenizer.ggml.merges");
        if (pieces.Length == 0 || types.Length != pieces.Length)
        {
            throw new GgufException("the tokenizer's tokens and types disagree in length");
        }

        var preTokenizer = BpePreTokenizer.For(file.Get("tokenizer.ggml.pre", "default"));
        // llama.cpp's defaults for BPE vocabularies (BOS = EOS = 11) before the file's keys override them.
        var bos = GgufVocabulary.Id(file, "tokenizer.ggml.bos_token_id", Math.Min(11, pieces.Length - 1), pieces.Length);
        var eos = GgufVocabulary.Id(file, "tokenizer.ggml.eos_token_id", Math.Min(11, pieces.Length - 1), pieces.Length);
        var endOfGeneration = GgufVocabulary.EndOfGeneration(file, pieces, types, eos);
        return new ByteLevelBpeTokenizer(pieces, types, merges, preTokenizer, bos, eos, file.Get("tokenizer.ggml.add_bos_token", preTokenizer.AddsBos), endOfGeneration);
    }

    public string Piece(int id) => _pieces[id];

    public bool IsControl(int id) => _types[id] == GgufVocabulary.ControlType;

    public bool IsEndOfGeneration(int id) => _endOfGeneration.Contains(id);

    public int? Find(string piece) => _ids.TryGetValue(piece, out var id) ? id : null;

    /// <summary>The token of a word of text as the vocabulary spells it (its bytes in GPT-2's alphabet).</summary>
    public int? FindText(string text) => Find(Spell(text));

    public List<int> Encode(string text, bool addBos, bool parseSpecial)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<int>();
        if (addBos && Bos >= 0)
        {
            tokens.Add(Bos);
        }

        foreach (var (fragment, special) in Partition(text, parseSpecial))
        {
            if (special >= 0)
            {
                tokens.Add(special);
                continue;
            }

            foreach (var word in _preTokenizer.Split(fragment))
            {
                EncodeWord(Spell(word), tokens);
            }
        }

        return tokens;
    }

    public void AppendBytes(int id, List<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        switch (_types[id])
        {
            case GgufVocabulary.ControlType or GgufVocabulary.UnknownType or GgufVocabulary.UnusedType:
                return;
            case GgufVocabulary.UserDefinedType:
                bytes.AddRange(Encoding.UTF8.GetBytes(_pieces[id]));
                return;
        }

        foreach (var c in _pieces[id])
        {
            if (CharToByte.TryGetValue(c, out var b))
            {
                bytes.Add(b);
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
            }
        }
    }

    /// <summary>
    /// llama.cpp's special-token partition: each special token in turn, longest first, is cut out of every piece of
    /// text still raw. Control (and unknown) tokens only when <paramref name="parseSpecial"/>; user-defined ones always.
    /// </summary>
    private List<(string Text, int Special)> Partition(string text, bool parseSpecial)
    {
        var parts = new List<(string Text, int Special)> { (text, -1) };
        if (text.Length == 0)
        {
            return [];
        }

        foreach (var id in _specials)
        {
            if (!parseSpecial && _types[id] != GgufVocabulary.UserDefinedType)
            {
                continue;
            }

            var piece = _pieces[id];
            for (var p = 0; p < parts.Count; p++)
            {
                var (raw, special) = parts[p];
                if (special >= 0)
                {
                    continue;
                }

                var at = raw.IndexOf(piece, StringComparison.Ordinal);
                if (at < 0)
                {
                    continue;
                }

                var replacement = new List<(string, int)>();
                var start = 0;
                while (at >= 0)
                {
                    if (at > start)
                    {
                        replacement.Add((raw[start..at], -1));
                    }

                    replacement.Add((piece, id));
                    start = at + piece.Length;
                    at = raw.IndexOf(piece, start, StringComparison.Ordinal);
                }

                if (start < raw.Length)
                {
                    replacement.Add((raw[start..], -1));
                }

                parts.RemoveAt(p);
                parts.InsertRange(p, replacement);
                p += replacement.Count - 1;
            }
        }

        return parts;
    }

    private void EncodeWord(string word, List<int> tokens)
    {
        if (_preTokenizer.IgnoresMerges && _ids.TryGetValue(word, out var whole))
        {
            tokens.Add(whole);
            return;
        }

        // One symbol per character of the spelled word (each stands for one byte); merges join neighbours.
        var symbols = new string[word.Length];
        var previous = new int[word.Length];
        var next = new int[word.Length];
        for (var i = 0; i < word.Length; i++)
        {
            symbols[i] = word[i].ToString();
            previous[i] = i - 1;
            next[i] = i + 1 < word.Length ? i + 1 : -1;
        }

        var queue = new PriorityQueue<(int Left, int Right, string Text), (int Rank, int Left)>();
        void Consider(int left, int right)
        {
            if (left >= 0 && right >= 0 && _ranks.TryGetValue(symbols[left] + "\0" + symbols[right], out var rank))
            {
                queue.Enqueue((left, right, symbols[left] + symbols[right]), (rank, left));
            }
        }

        for (var i = 1; i < word.Length; i++)
        {
            Consider(i - 1, i);
        }

        while (queue.TryDequeue(out var bigram, out _))
        {
            var (left, right) = (bigram.Left, bigram.Right);
            // An entry whose sides have changed since it was queued is stale.
            if (symbols[left].Length == 0 || symbols[right].Length == 0 || symbols[left] + symbols[right] != bigram.Text)
            {
                continue;
            }

            symbols[left] = bigram.Text;
            symbols[right] = "";
            next[left] = next[right];
            if (next[right] >= 0)
            {
                previous[next[right]] = left;
            }

            Consider(previous[left], left);
            Consider(left, next[left]);
        }

        for (var i = 0; i >= 0; i = next[i])
        {
            if (symbols[i].Length == 0)
            {
                continue;
            }

            if (_ids.TryGetValue(symbols[i], out var id))
            {
                tokens.Add(id);
                continue;
            }

            // llama.cpp looks each byte of the symbol's UTF-8 up as a one-byte token; only ASCII can match.
            foreach (var c in symbols[i])
            {
                if (c < 0x80 && _ids.TryGetValue(c.ToString(), out var single))
                {
                    tokens.Add(single);
                }
            }
        }
    }

    /// <summary>A word's UTF-8 bytes in GPT-2's alphabet of 256 printable characters.</summary>
    public static string Spell(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        var bytes = Encoding.UTF8.GetBytes(word);
        var chars = new char[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
        {
            chars[i] = ByteToChar[bytes[i]];
        }

        return new string(chars);
    }

    /// <summary>The character GPT-2's alphabet spells <paramref name="value"/> with.</summary>
    public static char SpellByte(byte value) => ByteToChar[value];

    /// <summary>GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the rest for U+0100 onwards in order.</summary>
    private static char[] BuildByteAlphabet()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }

        return map;
    }
}

/// <summary>
/// The word splits of llama.cpp's BPE pre-tokenizers: a sequence of regexes, each applied to every piece the previous
/// one left, keeping both the matches and the text between them.
/// </summary>
public sealed class BpePreTokenizer
{
    private const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    private const string Llama3 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    private const string Qwen2 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private readonly Regex[] _expressions;

    private BpePreTokenizer(string name, bool ignoresMerges, bool addsBos, params string[] expressions)
    {
        Name = name;
        IgnoresMerges = ignoresMerges;
        AddsBos = addsBos;
        _expressions = expressions.Select(e => new Regex(e, RegexOptions.CultureInvariant | RegexOptions.Compiled)).ToArray();
    }

    public string Name { get; }

    /// <summary>Llama 3's vocabularies take a whole word that is a token as it is, without merging.</summary>
    public bool IgnoresMerges { get; }

    /// <summary>llama.cpp's default for <c>add_bos_token</c> where the file does not say.</summary>
    public bool AddsBos { get; }

    /// <summary>
    /// The pre-tokenizer of <c>tokenizer.ggml.pre</c>. Names this engine does not split like llama.cpp are refused
    /// rather than tokenised differently.
    /// </summary>
    public static BpePreTokenizer For(string name) => name switch
    {
        "llama3" or "llama-v3" or "llama-bpe" => new(name, ignoresMerges: true, addsBos: true, Llama3),
        "qwen2" or "deepseek-r1-qwen" => new(name, ignoresMerges: false, addsBos: false, Qwen2),
        "smollm" or "starcoder" or "refact" => new(name, ignoresMerges: false, addsBos: false, @"\p{N}", Gpt2),
        "gpt-2" => new(name, ignoresMerges: false, addsBos: false, Gpt2),
        "default" or "" => new("default", ignoresMerges: false, addsBos: false, @"[\p{P}\$\+<=>\^~\|]+", Gpt2, @"\p{N}+", "[0-9][0-9][0-9]"),
        _ => throw new GgufException($"pre-tokenizer '{name}' is not supported (llama-bpe, qwen2, smollm, gpt-2, default are)"),
    };

    public List<string> Split(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var words = new List<string> { text };
        foreach (var expression in _expressions)
        {
            var split = new List<string>();
            foreach (var word in words)
            {
                var start = 0;
                for (var match = expression.Match(word); match.Success; match = match.NextMatch())
                {
                    if (match.Length == 0)
                    {
                        continue;
                    }

                    if (match.Index > start)
                    {
                        split.Add(word[start..match.Index]);
                    }

                    split.Add(match.Value);
                    start = match.Index + match.Length;
                }

                if (start < word.Length)
                {
                    split.Add(word[start..]);
                }
            }

            words = split;
        }

        return words;
    }
}
