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

    /// <summary>MLflow's MAX_RUNS_GET_METRIC_HISTORY_BULK: runs one get-history-bulk-interval call may name.</summary>
    public const int BulkIntervalMaxRuns = 100;

    /// <summary>MLflow's MAX_RESULTS_PER_RUN: the most (and default) steps get-history-bulk-interval samples.</summary>
    public const int BulkIntervalMaxResults = 2500;

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
        var order = OrderBy(orderBy, ExperimentTarget, "e.creation_time DESC, e.experiment_id ASC");
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
        CheckBatch(metrics, parameters, tags);
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

        await WriteBatchAsync(connection, transaction, runId, metrics, parameters, tags, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>
    /// A finished run with its metrics, params and tags, in the experiment named <paramref name="experimentName"/>
    /// (made when missing), written inside the caller's transaction: a registration that fails later takes the run
    /// and a newly made experiment with it.
    /// </summary>
    /// <returns>The new run's id.</returns>
    internal async Task<string> RecordFinishedRunAsync(
        NpgsqlConnection connection,
        NpgsqlTransaction transaction,
        string experimentName,
        string userId,
        string runName,
        IReadOnlyList<Metric> metrics,
        IReadOnlyList<KeyValue> parameters,
        IReadOnlyList<KeyValue> tags,
        CancellationToken cancellationToken)
    {
        CheckBatch(metrics, parameters, tags);
        var now = Now;
        var experiment = await FindExperimentAsync(connection, transaction, experimentName, cancellationToken);
        if (experiment is null)
        {
            // Two registrations racing to make the experiment: the second waits on the name's unique index, then
            // does nothing and reads the row the first made.
            var id = (await connection.QueryAsync("SELECT nextval('experiment_ids')", transaction, r => r.GetInt64(0), cancellationToken))[0];
            await connection.ExecuteAsync(
                "INSERT INTO experiments (experiment_id, name, artifact_location, creation_time, last_update_time) VALUES (@id, @name, @location, @now, @now) ON CONFLICT (name) DO NOTHING",
                transaction, cancellationToken, ("id", id), ("name", experimentName), ("location", $"mlflow-artifacts:/{Id(id)}"), ("now", now));
            experiment = await FindExperimentAsync(connection, transaction, experimentName, cancellationToken)
                ?? throw new InvalidOperationException($"Experiment '{experimentName}' was neither made nor found.");
        }

        if (experiment.Value.Stage != LifecycleStages.Active)
        {
            throw MlflowException.Invalid($"The experiment {experiment.Value.Id} must be in the 'active' state. Current state is {experiment.Value.Stage}.");
        }

        var runId = Guid.NewGuid().ToString("N");
        await connection.ExecuteAsync(
            "INSERT INTO runs (run_id, experiment_id, run_name, user_id, status, start_time, end_time, artifact_uri) VALUES (@id, @experiment, @name, @user, 'FINISHED', @now, @now, @uri)",
            transaction, cancellationToken,
            ("id", runId), ("experiment", experiment.Value.Id), ("name", runName), ("user", userId), ("now", now),
            ("uri", $"{experiment.Value.Location.TrimEnd('/')}/{runId}/artifacts"));
        await WriteBatchAsync(connection, transaction, runId, metrics.Select(m => m with { Timestamp = now }).ToList(), parameters, [.. tags.Where(t => t.Key != "mlflow.runName"), new KeyValue("mlflow.runName", runName)], cancellationToken);
        return runId;
    }

    private static async Task<(long Id, string Location, string Stage)?> FindExperimentAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string name, CancellationToken cancellationToken)
    {
        var found = await connection.QueryAsync(
            "SELECT experiment_id, artifact_location, lifecycle_stage FROM experiments WHERE name = @name",
            transaction, r => (r.GetInt64(0), r.GetString(1), r.GetString(2)), cancellationToken, ("name", name));
        return found.Count == 1 ? found[0] : null;
    }

    /// <summary>MLflow's per-request limits, and its refusal of one param key sent with two values.</summary>
    private static void CheckBatch(IReadOnlyList<Metric> metrics, IReadOnlyList<KeyValue> parameters, IReadOnlyList<KeyValue> tags)
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
    }

    /// <summary>
    /// Metrics, params and tags of one run inside the caller's transaction. A param logged again with another value is
    /// refused, as MLflow refuses it.
    /// </summary>
    private static async Task WriteBatchAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string runId, IReadOnlyList<Metric> metrics, IReadOnlyList<KeyValue> parameters, IReadOnlyList<KeyValue> tags, CancellationToken cancellationToken)
    {
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
        var order = OrderBy(orderBy, RunTarget, "r.start_time DESC, r.run_id ASC", where);
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

    /// <summary>
    /// The history of one metric across runs, thinned to about <paramref name="maxResults"/> steps as MLflow's
    /// <c>get-history-bulk-interval</c> does for its charts: the steps are drawn from the union of every run's logged
    /// steps (not all steps are logged), each run's first and last step in range are always kept, and every value
    /// logged at a kept step is returned, per run in step then timestamp order.
    /// </summary>
    public async Task<IReadOnlyList<RunMetric>> GetMetricHistoryBulkIntervalAsync(IReadOnlyList<string> runIds, string key, long? startStep, long? endStep, int maxResults, CancellationToken cancellationToken)
    {
        // Checked before anything is read, as MLflow does.
        if (startStep is { } requestedStart && endStep is { } requestedEnd)
        {
            if (requestedStart > requestedEnd)
            {
                throw MlflowException.Invalid($"end_step must be greater than start_step. Found start_step={requestedStart} and end_step={requestedEnd}.");
            }
        }
        else if (startStep is not null || endStep is not null)
        {
            throw MlflowException.Invalid("If either start step or end step are specified, both must be specified.");
        }

        var ids = runIds.Distinct(StringComparer.Ordinal).ToArray();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var bounds = await connection.QueryAsync(
            "SELECT min(step), max(step) FROM metrics WHERE run_id = ANY(@ids) AND key = @key GROUP BY run_id",
            null, r => (First: r.GetInt64(0), Last: r.GetInt64(1)), cancellationToken, ("ids", ids), ("key", key));
        var allSteps = await connection.QueryAsync(
            "SELECT DISTINCT step FROM metrics WHERE run_id = ANY(@ids) AND key = @key ORDER BY step",
            null, r => r.GetInt64(0), cancellationToken, ("ids", ids), ("key", key));

        // Without a range MLflow starts at step 0, so steps below 0 are left out.
        var start = startStep ?? 0;
        var end = endStep ?? (allSteps.Count > 0 ? allSteps[^1] : 0);
        var steps = MetricSampling.SampleSteps(start, end, maxResults, allSteps);
        steps.UnionWith(bounds.SelectMany(b => new[] { b.First, b.Last }).Where(step => step >= start && step <= end));
        if (steps.Count == 0)
        {
            return [];
        }

        var rows = await connection.QueryAsync(
            $"""
            SELECT run_id, key, value, timestamp, step FROM (
                SELECT m.*, row_number() OVER (PARTITION BY m.run_id ORDER BY m.step, m.timestamp, m.seq) AS n
                FROM metrics m WHERE m.run_id = ANY(@ids) AND m.key = @key AND m.step = ANY(@steps)
            ) m
            WHERE n <= {MetricHistoryMaxPageSize}
            ORDER BY run_id, step, timestamp, seq
            """,
            null, r => new RunMetric(r.GetString(0), new Metric(r.GetString(1), r.GetDouble(2), r.GetInt64(3), r.GetInt64(4))), cancellationToken,
            ("ids", ids), ("key", key), ("steps", steps.ToArray()));

        // Runs answer in the order asked for, as MLflow answers run by run.
        var byRun = rows.ToLookup(m => m.RunId, StringComparer.Ordinal);
        return runIds.SelectMany(id => byRun[id]).ToList();
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
    /// <c>order_by</c> entries like <c>name ASC</c>, <c>attributes.start_time DESC</c>, <c>metrics.loss</c>,
    /// <c>params.lr</c>, <c>tags.`team name` DESC</c>: attribute columns from the entity's whitelist only; metric,
    /// param and tag keys travel as parameters, so only searches that pass <paramref name="parameters"/> (runs) can
    /// order by them. As in MLflow, a run lacking the value sorts last in either direction.
    /// </summary>
    internal static string OrderBy(IReadOnlyList<string> orderBy, FilterTarget target, string fallback, SqlFilter? parameters = null)
    {
        if (orderBy.Count == 0)
        {
            return fallback;
        }

        var parts = new List<string>();
        foreach (var entry in orderBy)
        {
            var clause = SearchOrder.Parse(entry);
            var direction = clause.Ascending ? "ASC" : "DESC";
            switch (clause.Entity)
            {
                case FilterEntity.Attribute:
                    if (!target.Attributes.TryGetValue(clause.Key.ToLowerInvariant(), out var column))
                    {
                        throw MlflowException.Invalid($"Invalid order_by key '{MlflowArgs.Shorten(clause.Key)}'.");
                    }

                    // A nullable attribute (an unfinished run's end_time) sorts its gaps last, as MLflow does.
                    parts.Add($"{column} {direction} NULLS LAST");
                    break;
                case FilterEntity.Metric when parameters is not null && target.MetricTable is not null:
                    var metric = ChildValue(target.MetricTable, target.ChildJoin!, clause.Key, parameters);
                    // MLflow's order is numbers, then NaN, then runs without the metric, in either direction;
                    // PostgreSQL alone ranks NaN above every number, so the class is sorted on first.
                    parts.Add($"CASE WHEN {metric} IS NULL THEN 2 WHEN {metric} = 'NaN'::double precision THEN 1 ELSE 0 END, {metric} {direction}");
                    break;
                case FilterEntity.Param when parameters is not null && target.ParamTable is not null:
                    parts.Add($"{ChildValue(target.ParamTable, target.ChildJoin!, clause.Key, parameters)} {TextOrder(direction)}");
                    break;
                case FilterEntity.Tag when parameters is not null && target.TagTable is not null:
                    parts.Add($"{ChildValue(target.TagTable, target.TagJoin!, clause.Key, parameters)} {TextOrder(direction)}");
                    break;
                default:
                    throw MlflowException.Invalid($"Invalid order_by entity type '{clause.Entity.ToString().ToLowerInvariant()}'");
            }
        }

        parts.Add(fallback);
        return string.Join(", ", parts);
    }

    /// <summary>The value a row's child table holds under <paramref name="key"/>, or NULL; the key is a parameter.</summary>
    private static string ChildValue(string table, string join, string key, SqlFilter parameters) =>
        $"(SELECT c.value FROM {table} c WHERE {join} AND c.key = {parameters.Parameter(key)})";

    /// <summary>
    /// Params and tags are strings to MLflow and compare character by character ("10" before "9"); the "C" collation
    /// gives that code-point order whatever the database's locale.
    /// </summary>
    private static string TextOrder(string direction) => $"COLLATE \"C\" {direction} NULLS LAST";

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
