using System.Globalization;
using System.Text;
using GoblinAspire.ModelRegistry.Mlflow;

namespace GoblinAspire.ModelRegistry.Search;

public enum FilterEntity
{
    Attribute,
    Tag,
    Metric,
    Param,
}

/// <summary>One comparison of a filter: <c>metrics.loss &lt; 0.5</c>, <c>tags.team = 'a'</c>, <c>run_id IN ('x','y')</c>.</summary>
public sealed record FilterClause(FilterEntity Entity, string Key, string Operator, IReadOnlyList<object> Values);

/// <summary>
/// Parses the subset of MLflow's search syntax that users write: comparisons on attributes, <c>tags.</c>,
/// <c>metrics.</c> and <c>params.</c> (keys plain, in backticks or in double quotes) with <c>= != &lt; &lt;= &gt; &gt;=
/// LIKE ILIKE IN NOT IN</c>, joined by <c>AND</c>. The result is data, turned into SQL with parameters by
/// <see cref="SqlFilter"/>; nothing from the filter is ever concatenated into SQL.
/// Written by hand: MLflow's own parser is Python (sqlparse) and no .NET library parses this dialect.
/// </summary>
public static class SearchFilter
{
    public const int MaxLength = 8192;

    private static readonly string[] Comparators = ["<=", ">=", "!=", "<>", "=", "<", ">"];

    public static IReadOnlyList<FilterClause> Parse(string? filter)
    {
        if (string.IsNullOrWhiteSpace(filter))
        {
            return [];
        }

        if (filter.Length > MaxLength)
        {
            throw MlflowException.Invalid($"Filter string is longer than {MaxLength} characters.");
        }

        var clauses = new List<FilterClause>();
        var reader = new Reader(filter);
        while (true)
        {
            clauses.Add(ParseClause(ref reader));
            reader.SkipSpace();
            if (reader.AtEnd)
            {
                return clauses;
            }

            if (!reader.TryKeyword("AND"))
            {
                throw Invalid(filter, $"expected AND at position {reader.Position}");
            }
        }
    }

    private static FilterClause ParseClause(ref Reader reader)
    {
        reader.SkipSpace();
        var identifier = reader.Identifier() ?? throw Invalid(reader.Text, $"expected an identifier at position {reader.Position}");
        var (entity, key) = Classify(identifier, ref reader);

        reader.SkipSpace();
        string op;
        if (reader.TryKeyword("NOT"))
        {
            reader.SkipSpace();
            op = reader.TryKeyword("IN") ? "NOT IN" : reader.TryKeyword("LIKE") ? "NOT LIKE" : reader.TryKeyword("ILIKE") ? "NOT ILIKE" : throw Invalid(reader.Text, "expected IN, LIKE or ILIKE after NOT");
        }
        else if (reader.TryKeyword("LIKE"))
        {
            op = "LIKE";
        }
        else if (reader.TryKeyword("ILIKE"))
        {
            op = "ILIKE";
        }
        else if (reader.TryKeyword("IN"))
        {
            op = "IN";
        }
        else
        {
            string? comparator = null;
            foreach (var candidate in Comparators)
            {
                if (reader.TrySymbol(candidate))
                {
                    comparator = candidate;
                    break;
                }
            }

            op = comparator switch
            {
                null => throw Invalid(reader.Text, $"expected a comparator at position {reader.Position}"),
                "<>" => "!=",
                _ => comparator,
            };
        }

        reader.SkipSpace();
        var values = new List<object>();
        if (op is "IN" or "NOT IN")
        {
            if (!reader.TrySymbol("("))
            {
                throw Invalid(reader.Text, "expected ( after IN");
            }

            do
            {
                reader.SkipSpace();
                values.Add(reader.Literal() ?? throw Invalid(reader.Text, $"expected a value at position {reader.Position}"));
                reader.SkipSpace();
            }
            while (reader.TrySymbol(","));

            if (!reader.TrySymbol(")"))
            {
                throw Invalid(reader.Text, "expected ) to close the IN list");
            }
        }
        else
        {
            values.Add(reader.Literal() ?? throw Invalid(reader.Text, $"expected a value at position {reader.Position}"));
        }

        if (entity == FilterEntity.Metric)
        {
            if (values.Any(v => v is not double) || op.Contains("LIKE", StringComparison.Ordinal) || op.Contains("IN", StringComparison.Ordinal))
            {
                throw MlflowException.Invalid($"Invalid clause for metric '{key}': metrics compare with = != < <= > >= against a number.");
            }
        }
        else if (values.Any(v => v is not string) && entity != FilterEntity.Attribute)
        {
            throw MlflowException.Invalid($"Invalid clause for {entity.ToString().ToLowerInvariant()} '{key}': the value must be a quoted string.");
        }

        return new FilterClause(entity, key, op, values);
    }

    private static (FilterEntity, string) Classify(string identifier, ref Reader reader)
    {
        var dot = identifier.IndexOf('.', StringComparison.Ordinal);
        var prefix = dot < 0 ? null : identifier[..dot].ToLowerInvariant();
        var entity = prefix switch
        {
            "tags" or "tag" => FilterEntity.Tag,
            "metrics" or "metric" => FilterEntity.Metric,
            "params" or "param" or "parameter" or "parameters" => FilterEntity.Param,
            "attributes" or "attribute" or "attr" or "run" => FilterEntity.Attribute,
            _ => (FilterEntity?)null,
        };
        if (entity is null)
        {
            return (FilterEntity.Attribute, identifier);
        }

        var key = identifier[(dot + 1)..];
        if (key.Length == 0)
        {
            // tags.`quoted key` or tags."quoted key"
            key = reader.QuotedKey() ?? throw Invalid(reader.Text, $"expected a key after '{identifier}'");
        }

        return (entity.Value, key);
    }

    private static MlflowException Invalid(string filter, string why) =>
        MlflowException.Invalid($"Invalid filter '{MlflowArgs.Shorten(filter)}': {why}.");

    private ref struct Reader(string text)
    {
        public string Text { get; } = text;

        public int Position { get; private set; }

        public readonly bool AtEnd => Position >= Text.Length;

        public void SkipSpace()
        {
            while (!AtEnd && char.IsWhiteSpace(Text[Position]))
            {
                Position++;
            }
        }

        public bool TryKeyword(string keyword)
        {
            if (Position + keyword.Length > Text.Length || string.Compare(Text, Position, keyword, 0, keyword.Length, StringComparison.OrdinalIgnoreCase) != 0)
            {
                return false;
            }

            var end = Position + keyword.Length;
            if (end < Text.Length && (char.IsLetterOrDigit(Text[end]) || Text[end] == '_'))
            {
                return false;
            }

            Position = end;
            return true;
        }

        public bool TrySymbol(string symbol)
        {
            if (string.CompareOrdinal(Text, Position, symbol, 0, symbol.Length) != 0)
            {
                return false;
            }

            Position += symbol.Length;
            return true;
        }

        /// <summary>An identifier such as <c>name</c>, <c>metrics.loss</c>, <c>tags.</c> (quoted key follows), or a quoted key alone.</summary>
        public string? Identifier()
        {
            if (!AtEnd && Text[Position] is '`' or '"')
            {
                return QuotedKey();
            }

            var start = Position;
            while (!AtEnd && (char.IsLetterOrDigit(Text[Position]) || Text[Position] is '_' or '.' or '-' or '/'))
            {
                Position++;
                if (Text[Position - 1] == '.' && !AtEnd && Text[Position] is '`' or '"')
                {
                    break;
                }
            }

            return Position > start ? Text[start..Position] : null;
        }

        public string? QuotedKey()
        {
            if (AtEnd || Text[Position] is not ('`' or '"'))
            {
                return null;
            }

            var quote = Text[Position];
            var end = Text.IndexOf(quote, Position + 1);
            if (end < 0)
            {
                throw Invalid(Text, "unterminated quoted key");
            }

            var key = Text[(Position + 1)..end];
            Position = end + 1;
            return key;
        }

        /// <summary>A quoted string ('…' with '' as an escaped quote, or "…") or a number.</summary>
        public object? Literal()
        {
            if (AtEnd)
            {
                return null;
            }

            var c = Text[Position];
            if (c is '\'' or '"')
            {
                var value = new StringBuilder();
                Position++;
                while (true)
                {
                    if (AtEnd)
                    {
                        throw Invalid(Text, "unterminated string");
                    }

                    if (Text[Position] == c)
                    {
                        if (Position + 1 < Text.Length && Text[Position + 1] == c)
                        {
                            value.Append(c);
                            Position += 2;
                            continue;
                        }

                        Position++;
                        return value.ToString();
                    }

                    value.Append(Text[Position++]);
                }
            }

            var start = Position;
            while (!AtEnd && (char.IsDigit(Text[Position]) || Text[Position] is '-' or '+' or '.' or 'e' or 'E'))
            {
                Position++;
            }

            if (Position == start)
            {
                return null;
            }

            return double.TryParse(Text.AsSpan(start, Position - start), NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
                ? number
                : throw Invalid(Text, $"'{Text[start..Position]}' is not a number");
        }
    }
}
