using System.Security.Cryptography;
using System.Text;
using Npgsql;

namespace GoblinAspire.Gateway.Keys;

/// <summary>Virtual keys in PostgreSQL (<c>gatewaydb</c>). Keys are made here and shown once; only hashes are kept.</summary>
public sealed class KeyStore(NpgsqlDataSource dataSource, TimeProvider time) : IKeyDirectory
{
    public const string KeyPrefix = "sk-goblin-";

    private const string Columns = "id, key_prefix, name, owner, team, allowed_models, rpm, tpm, max_parallel, budget_usd, budget_period, expires_at, disabled, created_at, revoked_at";

    public static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    /// <summary>
    /// A key the caller chose (<see cref="KeySettings.Key"/>, as LiteLLM's <c>key</c> on key generation) must look like
    /// one this store makes, and be long enough that guessing it is no easier.
    /// </summary>
    public static bool IsAcceptableSecret(string secret) =>
        secret.StartsWith(KeyPrefix, StringComparison.Ordinal) && secret.Length is >= 32 and <= 128 && secret.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    /// <returns>
    /// The stored key and the secret, which is never available again; null when the caller's chosen secret is already
    /// a key.
    /// </returns>
    public async Task<(VirtualKey Key, string Secret)?> CreateAsync(KeySettings settings, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var secret = settings.Key ?? KeyPrefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var id = Guid.CreateVersion7(time.GetUtcNow());
        await using var command = dataSource.CreateCommand(
            $"""
            INSERT INTO virtual_keys (id, key_hash, key_prefix, name, owner, team, allowed_models, rpm, tpm, max_parallel, budget_usd, budget_period, expires_at, disabled)
            VALUES (@id, @hash, @prefix, @name, @owner, @team, @models, @rpm, @tpm, @parallel, @budget, @period, @expires, @disabled)
            RETURNING {Columns}
            """);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("hash", Hash(secret));
        command.Parameters.AddWithValue("prefix", secret[..(KeyPrefix.Length + 6)]);
        command.Parameters.AddWithValue("name", settings.Name ?? "");
        command.Parameters.AddWithValue("owner", settings.Owner ?? "");
        command.Parameters.AddWithValue("team", settings.Team ?? "");
        command.Parameters.AddWithValue("models", (settings.AllowedModels ?? []).ToArray());
        AddNullable(command, "rpm", settings.Rpm);
        AddNullable(command, "tpm", settings.Tpm);
        AddNullable(command, "parallel", settings.MaxParallel);
        AddNullable(command, "budget", settings.BudgetUsd);
        command.Parameters.AddWithValue("period", (object?)settings.BudgetPeriod ?? DBNull.Value);
        command.Parameters.AddWithValue("expires", (object?)settings.ExpiresAt ?? DBNull.Value);
        command.Parameters.AddWithValue("disabled", settings.Disabled ?? false);
        try
        {
            return ((await ReadAsync(command, cancellationToken))[0], secret);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation && settings.Key is not null)
        {
            return null;
        }
    }

    public async Task<VirtualKey?> FindBySecretAsync(string secret, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM virtual_keys WHERE key_hash = @hash");
        command.Parameters.AddWithValue("hash", Hash(secret));
        return (await ReadAsync(command, cancellationToken)).FirstOrDefault();
    }

    public async Task<VirtualKey?> GetAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM virtual_keys WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        return (await ReadAsync(command, cancellationToken)).FirstOrDefault();
    }

    public async Task<IReadOnlyList<VirtualKey>> ListAsync(string? team, CancellationToken cancellationToken)
    {
        // Typed: an untyped NULL in `@team IS NULL` leaves PostgreSQL unable to infer the parameter (42P08).
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM virtual_keys WHERE @team IS NULL OR team = @team ORDER BY created_at");
        command.Parameters.Add(new NpgsqlParameter("team", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)team ?? DBNull.Value });
        return await ReadAsync(command, cancellationToken);
    }

    public async Task<VirtualKey?> UpdateAsync(Guid id, KeySettings settings, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        await using var command = dataSource.CreateCommand(
            $"""
            UPDATE virtual_keys SET
                name = COALESCE(@name, name), owner = COALESCE(@owner, owner), team = COALESCE(@team, team),
                allowed_models = COALESCE(@models, allowed_models), rpm = COALESCE(@rpm, rpm), tpm = COALESCE(@tpm, tpm),
                max_parallel = COALESCE(@parallel, max_parallel), budget_usd = COALESCE(@budget, budget_usd),
                budget_period = COALESCE(@period, budget_period), expires_at = COALESCE(@expires, expires_at), disabled = COALESCE(@disabled, disabled)
            WHERE id = @id
            RETURNING {Columns}
            """);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("name", (object?)settings.Name ?? DBNull.Value);
        command.Parameters.AddWithValue("owner", (object?)settings.Owner ?? DBNull.Value);
        command.Parameters.AddWithValue("team", (object?)settings.Team ?? DBNull.Value);
        command.Parameters.Add(new NpgsqlParameter("models", NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)settings.AllowedModels?.ToArray() ?? DBNull.Value });
        AddNullable(command, "rpm", settings.Rpm);
        AddNullable(command, "tpm", settings.Tpm);
        AddNullable(command, "parallel", settings.MaxParallel);
        AddNullable(command, "budget", settings.BudgetUsd);
        command.Parameters.Add(new NpgsqlParameter("period", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)settings.BudgetPeriod ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("expires", NpgsqlTypes.NpgsqlDbType.TimestampTz) { Value = (object?)settings.ExpiresAt ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("disabled", NpgsqlTypes.NpgsqlDbType.Boolean) { Value = (object?)settings.Disabled ?? DBNull.Value });
        return (await ReadAsync(command, cancellationToken)).FirstOrDefault();
    }

    public async Task<VirtualKey?> RevokeAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"UPDATE virtual_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = @id RETURNING {Columns}");
        command.Parameters.AddWithValue("id", id);
        return (await ReadAsync(command, cancellationToken)).FirstOrDefault();
    }

    private static void AddNullable<T>(NpgsqlCommand command, string name, T? value)
        where T : struct =>
        command.Parameters.Add(new NpgsqlParameter(name, typeof(T) == typeof(decimal) ? NpgsqlTypes.NpgsqlDbType.Numeric : NpgsqlTypes.NpgsqlDbType.Integer) { Value = value is { } v ? v : DBNull.Value });

    private static async Task<List<VirtualKey>> ReadAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var keys = new List<VirtualKey>();
        while (await reader.ReadAsync(cancellationToken))
        {
            keys.Add(new VirtualKey(
                reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                reader.GetFieldValue<string[]>(5),
                reader.IsDBNull(6) ? null : reader.GetInt32(6),
                reader.IsDBNull(7) ? null : reader.GetInt32(7),
                reader.IsDBNull(8) ? null : reader.GetInt32(8),
                reader.IsDBNull(9) ? null : reader.GetDecimal(9),
                reader.IsDBNull(10) ? null : reader.GetString(10),
                reader.IsDBNull(11) ? null : reader.GetFieldValue<DateTimeOffset>(11),
                reader.GetBoolean(12),
                reader.GetFieldValue<DateTimeOffset>(13),
                reader.IsDBNull(14) ? null : reader.GetFieldValue<DateTimeOffset>(14)));
        }

        return keys;
    }
}
