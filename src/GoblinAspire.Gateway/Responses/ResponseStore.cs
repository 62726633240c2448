using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace GoblinAspire.Gateway.Responses;

/// <summary>A stored response and the input items it answered.</summary>
public sealed record StoredResponse(string Id, JsonObject Response, JsonArray Input);

/// <summary>
/// Stored responses in PostgreSQL (<c>gatewaydb</c>), each owned by the key that made it: every read and delete names
/// the owner, so another key's response does not exist for the caller (404), as on OpenAI.
/// </summary>
public sealed class ResponseStore(NpgsqlDataSource dataSource, IOptions<ResponsesOptions> options, TimeProvider time)
{
    public async Task SaveAsync(Guid? owner, JsonObject response, JsonArray input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(input);
        var now = time.GetUtcNow();
        await using var command = dataSource.CreateCommand(
            """
            INSERT INTO stored_responses (id, key_id, created_at, expires_at, response, input_items)
            VALUES (@id, @key, @now, @expires, @response, @input)
            ON CONFLICT (id) DO NOTHING
            """);
        command.Parameters.AddWithValue("id", (string?)response["id"] ?? "");
        command.Parameters.Add(new NpgsqlParameter("key", NpgsqlDbType.Uuid) { Value = (object?)owner ?? DBNull.Value });
        command.Parameters.AddWithValue("now", now);
        command.Parameters.AddWithValue("expires", now + options.Value.Retention);
        command.Parameters.Add(new NpgsqlParameter("response", NpgsqlDbType.Jsonb) { Value = response.ToJsonString() });
        command.Parameters.Add(new NpgsqlParameter("input", NpgsqlDbType.Jsonb) { Value = input.ToJsonString() });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <returns>The response, or null when it does not exist for <paramref name="owner"/> (absent, another key's, expired).</returns>
    public async Task<StoredResponse?> FindAsync(string id, Guid? owner, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT response::text, input_items::text FROM stored_responses WHERE id = @id AND key_id IS NOT DISTINCT FROM @key AND expires_at > @now");
        AddKey(command, id, owner);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new StoredResponse(id, (JsonObject)JsonNode.Parse(reader.GetString(0))!, (JsonArray)JsonNode.Parse(reader.GetString(1))!);
    }

    public async Task<bool> DeleteAsync(string id, Guid? owner, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "DELETE FROM stored_responses WHERE id = @id AND key_id IS NOT DISTINCT FROM @key AND expires_at > @now");
        AddKey(command, id, owner);
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <returns>How many expired responses were deleted.</returns>
    public async Task<int> DeleteExpiredAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM stored_responses WHERE expires_at <= @now");
        command.Parameters.AddWithValue("now", time.GetUtcNow());
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private void AddKey(NpgsqlCommand command, string id, Guid? owner)
    {
        command.Parameters.AddWithValue("id", id);
        // Typed: an untyped NULL in IS NOT DISTINCT FROM leaves PostgreSQL unable to infer the parameter.
        command.Parameters.Add(new NpgsqlParameter("key", NpgsqlDbType.Uuid) { Value = (object?)owner ?? DBNull.Value });
        command.Parameters.AddWithValue("now", time.GetUtcNow());
    }
}
