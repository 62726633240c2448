using System.Globalization;
using System.Text;
using GoblinAspire.ModelRegistry.Mlflow;
using Npgsql;

namespace GoblinAspire.ModelRegistry.Search;

/// <summary>How one searchable entity maps to SQL: its alias, attribute columns and child tables.</summary>
public sealed record FilterTarget(
    string Alias,
    IReadOnlyDictionary<string, string> Attributes,
    string? TagTable,
    string? TagJoin,
    string? MetricTable = null,
    string? ParamTable = null,
    string? ChildJoin = null);

/// <summary>Collects SQL conditions and their parameters; filter values only ever travel as parameters.</summary>
public sealed class SqlFilter
{
    private readonly List<string> _conditions = [];

    public List<NpgsqlParameter> Parameters { get; } = [];

    public string Where => _conditions.Count == 0 ? "TRUE" : string.Join(" AND ", _conditions);

    public void Add(string condition) => _conditions.Add(condition);

    public string Parameter(object? value)
    {
        var name = "p" + Parameters.Count.ToString(CultureInfo.InvariantCulture);
        Parameters.Add(new NpgsqlParameter(name, value ?? DBNull.Value));
        return "@" + name;
    }

    public void AddClauses(IReadOnlyList<FilterClause> clauses, FilterTarget target)
    {
        ArgumentNullException.ThrowIfNull(clauses);
        ArgumentNullException.ThrowIfNull(target);
        foreach (var clause in clauses)
        {
            switch (clause.Entity)
            {
                case FilterEntity.Attribute:
                    if (!target.Attributes.TryGetValue(clause.Key.ToLowerInvariant(), out var column))
                    {
                        throw MlflowException.Invalid($"Invalid attribute key '{MlflowArgs.Shorten(clause.Key)}' specified. Valid keys are {string.Join(", ", target.Attributes.Keys.Select(k => $"'{k}'"))}.");
                    }

                    Add(Compare(column, clause, numeric: clause.Values.All(v => v is double)));
                    break;
                case FilterEntity.Tag when target.TagTable is not null:
                    Add(Child(target.TagTable, target.TagJoin!, clause, numeric: false));
                    break;
                case FilterEntity.Metric when target.MetricTable is not null:
                    Add(Child(target.MetricTable, target.ChildJoin!, clause, numeric: true));
                    break;
                case FilterEntity.Param when target.ParamTable is not null:
                    Add(Child(target.ParamTable, target.ChildJoin!, clause, numeric: false));
                    break;
                default:
                    throw MlflowException.Invalid($"Filtering on {clause.Entity.ToString().ToLowerInvariant()}s is not supported for this search.");
            }
        }
    }

    private string Child(string table, string join, FilterClause clause, bool numeric)
    {
        var key = Parameter(clause.Key);
        return $"EXISTS (SELECT 1 FROM {table} c WHERE {join} AND c.key = {key} AND {Compare("c.value", clause, numeric)})";
    }

    private string Compare(string column, FilterClause clause, bool numeric)
    {
        var sql = new StringBuilder();
        switch (clause.Operator)
        {
            case "IN":
            case "NOT IN":
                var values = numeric ? (object)clause.Values.Select(v => Convert.ToDouble(v, CultureInfo.InvariantCulture)).ToArray() : clause.Values.Select(v => Convert.ToString(v, CultureInfo.InvariantCulture)!).ToArray();
                sql.Append(clause.Operator == "IN" ? $"{Cast(column, numeric)} = ANY({Parameter(values)})" : $"NOT ({Cast(column, numeric)} = ANY({Parameter(values)}))");
                break;
            case "LIKE":
            case "ILIKE":
            case "NOT LIKE":
            case "NOT ILIKE":
                sql.Append(CultureInfo.InvariantCulture, $"{column}::text {clause.Operator} {Parameter(Convert.ToString(clause.Values[0], CultureInfo.InvariantCulture))}");
                break;
            default:
                var value = numeric ? (object)Convert.ToDouble(clause.Values[0], CultureInfo.InvariantCulture) : Convert.ToString(clause.Values[0], CultureInfo.InvariantCulture)!;
                sql.Append(CultureInfo.InvariantCulture, $"{Cast(column, numeric)} {clause.Operator} {Parameter(value)}");
                break;
        }

        return sql.ToString();
    }

    private static string Cast(string column, bool numeric) => numeric ? $"({column})::double precision" : $"({column})::text";
}

/// <summary>MLflow's opaque page tokens: the offset into the ordered result, base64 encoded.</summary>
public static class PageToken
{
    public static int Offset(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return 0;
        }

        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(token));
            if (text.StartsWith("offset:", StringComparison.Ordinal) && int.TryParse(text.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
            {
                return offset;
            }
        }
        catch (FormatException)
        {
        }

        throw MlflowException.Invalid("Invalid page token, could not base64-decode");
    }

    public static string? Next(int offset, int pageSize, bool hasMore) =>
        hasMore ? Convert.ToBase64String(Encoding.UTF8.GetBytes($"offset:{(offset + pageSize).ToString(CultureInfo.InvariantCulture)}")) : null;

    public static int PageSize(long? requested, int defaultSize, int maximum, string parameter = "max_results")
    {
        var size = requested ?? defaultSize;
        if (size <= 0 || size > maximum)
        {
            throw MlflowException.Invalid($"Invalid value {size} for parameter '{parameter}' supplied. It must be at most {maximum} and positive.");
        }

        return (int)size;
    }
}
