using System.Globalization;
using System.Text;
using GoblinAspire.ChatFallback.Gguf;

namespace GoblinAspire.ChatFallback.Tokenization;

/// <summary>
/// The SentencePiece BPE tokenizer of Llama-family GGUF files (<c>tokenizer.ggml.model = llama</c>), from the file's own
/// vocabulary and scores: spaces become '▁', characters are merged pairwise by best score, and anything left outside
/// the vocabulary falls back to byte tokens (<c>&lt;0xNN&gt;</c>). Control and user-defined tokens written in the
/// text (a chat template's <c>&lt;|im_start|&gt;</c>, <c>&lt;/s&gt;</c>) become their ids when special parsing is on.
/// </summary>
public sealed class SentencePieceTokenizer : ITokenizer
{
    public const char Space = '\u2581';
    private const int Control = 3;
    private const int UserDefined = 4;
    private const int ByteToken = 6;

    private readonly string[] _pieces;
    private readonly float[] _scores;
    private readonly int[] _types;
    private readonly Dictionary<string, int> _ids;
    private readonly int[] _byteIds = new int[256];
    private readonly Dictionary<int, byte> _byteValues = [];
    private readonly (string Text, int Id)[] _specials;
    private readonly HashSet<int> _endOfGeneration;

    public SentencePieceTokenizer(string[] pieces, float[] scores, int[] types, int bos, int eos, int unknown, bool addBos, bool addSpacePrefix, IEnumerable<int>? endOfGeneration = null)
    {
        ArgumentNullException.ThrowIfNull(pieces);
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(types);
        _pieces = pieces;
        _scores = scores;
        _types = types;
        Bos = bos;
        Eos = eos;
        Unknown = unknown;
        AddBos = addBos;
        AddSpacePrefix = addSpacePrefix;
        _endOfGeneration = [.. endOfGeneration ?? [eos]];
        _ids = new Dictionary<string, int>(pieces.Length, StringComparer.Ordinal);
        for (var i = 0; i < pieces.Length; i++)
        {
            _ids.TryAdd(pieces[i], i);
        }

        Array.Fill(_byteIds, -1);
        for (var i = 0; i < pieces.Length; i++)
        {
            if (types[i] == ByteToken && pieces[i].Length == 6 && pieces[i].StartsWith("<0x", StringComparison.Ordinal)
                && byte.TryParse(pieces[i].AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var value))
            {
                _byteIds[value] = i;
                _byteValues[i] = value;
            }
        }

        _specials = Enumerable.Range(0, pieces.Length)
            .Where(i => types[i] is Control or UserDefined && pieces[i].Length > 0)
            .Select(i => (pieces[i], i))
            .OrderByDescending(s => s.Item1.Length)
            .ToArray();
    }

    public int Count => _pieces.Length;

    public int Bos { get; }

    public int Eos { get; }

    public int Unknown { get; }

    public bool AddBos { get; }

    public bool AddSpacePrefix { get; }

    public static SentencePieceTokenizer FromGguf(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var model = file.Get("tokenizer.ggml.model", "");
        if (model != "llama")
        {
            throw new GgufException($"tokenizer '{model}' is not supported (llama, SentencePiece BPE, is)");
        }

        var pieces = file.Require<string[]>("tokenizer.ggml.tokens");
        var scores = file.Get("tokenizer.ggml.scores", new float[pieces.Length]);
        var types = file.Get("tokenizer.ggml.token_type", Enumerable.Repeat(1, pieces.Length).ToArray());
        if (pieces.Length == 0 || scores.Length != pieces.Length || types.Length != pieces.Length)
        {
            throw new GgufException("the tokenizer's tokens, scores and types disagree in length");
        }

        int Id(string key, int fallback)
        {
            var id = file.Get(key, fallback);
            return id >= 0 && id < pieces.Length ? id : throw new GgufException($"{key} {id} is outside the vocabulary");
        }

        types = (int[])types.Clone();
        var eos = Id("tokenizer.ggml.eos_token_id", 2);
        var endOfGeneration = GgufVocabulary.EndOfGeneration(file, pieces, types, eos);
        return new SentencePieceTokenizer(pieces, scores, types, Id("tokenizer.ggml.bos_token_id", 1), eos, Id("tokenizer.ggml.unknown_token_id", 0),
            file.Get("tokenizer.ggml.add_bos_token", true), file.Get("tokenizer.ggml.add_space_prefix", true), endOfGeneration);
    }

    public string Piece(int id) => _pieces[id];

    public bool IsControl(int id) => _types[id] == Control;

    public bool IsEndOfGeneration(int id) => _endOfGeneration.Contains(id);

    public int? Find(string piece) => _ids.TryGetValue(piece, out var id) ? id : null;

    public List<int> Encode(string text, bool addBos, bool parseSpecial)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<int>();
        if (addBos)
        {
            tokens.Add(Bos);
        }

        // As llama.cpp: the text at the start and the text after each special token get the space prefix.
        var start = 0;
        var position = 0;
        var afterSpecial = true;
        while (position < text.Length)
        {
            var special = parseSpecial ? SpecialAt(text, position) : null;
            if (special is { } match)
            {
                afterSpecial = EncodeFragment(text[start..position], afterSpecial, tokens) ? false : afterSpecial;
                tokens.Add(match.Id);
                afterSpecial = true;
                position += match.Text.Length;
                start = position;
            }
            else
            {
                position++;
            }
        }

        EncodeFragment(text[start..], afterSpecial, tokens);
        return tokens;
    }

    public void AppendBytes(int id, List<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        if (_types[id] == Control)
        {
            return;
        }

        if (_byteValues.TryGetValue(id, out var value))
        {
            bytes.Add(value);
            return;
        }

        bytes.AddRange(Encoding.UTF8.GetBytes(_pieces[id].Replace(Space, ' ')));
    }

    private (string Text, int Id)? SpecialAt(string text, int position)
    {
        foreach (var special in _specials)
        {
            if (string.CompareOrdinal(text, position, special.Text, 0, special.Text.Length) == 0)
            {
                return special;
            }
        }

        return null;
    }

    /// <summary>Encodes one stretch of plain text; false when it was empty (and so did nothing).</summary>
    private bool EncodeFragment(string fragment, bool spacePrefix, List<int> tokens)
    {
        if (fragment.Length == 0)
        {
            return false;
        }

        var normalized = ((spacePrefix && AddSpacePrefix ? " " : "") + fragment).Replace(' ', Space);
        var symbols = new List<string>();
        for (var i = 0; i < normalized.Length;)
        {
            var length = char.IsSurrogatePair(normalized, i) ? 2 : 1;
            symbols.Add(normalized.Substring(i, length));
            i += length;
        }

        var count = symbols.Count;
        var text = symbols.ToArray();
        var previous = Enumerable.Range(-1, count).ToArray();
        var next = Enumerable.Range(1, count).Select(i => i < count ? i : -1).ToArray();
        var queue = new PriorityQueue<(int Left, int Right, int Length), (float Score, int Left)>(Comparer<(float Score, int Left)>.Create((a, b) => a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Left.CompareTo(b.Left)));
        void Consider(int left, int right)
        {
            if (left < 0 || right < 0)
            {
                return;
            }

            if (_ids.TryGetValue(text[left] + text[right], out var id))
            {
                queue.Enqueue((left, right, text[left].Length + text[right].Length), (_scores[id], left));
            }
        }

        for (var i = 0; i + 1 < count; i++)
        {
            Consider(i, i + 1);
        }

        while (queue.TryDequeue(out var bigram, out _))
        {
            // Stale entries (a side already merged into something else) are skipped.
            if (text[bigram.Left].Length == 0 || text[bigram.Right].Length == 0 || next[bigram.Left] != bigram.Right
                || text[bigram.Left].Length + text[bigram.Right].Length != bigram.Length)
            {
                continue;
            }

            text[bigram.Left] += text[bigram.Right];
            text[bigram.Right] = "";
            next[bigram.Left] = next[bigram.Right];
            if (next[bigram.Right] >= 0)
            {
                previous[next[bigram.Right]] = bigram.Left;
            }

            Consider(previous[bigram.Left], bigram.Left);
            Consider(bigram.Left, next[bigram.Left]);
        }

        for (var i = 0; i >= 0 && i < count; i = next[i])
        {
            if (_ids.TryGetValue(text[i], out var id))
            {
                tokens.Add(id);
                continue;
            }

            foreach (var b in Encoding.UTF8.GetBytes(text[i]))
            {
                tokens.Add(_byteIds[b] >= 0 ? _byteIds[b] : Unknown);
            }
        }

        return true;
    }
}

/// <summary>Turns generated tokens into text as it becomes whole UTF-8, for streaming.</summary>
public sealed class TokenTextDecoder(ITokenizer tokenizer)
{
    private readonly List<byte> _pending = [];

    /// <summary>The text completed by <paramref name="token"/> (empty while a multi-byte character is unfinished).</summary>
    public string Add(int token)
    {
        tokenizer.AppendBytes(token, _pending);
        var complete = CompleteLength(_pending);
        if (complete == 0)
        {
            return "";
        }

        var text = Encoding.UTF8.GetString(_pending.GetRange(0, complete).ToArray());
        _pending.RemoveRange(0, complete);
        return text;
    }

    /// <summary>What is left at the end (an unfinished character becomes U+FFFD).</summary>
    public string Flush()
    {
        var text = Encoding.UTF8.GetString(_pending.ToArray());
        _pending.Clear();
        return text;
    }

    private static int CompleteLength(List<byte> bytes)
    {
        // Walk back over a trailing, unfinished multi-byte sequence.
        for (var back = 1; back <= Math.Min(4, bytes.Count); back++)
        {
            var b = bytes[^back];
            if ((b & 0xC0) == 0x80)
            {
                continue;
            }

            var needed = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
            return needed > back ? bytes.Count - back : bytes.Count;
        }

        return bytes.Count;
    }
}
