using Npgsql;

namespace GoblinAspire.Gateway.Spend;

public sealed record SpendRow(string Group, long Requests, long InputTokens, long OutputTokens, decimal CostUsd);

/// <summary>Reads of the usage record: a key's spend in its budget period, and the admin spend report.</summary>
public sealed class SpendQueries(NpgsqlDataSource dataSource) : ISpendHistory
{
    public async Task<decimal> SpentSinceAsync(Guid keyId, DateTimeOffset from, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT COALESCE(sum(cost_usd), 0) FROM usage_records WHERE key_id = @key AND at >= @from");
        command.Parameters.AddWithValue("key", keyId);
        command.Parameters.AddWithValue("from", from);
        return (decimal)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <param name="groupBy"><c>model</c>, <c>provider</c> or <c>day</c>: a fixed choice of column, never caller text.</param>
    public async Task<IReadOnlyList<SpendRow>> ReportAsync(Guid? keyId, string? team, DateTimeOffset from, DateTimeOffset to, string groupBy, CancellationToken cancellationToken)
    {
        var group = groupBy switch
        {
            "provider" => "provider",
            "day" => "to_char(date_trunc('day', at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
            _ => "model",
        };
        await using var command = dataSource.CreateCommand(
            $"""
            SELECT {group} AS grp, count(*), COALESCE(sum(input_tokens), 0), COALESCE(sum(output_tokens), 0), COALESCE(sum(cost_usd), 0)
            FROM usage_records
            WHERE at >= @from AND at < @to AND (@key::uuid IS NULL OR key_id = @key) AND (@team::text IS NULL OR team = @team)
            GROUP BY grp ORDER BY grp
            """);
        command.Parameters.AddWithValue("from", from);
        command.Parameters.AddWithValue("to", to);
        command.Parameters.Add(new NpgsqlParameter("key", NpgsqlTypes.NpgsqlDbType.Uuid) { Value = (object?)keyId ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("team", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)team ?? DBNull.Value });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<SpendRow>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new SpendRow(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetDecimal(4)));
        }

        return rows;
    }
}
