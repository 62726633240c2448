using System.Text;
using System.Text.RegularExpressions;

namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>
/// A listing's <c>matchGlob</c>, with GCS's meaning: <c>*</c> any run of characters but <c>/</c>; <c>**</c> any run
/// including <c>/</c> (and <c>**/</c> zero or more whole folders); <c>?</c> one character but <c>/</c>;
/// <c>[abc]</c>, <c>[a-z]</c>, <c>[!abc]</c> one of (or none of) a set; <c>{a,b}</c> one of several alternatives;
/// <c>\</c> takes the next character literally. Translated once into a non-backtracking regular expression, so no
/// pattern can make a listing slow.
/// </summary>
public sealed class ObjectGlob
{
    public const int MaxLength = 1024;
    private const int MaxNesting = 10;

    private readonly Regex _regex;

    private ObjectGlob(string pattern, Regex regex)
    {
        Pattern = pattern;
        _regex = regex;
    }

    public string Pattern { get; }

    /// <summary>The glob, or 400 <c>invalid</c> naming what is wrong with it.</summary>
    public static ObjectGlob Parse(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (pattern.Length is 0 or > MaxLength)
        {
            throw GcsException.Invalid($"matchGlob must be 1 to {MaxLength} characters.");
        }

        var regex = new StringBuilder("^");
        var position = 0;
        Translate(pattern, ref position, regex, 0, inAlternative: false);
        regex.Append('$');
        return new ObjectGlob(pattern, new Regex(regex.ToString(), RegexOptions.CultureInvariant | RegexOptions.Singleline | RegexOptions.NonBacktracking));
    }

    public bool IsMatch(string name) => _regex.IsMatch(name);

    /// <summary>Translates up to the end, or (in an alternative) up to the <c>,</c> or <c>}</c> that ends it.</summary>
    private static void Translate(string glob, ref int i, StringBuilder regex, int depth, bool inAlternative)
    {
        while (i < glob.Length)
        {
            var c = glob[i];
            switch (c)
            {
                case ',' or '}' when inAlternative:
                    return;
                case '*' when i + 1 < glob.Length && glob[i + 1] == '*':
                    var atFolderStart = i == 0 || glob[i - 1] == '/';
                    i += 2;
                    if (atFolderStart && i < glob.Length && glob[i] == '/')
                    {
                        regex.Append("(?:.*/)?");
                        i++;
                    }
                    else
                    {
                        regex.Append(".*");
                    }

                    break;
                case '*':
                    regex.Append("[^/]*");
                    i++;
                    break;
                case '?':
                    regex.Append("[^/]");
                    i++;
                    break;
                case '[':
                    i++;
                    CharacterSet(glob, ref i, regex);
                    break;
                case '{':
                    if (depth >= MaxNesting)
                    {
                        throw Malformed(glob, $"alternatives nest deeper than {MaxNesting}");
                    }

                    i++;
                    regex.Append("(?:");
                    while (true)
                    {
                        Translate(glob, ref i, regex, depth + 1, inAlternative: true);
                        if (i >= glob.Length)
                        {
                            throw Malformed(glob, "a '{' is never closed");
                        }

                        if (glob[i++] == '}')
                        {
                            break;
                        }

                        regex.Append('|');
                    }

                    regex.Append(')');
                    break;
                case '\\':
                    if (i + 1 >= glob.Length)
                    {
                        throw Malformed(glob, "it ends with a lone '\\'");
                    }

                    regex.Append(Regex.Escape(glob[i + 1].ToString()));
                    i += 2;
                    break;
                default:
                    regex.Append(Regex.Escape(c.ToString()));
                    i++;
                    break;
            }
        }
    }

    /// <summary>A <c>[…]</c> set, <paramref name="i"/> just past its <c>[</c>; a <c>]</c> first in the set is a member.</summary>
    private static void CharacterSet(string glob, ref int i, StringBuilder regex)
    {
        var negated = i < glob.Length && glob[i] is '!' or '^';
        if (negated)
        {
            i++;
        }

        var members = new StringBuilder();
        var start = i;
        while (true)
        {
            if (i >= glob.Length)
            {
                throw Malformed(glob, "a '[' is never closed");
            }

            var c = glob[i];
            if (c == ']' && i > start)
            {
                i++;
                break;
            }

            if (c == '\\')
            {
                if (++i >= glob.Length)
                {
                    throw Malformed(glob, "it ends with a lone '\\'");
                }

                c = glob[i];
            }

            if (i + 2 < glob.Length && glob[i + 1] == '-' && glob[i + 2] != ']')
            {
                var last = glob[i + 2];
                if (last < c)
                {
                    throw Malformed(glob, $"the range '{c}-{last}' runs backwards");
                }

                members.Append(Member(c)).Append('-').Append(Member(last));
                i += 3;
                continue;
            }

            members.Append(Member(c));
            i++;
        }

        regex.Append(negated ? "[^/" : "[").Append(members).Append(']');
    }

    private static string Member(char c) => c is '\\' or ']' or '[' or '^' or '-' ? "\\" + c : c.ToString();

    private static GcsException Malformed(string glob, string why) =>
        GcsException.Invalid($"matchGlob '{(glob.Length > 100 ? glob[..100] + "…" : glob)}' is malformed: {why}.");
}
