using System.Text;
using GoblinAspire.ModelRegistry.Mlflow;

namespace GoblinAspire.ModelRegistry.Search;

/// <summary>One <c>order_by</c> entry: <c>metrics.loss DESC</c>, <c>params.`learning rate`</c>, <c>start_time</c>.</summary>
public sealed record OrderClause(FilterEntity Entity, string Key, bool Ascending);

/// <summary>
/// Reads <c>order_by</c> entries as MLflow does: an identifier, optionally followed by <c>ASC</c> or <c>DESC</c>. As in
/// MLflow, backticks and double quotes group a key with spaces (<c>tags."my tag"</c>), and a prefix before the first
/// dot names the entity. The result is data; <see cref="Storage.TrackingStore"/> turns it into SQL with the key as a
/// parameter.
/// </summary>
public static class SearchOrder
{
    public static OrderClause Parse(string entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var tokens = Split(entry) ?? throw CouldNotParse(entry);
        if (tokens.Count is 0 or > 2)
        {
            throw CouldNotParse(entry);
        }

        var ascending = true;
        if (tokens.Count == 2)
        {
            ascending = tokens[1].ToUpperInvariant() switch
            {
                "ASC" => true,
                "DESC" => false,
                _ => throw MlflowException.Invalid($"Invalid ordering key in order_by clause '{MlflowArgs.Shorten(entry)}'."),
            };
        }

        var identifier = tokens[0];
        var dot = identifier.IndexOf('.', StringComparison.Ordinal);
        FilterEntity? entity = dot < 0 ? null : identifier[..dot].ToLowerInvariant() switch
        {
            "tags" or "tag" => FilterEntity.Tag,
            "metrics" or "metric" => FilterEntity.Metric,
            "params" or "param" or "parameter" or "parameters" => FilterEntity.Param,
            "attributes" or "attribute" or "attr" or "run" => FilterEntity.Attribute,
            _ => null,
        };

        // Without a known prefix the whole identifier is an attribute name, checked against the entity's columns.
        return entity is null
            ? new OrderClause(FilterEntity.Attribute, identifier, ascending)
            : new OrderClause(entity.Value, identifier[(dot + 1)..], ascending);
    }

    /// <summary>
    /// Splits on whitespace outside quotes, dropping the quotes, like the shell-style split MLflow applies after
    /// turning backticks into double quotes. Null when a quote is left open.
    /// </summary>
    private static List<string>? Split(string entry)
    {
        var tokens = new List<string>();
        var current = new StringBuilder();
        var inToken = false;
        char? quote = null;
        foreach (var c in entry)
        {
            if (quote is { } open)
            {
                // A backtick and a double quote are the same quote to MLflow; a single quote only closes itself.
                if (c == open || (open != '\'' && c is '"' or '`'))
                {
                    quote = null;
                }
                else
                {
                    current.Append(c);
                }
            }
            else if (c is '"' or '`' or '\'')
            {
                quote = c;
                inToken = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (inToken)
                {
                    tokens.Add(current.ToString());
                    current.Clear();
                    inToken = false;
                }
            }
            else
            {
                current.Append(c);
                inToken = true;
            }
        }

        if (quote is not null)
        {
            return null;
        }

        if (inToken)
        {
            tokens.Add(current.ToString());
        }

        return tokens;
    }

    private static MlflowException CouldNotParse(string entry) =>
        MlflowException.Invalid($"Invalid order_by clause '{MlflowArgs.Shorten(entry)}'. Could not be parsed.");
}
