using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Search;
using Npgsql;

namespace GoblinAspire.ModelRegistry.Storage;

/// <summary>
/// MLflow's model registry on PostgreSQL: registered models, versions (numbered without races), stages, aliases and
/// tags, with an audit row for every stage and alias change.
/// </summary>
public sealed class RegistryStore(NpgsqlDataSource dataSource, TimeProvider time)
{
    public const int ModelSearchDefaultPageSize = 100;
    public const int ModelSearchMaxPageSize = 1000;
    public const int VersionSearchDefaultPageSize = 10_000;
    public const int VersionSearchMaxPageSize = 200_000;

    // Tags and aliases come back in the same row as arrays: one round trip per read, however many versions exist.
    private const string VersionColumns = """
        v.name, v.version, v.creation_timestamp, v.last_updated_timestamp, v.description, v.user_id, v.current_stage, v.source, v.run_id, v.run_link, v.status,
        ARRAY(SELECT t.key FROM model_version_tags t WHERE t.name = v.name AND t.version = v.version ORDER BY t.key),
        ARRAY(SELECT t.value FROM model_version_tags t WHERE t.name = v.name AND t.version = v.version ORDER BY t.key),
        ARRAY(SELECT a.alias FROM registered_model_aliases a WHERE a.name = v.name AND a.version = v.version ORDER BY a.alias)
        """;

    private static readonly FilterTarget ModelTarget = new(
        "m",
        new Dictionary<string, string> { ["name"] = "m.name", ["creation_timestamp"] = "m.creation_timestamp", ["last_updated_timestamp"] = "m.last_updated_timestamp", ["timestamp"] = "m.last_updated_timestamp" },
        "registered_model_tags",
        "c.name = m.name");

    private static readonly FilterTarget VersionTarget = new(
        "v",
        new Dictionary<string, string>
        {
            ["name"] = "v.name", ["version_number"] = "v.version", ["version"] = "v.version", ["run_id"] = "v.run_id", ["source_path"] = "v.source",
            ["current_stage"] = "v.current_stage", ["creation_timestamp"] = "v.creation_timestamp", ["last_updated_timestamp"] = "v.last_updated_timestamp",
        },
        "model_version_tags",
        "c.name = v.name AND c.version = v.version");

    public const string VersionPlaceholder = "{version}";

    /// <summary>The alias that mirrors the Production stage.</summary>
    public const string ProductionAlias = "production";

    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    public async Task<RegisteredModel> CreateModelAsync(string name, string? description, IReadOnlyList<KeyValue> tags, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        try
        {
            await connection.ExecuteAsync("INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp, description) VALUES (@name, @now, @now, @description)", transaction, cancellationToken, ("name", name), ("now", Now), ("description", description));
        }
        catch (PostgresException ex) when (ex.IsUniqueViolation())
        {
            throw MlflowException.Exists($"Registered Model (name={name}) already exists.");
        }

        foreach (var tag in tags)
        {
            await connection.ExecuteAsync("INSERT INTO registered_model_tags (name, key, value) VALUES (@name, @key, @value) ON CONFLICT (name, key) DO UPDATE SET value = EXCLUDED.value", transaction, cancellationToken, ("name", name), ("key", tag.Key), ("value", tag.Value));
        }

        await transaction.CommitAsync(cancellationToken);
        return await GetModelAsync(name, cancellationToken);
    }

    public async Task<RegisteredModel> GetModelAsync(string name, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var models = await ReadModelsAsync(connection, "WHERE m.name = @p0", [new NpgsqlParameter("p0", name)], cancellationToken);
        return models.Count == 1 ? models[0] : throw ModelNotFound(name);
    }

    public async Task<RegisteredModel> RenameModelAsync(string name, string newName, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            // Versions, tags and aliases follow through ON UPDATE CASCADE, in the same statement.
            if (await connection.ExecuteAsync("UPDATE registered_models SET name = @new, last_updated_timestamp = @now WHERE name = @name", null, cancellationToken, ("name", name), ("new", newName), ("now", Now)) == 0)
            {
                throw ModelNotFound(name);
            }
        }
        catch (PostgresException ex) when (ex.IsUniqueViolation())
        {
            throw MlflowException.Exists($"Registered Model (name={newName}) already exists.");
        }

        return await GetModelAsync(newName, cancellationToken);
    }

    public async Task<RegisteredModel> UpdateModelAsync(string name, string? description, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        if (await connection.ExecuteAsync("UPDATE registered_models SET description = @description, last_updated_timestamp = @now WHERE name = @name", null, cancellationToken, ("name", name), ("description", description), ("now", Now)) == 0)
        {
            throw ModelNotFound(name);
        }

        return await GetModelAsync(name, cancellationToken);
    }

    public async Task DeleteModelAsync(string name, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        if (await connection.ExecuteAsync("DELETE FROM registered_models WHERE name = @name", null, cancellationToken, ("name", name)) == 0)
        {
            throw ModelNotFound(name);
        }
    }

    public async Task<Page<RegisteredModel>> SearchModelsAsync(string? filter, int pageSize, IReadOnlyList<string> orderBy, string? pageToken, CancellationToken cancellationToken)
    {
        var offset = PageToken.Offset(pageToken);
        var where = new SqlFilter();
        where.AddClauses(SearchFilter.Parse(filter), ModelTarget);
        var order = TrackingStore.OrderBy(orderBy, ModelTarget, "m.name ASC");
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var models = await ReadModelsAsync(connection, $"WHERE {where.Where} ORDER BY {order} LIMIT {pageSize + 1} OFFSET {offset}", where.Parameters, cancellationToken);
        return Page.Of(models, offset, pageSize);
    }

    public async Task<IReadOnlyList<ModelVersion>> GetLatestVersionsAsync(string name, IReadOnlyList<string> stages, CancellationToken cancellationToken)
    {
        var wanted = stages.Select(ModelStages.Canonical).Distinct().ToArray();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var versions = await LatestVersionsAsync(connection, [name], wanted.Length == 0 ? null : wanted, cancellationToken);
        if (versions.Count == 0)
        {
            await RequireModelAsync(connection, null, name, cancellationToken);
        }

        return [.. versions.OrderBy(v => v.Version)];
    }

    public async Task SetModelTagAsync(string name, KeyValue tag, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await RequireModelAsync(connection, null, name, cancellationToken);
        await connection.ExecuteAsync("INSERT INTO registered_model_tags (name, key, value) VALUES (@name, @key, @value) ON CONFLICT (name, key) DO UPDATE SET value = EXCLUDED.value", null, cancellationToken, ("name", name), ("key", tag.Key), ("value", tag.Value));
    }

    public async Task DeleteModelTagAsync(string name, string key, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await RequireModelAsync(connection, null, name, cancellationToken);
        if (await connection.ExecuteAsync("DELETE FROM registered_model_tags WHERE name = @name AND key = @key", null, cancellationToken, ("name", name), ("key", key)) == 0)
        {
            throw MlflowException.NotFound($"Registered model tag with name={name}, key={key} not found");
        }
    }

    /// <summary>Version numbers come from the model row under its lock: concurrent creates get consecutive numbers.</summary>
    public Task<ModelVersion> CreateVersionAsync(string name, string source, string? runId, string? runLink, string? description, string? userId, IReadOnlyList<KeyValue> tags, CancellationToken cancellationToken) =>
        CreateVersionAsync(name, source, sourceIsTemplate: false, runId, runLink, description, userId, tags, cancellationToken);

    /// <param name="sourceIsTemplate">
    /// True when <paramref name="source"/> holds <see cref="VersionPlaceholder"/>, replaced by the allocated number
    /// (artifacts laid out by version).
    /// </param>
    public async Task<ModelVersion> CreateVersionAsync(string name, string source, bool sourceIsTemplate, string? runId, string? runLink, string? description, string? userId, IReadOnlyList<KeyValue> tags, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var version = await CreateVersionAsync(connection, transaction, name, source, sourceIsTemplate, runId, runLink, description, userId, tags, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return version;
    }

    /// <summary>Inside the caller's transaction; the model row stays locked until that transaction ends.</summary>
    internal async Task<ModelVersion> CreateVersionAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string name, string source, bool sourceIsTemplate, string? runId, string? runLink, string? description, string? userId, IReadOnlyList<KeyValue> tags, CancellationToken cancellationToken)
    {
        var now = Now;
        // One statement takes the next number under the model row's lock and inserts the version.
        var numbers = await connection.QueryAsync(
            """
            WITH next AS (
                UPDATE registered_models SET last_version = last_version + 1, last_updated_timestamp = @now WHERE name = @name RETURNING name, last_version
            )
            INSERT INTO model_versions (name, version, creation_timestamp, last_updated_timestamp, description, user_id, source, run_id, run_link)
            SELECT next.name, next.last_version, @now, @now, @description, @user,
                   CASE WHEN @templated THEN replace(@source, @placeholder, next.last_version::text) ELSE @source END, @run, @link
            FROM next
            RETURNING version, source
            """,
            transaction, r => (Version: r.GetInt32(0), Source: r.GetString(1)), cancellationToken,
            ("name", name), ("now", now), ("description", description), ("user", userId), ("source", source), ("templated", sourceIsTemplate), ("placeholder", VersionPlaceholder), ("run", runId), ("link", runLink));
        if (numbers.Count == 0)
        {
            throw ModelNotFound(name);
        }

        var version = numbers[0].Version;
        foreach (var tag in tags)
        {
            await UpsertVersionTagAsync(connection, transaction, name, version, tag, cancellationToken);
        }

        return new ModelVersion(name, version, now, now, description, userId, ModelStages.None, numbers[0].Source, runId, runLink, "READY", [.. tags.GroupBy(t => t.Key).Select(g => g.Last()).OrderBy(t => t.Key, StringComparer.Ordinal)], []);
    }

    /// <summary>
    /// Makes the model when it does not exist yet, inside the caller's transaction, so that a registration that
    /// fails leaves no empty model behind. Concurrent callers: the second waits on the name, then finds the model.
    /// </summary>
    internal async Task EnsureModelAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string name, CancellationToken cancellationToken) =>
        await connection.ExecuteAsync(
            "INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp) VALUES (@name, @now, @now) ON CONFLICT (name) DO NOTHING",
            transaction, cancellationToken, ("name", name), ("now", Now));

    internal static Task UpsertVersionTagAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name, int version, KeyValue tag, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(
            "INSERT INTO model_version_tags (name, version, key, value) VALUES (@name, @version, @key, @value) ON CONFLICT (name, version, key) DO UPDATE SET value = EXCLUDED.value",
            transaction, cancellationToken, ("name", name), ("version", version), ("key", tag.Key), ("value", tag.Value));

    /// <summary>Whether the version exists: after a commit whose outcome is unknown, it says which way it went.</summary>
    internal async Task<bool> VersionExistsAsync(string name, int version, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return (await connection.QueryAsync("SELECT 1 FROM model_versions WHERE name = @name AND version = @version", null, r => r.GetInt32(0), cancellationToken, ("name", name), ("version", version))).Count == 1;
    }

    public async Task<ModelVersion> GetVersionAsync(string name, int version, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var versions = await ReadVersionsAsync(connection, null, $"SELECT {VersionColumns} FROM model_versions v WHERE v.name = @p0 AND v.version = @p1", [new NpgsqlParameter("p0", name), new NpgsqlParameter("p1", version)], cancellationToken);
        return versions.Count == 1 ? versions[0] : throw VersionNotFound(name, version);
    }

    public async Task<ModelVersion> UpdateVersionAsync(string name, int version, string? description, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        if (await connection.ExecuteAsync("UPDATE model_versions SET description = @description, last_updated_timestamp = @now WHERE name = @name AND version = @version", null, cancellationToken, ("name", name), ("version", version), ("description", description), ("now", Now)) == 0)
        {
            throw VersionNotFound(name, version);
        }

        return await GetVersionAsync(name, version, cancellationToken);
    }

    public async Task DeleteVersionAsync(string name, int version, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        if (await connection.ExecuteAsync("DELETE FROM model_versions WHERE name = @name AND version = @version", null, cancellationToken, ("name", name), ("version", version)) == 0)
        {
            throw VersionNotFound(name, version);
        }
    }

    public async Task<Page<ModelVersion>> SearchVersionsAsync(string? filter, int pageSize, IReadOnlyList<string> orderBy, string? pageToken, CancellationToken cancellationToken)
    {
        var offset = PageToken.Offset(pageToken);
        var where = new SqlFilter();
        where.AddClauses(SearchFilter.Parse(filter), VersionTarget);
        var order = TrackingStore.OrderBy(orderBy, VersionTarget, "v.name ASC, v.version DESC");
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var versions = await ReadVersionsAsync(connection, null, $"SELECT {VersionColumns} FROM model_versions v WHERE {where.Where} ORDER BY {order} LIMIT {pageSize + 1} OFFSET {offset}", where.Parameters, cancellationToken);
        return Page.Of(versions, offset, pageSize);
    }

    /// <summary>
    /// Moves a version to a stage; with <paramref name="archiveExisting"/> the versions already in that stage move to
    /// Archived in the same transaction, so no reader ever sees two Production versions or none in between.
    /// </summary>
    public async Task<ModelVersion> TransitionStageAsync(string name, int version, string stage, bool archiveExisting, string actor, CancellationToken cancellationToken)
    {
        var target = ModelStages.Canonical(stage);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await TransitionAsync(connection, transaction, name, version, target, archiveExisting, actor, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return await GetVersionAsync(name, version, cancellationToken);
    }

    internal async Task TransitionAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string name, int version, string target, bool archiveExisting, string actor, CancellationToken cancellationToken)
    {
        // Lock the model row: concurrent transitions of one model run one after the other.
        await RequireModelAsync(connection, transaction, name, cancellationToken, forUpdate: true);
        var current = await connection.QueryAsync("SELECT current_stage FROM model_versions WHERE name = @name AND version = @version", transaction, r => r.GetString(0), cancellationToken, ("name", name), ("version", version));
        if (current.Count == 0)
        {
            throw VersionNotFound(name, version);
        }

        var now = Now;
        if (archiveExisting && target is ModelStages.Staging or ModelStages.Production)
        {
            var others = await connection.QueryAsync(
                "UPDATE model_versions SET current_stage = 'Archived', last_updated_timestamp = @now WHERE name = @name AND version <> @version AND current_stage = @stage RETURNING version",
                transaction, r => r.GetInt32(0), cancellationToken, ("name", name), ("version", version), ("stage", target), ("now", now));
            foreach (var other in others)
            {
                await AuditAsync(connection, transaction, name, other, "stage", "stage", target, ModelStages.Archived, actor, cancellationToken);
            }
        }

        await connection.ExecuteAsync("UPDATE model_versions SET current_stage = @stage, last_updated_timestamp = @now WHERE name = @name AND version = @version", transaction, cancellationToken, ("name", name), ("version", version), ("stage", target), ("now", now));
        await connection.ExecuteAsync("UPDATE registered_models SET last_updated_timestamp = @now WHERE name = @name", transaction, cancellationToken, ("name", name), ("now", now));
        await AuditAsync(connection, transaction, name, version, "stage", "stage", current[0], target, actor, cancellationToken);

        // "Production" is one fact kept in two forms, so MLflow 2 (stages) and MLflow 3 (aliases) clients agree:
        // the newest version moved to Production carries the alias, and the alias never names a version that left it.
        if (target == ModelStages.Production)
        {
            await SetAliasCoreAsync(connection, transaction, name, ProductionAlias, version, actor, cancellationToken);
        }
        else
        {
            var aliased = await connection.QueryAsync("SELECT a.version FROM registered_model_aliases a JOIN model_versions v ON v.name = a.name AND v.version = a.version WHERE a.name = @name AND a.alias = @alias AND v.current_stage <> 'Production'", transaction, r => r.GetInt32(0), cancellationToken, ("name", name), ("alias", ProductionAlias));
            if (aliased.Count == 1)
            {
                await connection.ExecuteAsync("DELETE FROM registered_model_aliases WHERE name = @name AND alias = @alias", transaction, cancellationToken, ("name", name), ("alias", ProductionAlias));
                await AuditAsync(connection, transaction, name, aliased[0], "alias_deleted", ProductionAlias, Storage.Versions.Format(aliased[0]), null, actor, cancellationToken);
            }
        }
    }

    public async Task SetVersionTagAsync(string name, int version, KeyValue tag, CancellationToken cancellationToken)
    {
        await GetVersionAsync(name, version, cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await connection.ExecuteAsync("INSERT INTO model_version_tags (name, version, key, value) VALUES (@name, @version, @key, @value) ON CONFLICT (name, version, key) DO UPDATE SET value = EXCLUDED.value", null, cancellationToken, ("name", name), ("version", version), ("key", tag.Key), ("value", tag.Value));
    }

    public async Task DeleteVersionTagAsync(string name, int version, string key, CancellationToken cancellationToken)
    {
        await GetVersionAsync(name, version, cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        if (await connection.ExecuteAsync("DELETE FROM model_version_tags WHERE name = @name AND version = @version AND key = @key", null, cancellationToken, ("name", name), ("version", version), ("key", key)) == 0)
        {
            throw MlflowException.NotFound($"Model version tag with name={name}, version={version}, key={key} not found");
        }
    }

    /// <summary>Points an alias at a version; an alias names one version of a model at a time.</summary>
    public async Task SetAliasAsync(string name, string alias, int version, string actor, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await SetAliasAsync(connection, transaction, name, alias, version, actor, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    internal async Task SetAliasAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string name, string alias, int version, string actor, CancellationToken cancellationToken)
    {
        if (alias == ProductionAlias)
        {
            // Setting the alias promotes: the stage follows, and the previous production version is archived.
            await TransitionAsync(connection, transaction, name, version, ModelStages.Production, archiveExisting: true, actor, cancellationToken);
            return;
        }

        await SetAliasCoreAsync(connection, transaction, name, alias, version, actor, cancellationToken);
    }

    private async Task SetAliasCoreAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string name, string alias, int version, string actor, CancellationToken cancellationToken)
    {
        await RequireModelAsync(connection, transaction, name, cancellationToken, forUpdate: true);
        if ((await connection.QueryAsync("SELECT 1 FROM model_versions WHERE name = @name AND version = @version", transaction, r => r.GetInt32(0), cancellationToken, ("name", name), ("version", version))).Count == 0)
        {
            throw VersionNotFound(name, version);
        }

        var previous = await connection.QueryAsync("SELECT version FROM registered_model_aliases WHERE name = @name AND alias = @alias", transaction, r => r.GetInt32(0), cancellationToken, ("name", name), ("alias", alias));
        await connection.ExecuteAsync(
            "INSERT INTO registered_model_aliases (name, alias, version) VALUES (@name, @alias, @version) ON CONFLICT (name, alias) DO UPDATE SET version = EXCLUDED.version",
            transaction, cancellationToken, ("name", name), ("alias", alias), ("version", version));
        await AuditAsync(connection, transaction, name, version, "alias_set", alias, previous.Count == 1 ? Storage.Versions.Format(previous[0]) : null, Storage.Versions.Format(version), actor, cancellationToken);
    }

    public async Task DeleteAliasAsync(string name, string alias, string actor, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await RequireModelAsync(connection, transaction, name, cancellationToken, forUpdate: true);
        var removed = await connection.QueryAsync("DELETE FROM registered_model_aliases WHERE name = @name AND alias = @alias RETURNING version", transaction, r => r.GetInt32(0), cancellationToken, ("name", name), ("alias", alias));
        if (removed.Count == 0)
        {
            throw MlflowException.NotFound($"Registered model alias {alias} not found.");
        }

        await AuditAsync(connection, transaction, name, removed[0], "alias_deleted", alias, Storage.Versions.Format(removed[0]), null, actor, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<ModelVersion> GetVersionByAliasAsync(string name, string alias, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await RequireModelAsync(connection, null, name, cancellationToken);
        var versions = await connection.QueryAsync("SELECT version FROM registered_model_aliases WHERE name = @name AND alias = @alias", null, r => r.GetInt32(0), cancellationToken, ("name", name), ("alias", alias));
        return versions.Count == 1 ? await GetVersionAsync(name, versions[0], cancellationToken) : throw MlflowException.NotFound($"Registered model alias {alias} not found.");
    }

    public async Task<IReadOnlyList<AuditEntry>> AuditAsync(string name, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await connection.QueryAsync(
            "SELECT name, version, change, subject, from_value, to_value, actor, at FROM registry_audit WHERE name = @name ORDER BY id",
            null, r => new AuditEntry(r.GetString(0), r.IsDBNull(1) ? null : r.GetInt32(1), r.GetString(2), r.GetString(3), r.NullableString(4), r.NullableString(5), r.GetString(6), r.GetInt64(7)), cancellationToken, ("name", name));
    }

    internal static MlflowException ModelNotFound(string name) => MlflowException.NotFound($"Registered Model with name={name} not found");

    internal static MlflowException VersionNotFound(string name, int version) => MlflowException.NotFound($"Model Version (name={name}, version={version}) not found");

    private static async Task RequireModelAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name, CancellationToken cancellationToken, bool forUpdate = false)
    {
        var found = await connection.QueryAsync($"SELECT 1 FROM registered_models WHERE name = @name{(forUpdate ? " FOR UPDATE" : "")}", transaction, r => r.GetInt32(0), cancellationToken, ("name", name));
        if (found.Count == 0)
        {
            throw ModelNotFound(name);
        }
    }

    private Task AuditAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string name, int? version, string change, string subject, string? from, string? to, string actor, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(
            "INSERT INTO registry_audit (name, version, change, subject, from_value, to_value, actor, at) VALUES (@name, @version, @change, @subject, @from, @to, @actor, @at)",
            transaction, cancellationToken, ("name", name), ("version", version), ("change", change), ("subject", subject), ("from", from), ("to", to), ("actor", actor), ("at", Now));

    private static Task<List<ModelVersion>> ReadVersionsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, IEnumerable<NpgsqlParameter> parameters, CancellationToken cancellationToken) =>
        connection.QueryAsync(sql, transaction, r =>
        {
            var keys = r.GetFieldValue<string[]>(11);
            var values = r.GetFieldValue<string[]>(12);
            return new ModelVersion(
                r.GetString(0), r.GetInt32(1), r.GetInt64(2), r.GetInt64(3), r.NullableString(4), r.NullableString(5), r.GetString(6), r.GetString(7), r.NullableString(8), r.NullableString(9), r.GetString(10),
                [.. keys.Zip(values, (key, value) => new KeyValue(key, value))],
                r.GetFieldValue<string[]>(13));
        }, cancellationToken, parameters);

    private const string ModelColumns = """
        m.name, m.creation_timestamp, m.last_updated_timestamp, m.description,
        ARRAY(SELECT t.key FROM registered_model_tags t WHERE t.name = m.name ORDER BY t.key),
        ARRAY(SELECT t.value FROM registered_model_tags t WHERE t.name = m.name ORDER BY t.key),
        ARRAY(SELECT a.alias FROM registered_model_aliases a WHERE a.name = m.name ORDER BY a.alias),
        ARRAY(SELECT a.version FROM registered_model_aliases a WHERE a.name = m.name ORDER BY a.alias)
        """;

    private static async Task<List<RegisteredModel>> ReadModelsAsync(NpgsqlConnection connection, string where, IEnumerable<NpgsqlParameter> parameters, CancellationToken cancellationToken)
    {
        var rows = await connection.QueryAsync($"SELECT {ModelColumns} FROM registered_models m {where}", null, r => (
            Name: r.GetString(0), Created: r.GetInt64(1), Updated: r.GetInt64(2), Description: r.NullableString(3),
            Tags: r.GetFieldValue<string[]>(4).Zip(r.GetFieldValue<string[]>(5), (k, v) => new KeyValue(k, v)).ToList(),
            Aliases: r.GetFieldValue<string[]>(6).Zip(r.GetFieldValue<int[]>(7), (a, v) => new ModelAlias(a, v)).ToList()), cancellationToken, parameters);
        if (rows.Count == 0)
        {
            return [];
        }

        var latest = (await LatestVersionsAsync(connection, rows.Select(r => r.Name).ToArray(), null, cancellationToken)).ToLookup(v => v.Name);
        return rows.Select(r => new RegisteredModel(r.Name, r.Created, r.Updated, r.Description, [.. latest[r.Name].OrderBy(v => v.Version)], r.Tags, r.Aliases)).ToList();
    }

    /// <summary>
    /// The newest version in each stage (MLflow's latest_versions), optionally only the given stages: one index probe
    /// per model and stage, so the cost does not grow with the number of versions.
    /// </summary>
    private static Task<List<ModelVersion>> LatestVersionsAsync(NpgsqlConnection connection, string[] names, string[]? stages, CancellationToken cancellationToken) =>
        ReadVersionsAsync(
            connection,
            null,
            $"""
            SELECT {VersionColumns}
            FROM unnest(@p0::text[]) AS n(name)
            CROSS JOIN unnest(@p1::text[]) AS s(stage)
            CROSS JOIN LATERAL (
                SELECT * FROM model_versions mv WHERE mv.name = n.name AND mv.current_stage = s.stage ORDER BY mv.version DESC LIMIT 1
            ) v
            """,
            [new NpgsqlParameter("p0", names), new NpgsqlParameter("p1", stages ?? [.. ModelStages.All])],
            cancellationToken);
}

public sealed record AuditEntry(string Name, int? Version, string Change, string Subject, string? From, string? To, string Actor, long At);

public static class Versions
{
    public static string Format(int version) => version.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Model version numbers travel as strings; anything but a positive integer is a bad parameter.</summary>
    public static int Parse(string? text, string parameter = "version") =>
        int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var version) && version > 0
            ? version
            : text is null ? throw MlflowException.Missing(parameter) : throw MlflowException.Invalid($"Parameter '{parameter}' must be an integer, got '{MlflowArgs.Shorten(text)}'.");
}
