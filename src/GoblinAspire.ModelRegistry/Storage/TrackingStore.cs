using System.Globalization;
using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Search;
using Npgsql;

namespace GoblinAspire.ModelRegistry.Storage;

/// <summary>MLflow tracking on PostgreSQL: experiments, runs, metrics, params and tags. Each call is one transaction.</summary>
public sealed class TrackingStore(NpgsqlDataSource dataSource, TimeProvider time)
{
    public const int SearchDefaultPageSize = 1000;
    public const int SearchMaxPageSize = 50_000;
    public const int MetricHistoryMaxPageSize = 25_000;

    private const string ExperimentColumns = "e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time";
    private const string RunColumns = "r.run_id, r.experiment_id, r.run_name, r.user_id, r.status, r.start_time, r.end_time, r.lifecycle_stage, r.artifact_uri";

    private static readonly FilterTarget ExperimentTarget = new(
        "e",
        new Dictionary<string, string> { ["name"] = "e.name", ["creation_time"] = "e.creation_time", ["last_update_time"] = "e.last_update_time", ["experiment_id"] = "e.experiment_id" },
        "experiment_tags",
        "c.experiment_id = e.experiment_id");

    private static readonly FilterTarget RunTarget = new(
        "r",
        new Dictionary<string, string>
        {
            ["run_id"] = "r.run_id", ["run_name"] = "r.run_name", ["status"] = "r.status", ["user_id"] = "r.user_id",
            ["start_time"] = "r.start_time", ["end_time"] = "r.end_time", ["artifact_uri"] = "r.artifact_uri", ["lifecycle_stage"] = "r.lifecycle_stage",
        },
        "run_tags",
        "c.run_id = r.run_id",
        MetricTable: "latest_metrics",
        ParamTable: "params",
        ChildJoin: "c.run_id = r.run_id");

    private static readonly HashSet<string> RunStatuses = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];

    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    public async Task<long> CreateExperimentAsync(string name, string? artifactLocation, IReadOnlyList<KeyValue> tags, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var id = (await connection.QueryAsync("SELECT nextval('experiment_ids')", transaction, r => r.GetInt64(0), cancellationToken))[0];
        try
        {
            await connection.ExecuteAsync(
                "INSERT INTO experiments (experiment_id, name, artifact_location, creation_time, last_update_time) VALUES (@id, @name, @location, @now, @now)",
                transaction, cancellationToken, ("id", id), ("name", name), ("location", artifactLocation ?? $"mlflow-artifacts:/{id}"), ("now", Now));
        }
        catch (PostgresException ex) when (ex.IsUniqueViolation())
        {
            throw MlflowException.Exists($"Experiment(name={name}) already exists.");
        }

        foreach (var tag in tags)
        {
            await connection.ExecuteAsync("INSERT INTO experiment_tags (experiment_id, key, value) VALUES (@id, @key, @value) ON CONFLICT (experiment_id, key) DO UPDATE SET value = EXCLUDED.value", transaction, cancellationToken, ("id", id), ("key", tag.Key), ("value", tag.Value));
        }

        await transaction.CommitAsync(cancellationToken);
        return id;
    }

    public async Task<Experiment> GetExperimentAsync(long id, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var found = await ReadExperimentsAsync(connection, null, $"SELECT {ExperimentColumns} FROM experiments e WHERE e.experiment_id = @p0", [new NpgsqlParameter("p0", id)], cancellationToken);
        return found.Count == 1 ? found[0] : throw MlflowException.NotFound($"No Experiment with id={id} exists");
    }

    public async Task<Experiment> GetExperimentByNameAsync(string name, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var found = await ReadExperimentsAsync(connection, null, $"SELECT {ExperimentColumns} FROM experiments e WHERE e.name = @p0", [new NpgsqlParameter("p0", name)], cancellationToken);
        return found.Count == 1 ? found[0] : throw MlflowException.NotFound($"Could not find experiment with name '{name}'");
    }

    public async Task<Page<Experiment>> SearchExperimentsAsync(ViewType view, string? filter, IReadOnlyList<string> orderBy, int pageSize, string? pageToken, CancellationToken cancellationToken)
    {
        var offset = PageToken.Offset(pageToken);
        var where = new SqlFilter();
        AddView(where, "e.lifecycle_stage", view);
        where.AddClauses(SearchFilter.Parse(filter), ExperimentTarget);
        var order = OrderBy(orderBy, ExperimentTarget, "e.creation_time DESC, e.experiment_id ASC", metricTable: null);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var experiments = await ReadExperimentsAsync(connection, null, $"SELECT {ExperimentColumns} FROM experiments e WHERE {where.Where} ORDER BY {order} LIMIT {pageSize + 1} OFFSET {offset}", where.Parameters, cancellationToken);
        return Page.Of(experiments, offset, pageSize);
    }

    public async Task RenameExperimentAsync(long id, string newName, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var experiment = await GetExperimentAsync(id, cancellationToken);
        RequireActive(experiment);
        try
        {
            await connection.ExecuteAsync("UPDATE experiments SET name = @name, last_update_time = @now WHERE experiment_id = @id", null, cancellationToken, ("id", id), ("name", newName), ("now", Now));
        }
        catch (PostgresException ex) when (ex.IsUniqueViolation())
        {
            throw MlflowException.Exists($"Experiment(name={newName}) already exists.");
        }
    }

    public async Task SetExperimentLifecycleAsync(long id, string stage, CancellationToken cancellationToken)
    {
        if (id == 0 && stage == LifecycleStages.Deleted)
        {
            throw MlflowException.Invalid("Cannot delete the default experiment '0'. This is an internally reserved experiment.");
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var updated = await connection.ExecuteAsync("UPDATE experiments SET lifecycle_stage = @stage, last_update_time = @now WHERE experiment_id = @id", transaction, cancellationToken, ("id", id), ("stage", stage), ("now", Now));
        if (updated == 0)
        {
            throw MlflowException.NotFound($"No Experiment with id={id} exists");
        }

        // As MLflow does, the experiment's runs follow it into and out of the deleted state.
        await connection.ExecuteAsync("UPDATE runs SET lifecycle_stage = @stage WHERE experiment_id = @id", transaction, cancellationToken, ("id", id), ("stage", stage));
        await transaction.CommitAsync(cancellationToken);
    }

    public async Task SetExperimentTagAsync(long id, KeyValue tag, CancellationToken cancellationToken)
    {
        RequireActive(await GetExperimentAsync(id, cancellationToken));
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await connection.ExecuteAsync("INSERT INTO experiment_tags (experiment_id, key, value) VALUES (@id, @key, @value) ON CONFLICT (experiment_id, key) DO UPDATE SET value = EXCLUDED.value", null, cancellationToken, ("id", id), ("key", tag.Key), ("value", tag.Value));
    }

    public async Task DeleteExperimentTagAsync(long id, string key, CancellationToken cancellationToken)
    {
        RequireActive(await GetExperimentAsync(id, cancellationToken));
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        if (await connection.ExecuteAsync("DELETE FROM experiment_tags WHERE experiment_id = @id AND key = @key", null, cancellationToken, ("id", id), ("key", key)) == 0)
        {
            throw MlflowException.NotFound($"No tag with name: {key} in experiment with id {id}");
        }
    }

    public async Task<Run> CreateRunAsync(long experimentId, string? userId, long? startTime, string? runName, IReadOnlyList<KeyValue> tags, CancellationToken cancellationToken)
    {
        var experiment = await GetExperimentAsync(experimentId, cancellationToken);
        RequireActive(experiment);
        var runId = Guid.NewGuid().ToString("N");
        var name = runName ?? tags.FirstOrDefault(t => t.Key == "mlflow.runName")?.Value ?? $"run-{runId[..8]}";
        var allTags = tags.Where(t => t.Key != "mlflow.runName").Append(new KeyValue("mlflow.runName", name)).ToList();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await connection.ExecuteAsync(
            "INSERT INTO runs (run_id, experiment_id, run_name, user_id, status, start_time, artifact_uri) VALUES (@id, @experiment, @name, @user, 'RUNNING', @start, @uri)",
            transaction, cancellationToken,
            ("id", runId), ("experiment", experimentId), ("name", name), ("user", userId ?? ""), ("start", startTime ?? Now),
            ("uri", $"{experiment.ArtifactLocation.TrimEnd('/')}/{runId}/artifacts"));
        foreach (var tag in allTags)
        {
            await UpsertRunTagAsync(connection, transaction, runId, tag, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return await GetRunAsync(runId, cancellationToken);
    }

    public async Task<Run> GetRunAsync(string runId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var runs = await ReadRunsAsync(connection, $"SELECT {RunColumns} FROM runs r WHERE r.run_id = @p0", [new NpgsqlParameter("p0", runId)], cancellationToken);
        return runs.Count == 1 ? runs[0] : throw MlflowException.NotFound($"Run with id={runId} not found");
    }

    public async Task<RunInfo> UpdateRunAsync(string runId, string? status, long? endTime, string? runName, CancellationToken cancellationToken)
    {
        if (status is not null && !RunStatuses.Contains(status))
        {
            throw MlflowException.Invalid($"Invalid run status '{MlflowArgs.Shorten(status)}'; it must be one of {string.Join(", ", RunStatuses)}.");
        }

        var run = await GetRunAsync(runId, cancellationToken);
        RequireActive(run.Info);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await connection.ExecuteAsync(
            "UPDATE runs SET status = COALESCE(@status, status), end_time = COALESCE(@end, end_time), run_name = COALESCE(@name, run_name) WHERE run_id = @id",
            transaction, cancellationToken, ("id", runId), ("status", status), ("end", endTime), ("name", runName));
        if (runName is not null)
        {
            await UpsertRunTagAsync(connection, transaction, runId, new KeyValue("mlflow.runName", runName), cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return (await GetRunAsync(runId, cancellationToken)).Info;
    }

    public async Task SetRunLifecycleAsync(string runId, string stage, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        if (await connection.ExecuteAsync("UPDATE runs SET lifecycle_stage = @stage WHERE run_id = @id", null, cancellationToken, ("id", runId), ("stage", stage)) == 0)
        {
            throw MlflowException.NotFound($"Run with id={runId} not found");
        }
    }

    /// <summary>
    /// Metrics, params and tags in one transaction: either all are stored or none. A param logged again with
    /// another value is refused, as MLflow refuses it.
    /// </summary>
    public async Task LogBatchAsync(string runId, IReadOnlyList<Metric> metrics, IReadOnlyList<KeyValue> parameters, IReadOnlyList<KeyValue> tags, CancellationToken cancellationToken)
    {
        if (metrics.Count > Validation.MaxMetricsPerBatch || parameters.Count > Validation.MaxParamsTagsPerBatch || tags.Count > Validation.MaxParamsTagsPerBatch
            || metrics.Count + parameters.Count + tags.Count > Validation.MaxEntitiesPerBatch)
        {
            throw MlflowException.Invalid(
                $"A batch logging request can contain at most {Validation.MaxMetricsPerBatch} metrics, {Validation.MaxParamsTagsPerBatch} params, {Validation.MaxParamsTagsPerBatch} tags and {Validation.MaxEntitiesPerBatch} items in total. Got {metrics.Count} metrics, {parameters.Count} params, and {tags.Count} tags.");
        }

        var duplicate = parameters.GroupBy(p => p.Key).FirstOrDefault(g => g.Select(p => p.Value).Distinct().Count() > 1);
        if (duplicate is not null)
        {
            throw MlflowException.Invalid($"Duplicate parameter keys have been submitted: {duplicate.Key}. Please ensure the request contains only one param value per param key.");
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var state = await connection.QueryAsync("SELECT lifecycle_stage FROM runs WHERE run_id = @id FOR UPDATE", transaction, r => r.GetString(0), cancellationToken, ("id", runId));
        if (state.Count == 0)
        {
            throw MlflowException.NotFound($"Run with id={runId} not found");
        }

        if (state[0] != LifecycleStages.Active)
        {
            throw MlflowException.Invalid($"The run {runId} must be in the 'active' state. Current state is {state[0]}.");
        }

        foreach (var param in parameters.DistinctBy(p => p.Key))
        {
            var existing = await connection.QueryAsync("SELECT value FROM params WHERE run_id = @id AND key = @key", transaction, r => r.GetString(0), cancellationToken, ("id", runId), ("key", param.Key));
            if (existing.Count == 1 && existing[0] != param.Value)
            {
                throw MlflowException.Invalid(
                    $"Changing param values is not allowed. Param with key='{param.Key}' was already logged with value='{MlflowArgs.Shorten(existing[0])}' for run ID='{runId}'. Attempted logging new value '{MlflowArgs.Shorten(param.Value)}'.");
            }

            if (existing.Count == 0)
            {
                await connection.ExecuteAsync("INSERT INTO params (run_id, key, value) VALUES (@id, @key, @value)", transaction, cancellationToken, ("id", runId), ("key", param.Key), ("value", param.Value));
            }
        }

        foreach (var metric in metrics)
        {
            await connection.ExecuteAsync(
                "INSERT INTO metrics (run_id, key, value, timestamp, step) VALUES (@id, @key, @value, @timestamp, @step)",
                transaction, cancellationToken, ("id", runId), ("key", metric.Key), ("value", metric.Value), ("timestamp", metric.Timestamp), ("step", metric.Step));
            // Latest = highest step, then newest timestamp: the value views and filters show.
            await connection.ExecuteAsync(
                """
                INSERT INTO latest_metrics (run_id, key, value, timestamp, step) VALUES (@id, @key, @value, @timestamp, @step)
                ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value, timestamp = EXCLUDED.timestamp, step = EXCLUDED.step
                WHERE (EXCLUDED.step, EXCLUDED.timestamp) >= (latest_metrics.step, latest_metrics.timestamp)
                """,
                transaction, cancellationToken, ("id", runId), ("key", metric.Key), ("value", metric.Value), ("timestamp", metric.Timestamp), ("step", metric.Step));
        }

        foreach (var tag in tags)
        {
            await UpsertRunTagAsync(connection, transaction, runId, tag, cancellationToken);
            if (tag.Key == "mlflow.runName")
            {
                await connection.ExecuteAsync("UPDATE runs SET run_name = @name WHERE run_id = @id", transaction, cancellationToken, ("id", runId), ("name", tag.Value));
            }
        }

        await transaction.CommitAsync(cancellationToken);
    }

    public async Task DeleteRunTagAsync(string runId, string key, CancellationToken cancellationToken)
    {
        RequireActive((await GetRunAsync(runId, cancellationToken)).Info);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        if (await connection.ExecuteAsync("DELETE FROM run_tags WHERE run_id = @id AND key = @key", null, cancellationToken, ("id", runId), ("key", key)) == 0)
        {
            throw MlflowException.NotFound($"No tag with name: {key} in run with id {runId}");
        }
    }

    public async Task<Page<Run>> SearchRunsAsync(IReadOnlyList<long> experimentIds, string? filter, ViewType view, int pageSize, IReadOnlyList<string> orderBy, string? pageToken, CancellationToken cancellationToken)
    {
        var offset = PageToken.Offset(pageToken);
        var where = new SqlFilter();
        where.Add($"r.experiment_id = ANY({where.Parameter(experimentIds.ToArray())})");
        AddView(where, "r.lifecycle_stage", view);
        where.AddClauses(SearchFilter.Parse(filter), RunTarget);
        var order = OrderBy(orderBy, RunTarget, "r.start_time DESC, r.run_id ASC", metricTable: "latest_metrics", where);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var runs = await ReadRunsAsync(connection, $"SELECT {RunColumns} FROM runs r WHERE {where.Where} ORDER BY {order} LIMIT {pageSize + 1} OFFSET {offset}", where.Parameters, cancellationToken);
        return Page.Of(runs, offset, pageSize);
    }

    public async Task<Page<Metric>> GetMetricHistoryAsync(string runId, string key, int pageSize, string? pageToken, CancellationToken cancellationToken)
    {
        await GetRunAsync(runId, cancellationToken);
        var offset = PageToken.Offset(pageToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var metrics = await connection.QueryAsync(
            $"SELECT key, value, timestamp, step FROM metrics WHERE run_id = @id AND key = @key ORDER BY step, timestamp, seq LIMIT {pageSize + 1} OFFSET {offset}",
            null, r => new Metric(r.GetString(0), r.GetDouble(1), r.GetInt64(2), r.GetInt64(3)), cancellationToken, ("id", runId), ("key", key));
        return Page.Of(metrics, offset, pageSize);
    }

    public static void RequireActive(Experiment experiment)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        if (experiment.LifecycleStage != LifecycleStages.Active)
        {
            throw MlflowException.Invalid($"The experiment {experiment.Id} must be in the 'active' state. Current state is {experiment.LifecycleStage}.");
        }
    }

    private static void RequireActive(RunInfo run)
    {
        if (run.LifecycleStage != LifecycleStages.Active)
        {
            throw MlflowException.Invalid($"The run {run.RunId} must be in the 'active' state. Current state is {run.LifecycleStage}.");
        }
    }

    private static void AddView(SqlFilter where, string column, ViewType view)
    {
        if (view != ViewType.All)
        {
            where.Add($"{column} = {where.Parameter(view == ViewType.ActiveOnly ? LifecycleStages.Active : LifecycleStages.Deleted)}");
        }
    }

    /// <summary>
    /// <c>order_by</c> entries like <c>name ASC</c>, <c>attributes.start_time DESC</c>, <c>metrics.loss</c>: columns from the
    /// entity's whitelist only; metric keys travel as parameters.
    /// </summary>
    internal static string OrderBy(IReadOnlyList<string> orderBy, FilterTarget target, string fallback, string? metricTable, SqlFilter? parameters = null)
    {
        if (orderBy.Count == 0)
        {
            return fallback;
        }

        var parts = new List<string>();
        foreach (var entry in orderBy)
        {
            var tokens = entry.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (tokens.Length is 0 or > 2 || (tokens.Length == 2 && !tokens[1].Equals("ASC", StringComparison.OrdinalIgnoreCase) && !tokens[1].Equals("DESC", StringComparison.OrdinalIgnoreCase)))
            {
                throw MlflowException.Invalid($"Invalid order_by clause '{MlflowArgs.Shorten(entry)}'. Expected '<key> [ASC|DESC]'.");
            }

            var direction = tokens.Length == 2 && tokens[1].Equals("DESC", StringComparison.OrdinalIgnoreCase) ? "DESC" : "ASC";
            var key = tokens[0];
            foreach (var prefix in new[] { "attributes.", "attribute.", "attr." })
            {
                if (key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                {
                    key = key[prefix.Length..];
                }
            }

            if (metricTable is not null && parameters is not null && (key.StartsWith("metrics.", StringComparison.OrdinalIgnoreCase) || key.StartsWith("metric.", StringComparison.OrdinalIgnoreCase)))
            {
                var metric = parameters.Parameter(key[(key.IndexOf('.', StringComparison.Ordinal) + 1)..].Trim('`', '"'));
                parts.Add($"(SELECT m.value FROM {metricTable} m WHERE m.run_id = r.run_id AND m.key = {metric}) {direction} NULLS LAST");
            }
            else if (target.Attributes.TryGetValue(key.ToLowerInvariant(), out var column))
            {
                parts.Add($"{column} {direction}");
            }
            else
            {
                throw MlflowException.Invalid($"Invalid order_by key '{MlflowArgs.Shorten(key)}'.");
            }
        }

        parts.Add(fallback);
        return string.Join(", ", parts);
    }

    private static Task UpsertRunTagAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string runId, KeyValue tag, CancellationToken cancellationToken) =>
        connection.ExecuteAsync("INSERT INTO run_tags (run_id, key, value) VALUES (@id, @key, @value) ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value", transaction, cancellationToken, ("id", runId), ("key", tag.Key), ("value", tag.Value));

    private static async Task<List<Experiment>> ReadExperimentsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, IEnumerable<NpgsqlParameter> parameters, CancellationToken cancellationToken)
    {
        var rows = await connection.QueryAsync(sql, transaction, r => (Id: r.GetInt64(0), Name: r.GetString(1), Location: r.GetString(2), Stage: r.GetString(3), Created: r.GetInt64(4), Updated: r.GetInt64(5)), cancellationToken, parameters);
        if (rows.Count == 0)
        {
            return [];
        }

        var ids = rows.Select(r => r.Id).ToArray();
        var tags = (await connection.QueryAsync("SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id = ANY(@ids) ORDER BY key", transaction, r => (Id: r.GetInt64(0), Tag: new KeyValue(r.GetString(1), r.GetString(2))), cancellationToken, ("ids", ids)))
            .ToLookup(t => t.Id, t => t.Tag);
        return rows.Select(r => new Experiment(r.Id, r.Name, r.Location, r.Stage, r.Created, r.Updated, [.. tags[r.Id]])).ToList();
    }

    private static async Task<List<Run>> ReadRunsAsync(NpgsqlConnection connection, string sql, IEnumerable<NpgsqlParameter> parameters, CancellationToken cancellationToken)
    {
        var infos = await connection.QueryAsync(sql, null, r => new RunInfo(r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetInt64(5), r.NullableLong(6), r.GetString(7), r.GetString(8)), cancellationToken, parameters);
        if (infos.Count == 0)
        {
            return [];
        }

        var ids = infos.Select(i => i.RunId).ToArray();
        var metrics = (await connection.QueryAsync("SELECT run_id, key, value, timestamp, step FROM latest_metrics WHERE run_id = ANY(@ids) ORDER BY key", null, r => (Id: r.GetString(0), Metric: new Metric(r.GetString(1), r.GetDouble(2), r.GetInt64(3), r.GetInt64(4))), cancellationToken, ("ids", ids))).ToLookup(m => m.Id, m => m.Metric);
        var parameterValues = (await connection.QueryAsync("SELECT run_id, key, value FROM params WHERE run_id = ANY(@ids) ORDER BY key", null, r => (Id: r.GetString(0), Value: new KeyValue(r.GetString(1), r.GetString(2))), cancellationToken, ("ids", ids))).ToLookup(p => p.Id, p => p.Value);
        var tags = (await connection.QueryAsync("SELECT run_id, key, value FROM run_tags WHERE run_id = ANY(@ids) ORDER BY key", null, r => (Id: r.GetString(0), Value: new KeyValue(r.GetString(1), r.GetString(2))), cancellationToken, ("ids", ids))).ToLookup(t => t.Id, t => t.Value);
        return infos.Select(i => new Run(i, [.. metrics[i.RunId]], [.. parameterValues[i.RunId]], [.. tags[i.RunId]])).ToList();
    }

    internal static string Id(long id) => id.ToString(CultureInfo.InvariantCulture);
}
