using System.Data;
using System.Text.Json;
using GoblinAspire.TrainingWorker.Jobs;
using Npgsql;
using NpgsqlTypes;

namespace GoblinAspire.TrainingWorker.Queue;

/// <summary>
/// The durable queue in PostgreSQL. Claims use <c>FOR UPDATE SKIP LOCKED</c>, so workers never wait on each other's
/// rows; every write made on behalf of an attempt is fenced by (job, attempt, owner, active state), so only the
/// current holder of a live lease can change a job; lease times use the database's clock, the one clock all
/// workers share. Each state change writes its event in the same statement.
/// </summary>
public sealed class JobQueue(NpgsqlDataSource dataSource)
{
    public const string JobsChannel = "goblin_jobs";
    public const string CancelChannel = "goblin_cancel";

    private const string Columns = """
        id, name, queue, priority, executor, spec, idempotency_key, state, attempt, failures, max_attempts, run_after,
        lease_owner, lease_expires_at, cancel_requested, spend_usd, instance::text, mlflow_experiment_id, mlflow_run_id,
        model_version, checkpoint_uri, last_error, created_at, started_at, finished_at, updated_at
        """;

    private const string MonthSpend = "SELECT coalesce(sum(usd), 0) FROM spend_entries WHERE at >= @start";

    private const string Fence = "id = @id AND attempt = @attempt AND lease_owner = @owner AND state IN ('provisioning', 'running')";

    public NpgsqlDataSource DataSource => dataSource;

    /// <returns>The job, and false when the idempotency key named an earlier job (which is returned unchanged).</returns>
    public async Task<(JobRecord Job, bool Created)> SubmitAsync(JobSpec spec, string checkpointUriPrefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var id = Guid.CreateVersion7();
        await using (var command = dataSource.CreateCommand($"""
            WITH inserted AS (
                INSERT INTO jobs (id, name, queue, priority, executor, spec, idempotency_key, state, max_attempts, checkpoint_uri)
                VALUES (@id, @name, @queue, @priority, @executor, @spec, @key, 'queued', @max_attempts, @checkpoint)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING {Columns}
            ), submitted AS (
                INSERT INTO job_events (job_id, attempt, kind, message) SELECT id, 0, 'submitted', 'queued on ' || queue FROM inserted
            )
            SELECT inserted.*, pg_notify('{JobsChannel}', inserted.queue) FROM inserted
            """))
        {
            command.Parameters.AddWithValue("id", id);
            command.Parameters.AddWithValue("name", spec.Name!);
            command.Parameters.AddWithValue("queue", spec.Queue!);
            command.Parameters.AddWithValue("priority", spec.Priority);
            command.Parameters.AddWithValue("executor", spec.Executor!);
            command.Parameters.Add(new NpgsqlParameter("spec", NpgsqlDbType.Jsonb) { Value = JsonSerializer.Serialize(spec, JobSpecJson.Default.JobSpec) });
            command.Parameters.AddWithValue("key", (object?)spec.IdempotencyKey ?? DBNull.Value);
            command.Parameters.AddWithValue("max_attempts", spec.MaxAttempts ?? 3);
            command.Parameters.AddWithValue("checkpoint", $"{checkpointUriPrefix.TrimEnd('/')}/{id}/");
            if (await ReadOneAsync(command, cancellationToken) is { } created)
            {
                return (created, true);
            }
        }

        await using var existing = dataSource.CreateCommand($"SELECT {Columns} FROM jobs WHERE idempotency_key = @key");
        existing.Parameters.AddWithValue("key", spec.IdempotencyKey!);
        return (await ReadOneAsync(existing, cancellationToken) ?? throw new InvalidOperationException("The idempotency key conflicted with a job that no longer exists."), false);
    }

    public async Task<JobRecord?> GetAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM jobs WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        return await ReadOneAsync(command, cancellationToken);
    }

    /// <summary>Newest first; <paramref name="before"/> is the last id of the previous page (ids are time-ordered UUIDv7).</summary>
    public async Task<IReadOnlyList<JobRecord>> ListAsync(string? state, string? queue, int limit, Guid? before, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT {Columns} FROM jobs
            WHERE (@state::text IS NULL OR state = @state) AND (@queue::text IS NULL OR queue = @queue) AND (@before::uuid IS NULL OR id < @before)
            ORDER BY id DESC LIMIT @limit
            """);
        command.Parameters.AddWithValue("state", NpgsqlDbType.Text, (object?)state ?? DBNull.Value);
        command.Parameters.AddWithValue("queue", NpgsqlDbType.Text, (object?)queue ?? DBNull.Value);
        command.Parameters.AddWithValue("before", NpgsqlDbType.Uuid, (object?)before ?? DBNull.Value);
        command.Parameters.AddWithValue("limit", limit);
        return await ReadAllAsync(command, cancellationToken);
    }

    /// <summary>Takes up to <paramref name="count"/> runnable jobs of one queue, highest priority then oldest first.</summary>
    public async Task<IReadOnlyList<JobRecord>> ClaimAsync(string queue, int count, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            WITH next AS (
                SELECT id FROM jobs
                WHERE queue = @queue AND state IN ('queued', 'retrying', 'recovering') AND run_after <= now()
                ORDER BY priority DESC, run_after, created_at
                LIMIT @count
                FOR UPDATE SKIP LOCKED
            ), claimed AS (
                UPDATE jobs j SET state = 'provisioning', attempt = j.attempt + 1, lease_owner = @owner,
                    lease_expires_at = now() + @lease, started_at = coalesce(j.started_at, now()), updated_at = now()
                FROM next WHERE j.id = next.id
                RETURNING j.*
            ), logged AS (
                INSERT INTO job_events (job_id, attempt, kind, message) SELECT id, attempt, 'claimed', 'attempt ' || attempt || ' claimed by ' || @owner FROM claimed
            )
            SELECT {Columns} FROM claimed ORDER BY priority DESC, run_after, created_at
            """);
        command.Parameters.AddWithValue("queue", queue);
        command.Parameters.AddWithValue("count", count);
        command.Parameters.AddWithValue("owner", owner);
        command.Parameters.AddWithValue("lease", lease);
        return await ReadAllAsync(command, cancellationToken);
    }

    /// <summary>Renews many leases in one round trip.</summary>
    /// <returns>For each lease still held: whether its cancellation was requested. Missing leases were lost.</returns>
    public async Task<Dictionary<Guid, bool>> RenewAsync(IReadOnlyCollection<JobLease> leases, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        var held = new Dictionary<Guid, bool>();
        if (leases.Count == 0)
        {
            return held;
        }

        await using var command = dataSource.CreateCommand("""
            UPDATE jobs j SET lease_expires_at = now() + @lease
            FROM unnest(@ids, @attempts) AS l(id, attempt)
            WHERE j.id = l.id AND j.attempt = l.attempt AND j.lease_owner = @owner AND j.state IN ('provisioning', 'running')
            RETURNING j.id, j.cancel_requested
            """);
        command.Parameters.AddWithValue("lease", lease);
        command.Parameters.AddWithValue("ids", leases.Select(l => l.JobId).ToArray());
        command.Parameters.AddWithValue("attempts", leases.Select(l => l.Attempt).ToArray());
        command.Parameters.AddWithValue("owner", owner);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            held[reader.GetGuid(0)] = reader.GetBoolean(1);
        }

        return held;
    }

    public Task<bool> MarkRunningAsync(JobLease lease, string message, CancellationToken cancellationToken) =>
        FencedAsync(lease, "state = 'running'", "running", message, null, cancellationToken);

    public Task<bool> RecordInstanceAsync(JobLease lease, string instanceJson, string message, CancellationToken cancellationToken) =>
        FencedAsync(lease, "instance = @instance::jsonb", "provisioned", message, p => p.AddWithValue("instance", instanceJson), cancellationToken);

    public Task<bool> RecordRunAsync(JobLease lease, string experimentId, string runId, CancellationToken cancellationToken) =>
        FencedAsync(lease, "mlflow_experiment_id = @experiment, mlflow_run_id = @run", "mlflow_run", $"MLflow run {runId} in experiment {experimentId}",
            p =>
            {
                p.AddWithValue("experiment", experimentId);
                p.AddWithValue("run", runId);
            },
            cancellationToken);

    /// <summary>Ends an attempt: the job moves to its next state and the lease is released, if it is still ours.</summary>
    public async Task<bool> FinishAsync(JobLease lease, AttemptResult result, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(result);
        var failures = result.CountsAsFailure ? "failures + 1" : "failures";
        var terminal = JobStates.IsTerminal(result.State);
        return await FencedAsync(
            lease,
            $"""
            state = @state, failures = {failures}, lease_owner = NULL, lease_expires_at = NULL,
            run_after = now() + @retry_after, last_error = @error, finished_at = {(terminal ? "now()" : "NULL")},
            model_version = coalesce(@version, model_version), instance = CASE WHEN @release THEN NULL ELSE instance END
            """,
            result.EventKind,
            result.Message,
            p =>
            {
                p.AddWithValue("state", result.State);
                p.AddWithValue("retry_after", result.RetryAfter);
                p.AddWithValue("error", NpgsqlDbType.Text, result.State == JobStates.Succeeded ? DBNull.Value : result.Message);
                p.AddWithValue("version", NpgsqlDbType.Text, (object?)result.ModelVersion ?? DBNull.Value);
                p.AddWithValue("release", result.ReleasesInstance);
            },
            cancellationToken,
            notifyQueue: result.State is JobStates.Recovering or JobStates.Retrying);
    }

    /// <summary>
    /// Re-queues jobs whose lease expired (their worker died, hung or lost the database) without counting an attempt;
    /// jobs whose cancellation was pending become cancelled instead.
    /// </summary>
    /// <returns>The rescued jobs, with the machine their lost attempt may have left behind.</returns>
    public async Task<IReadOnlyList<JobRecord>> RescueExpiredAsync(int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            WITH expired AS (
                SELECT id FROM jobs WHERE state IN ('provisioning', 'running') AND lease_expires_at < now()
                ORDER BY lease_expires_at LIMIT @limit FOR UPDATE SKIP LOCKED
            ), rescued AS (
                UPDATE jobs j SET state = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'recovering' END,
                    lease_owner = NULL, lease_expires_at = NULL, run_after = now(), updated_at = now(),
                    finished_at = CASE WHEN j.cancel_requested THEN now() END
                FROM expired WHERE j.id = expired.id
                RETURNING j.*
            ), logged AS (
                INSERT INTO job_events (job_id, attempt, kind, message)
                SELECT id, attempt, 'lease_expired', CASE WHEN state = 'cancelled' THEN 'lease of attempt ' || attempt || ' expired; cancelled as requested'
                    ELSE 'lease of attempt ' || attempt || ' expired; re-queued without counting an attempt' END
                FROM rescued
            )
            SELECT {Columns}, pg_notify('{JobsChannel}', queue) FROM rescued
            """);
        command.Parameters.AddWithValue("limit", limit);
        return await ReadAllAsync(command, cancellationToken);
    }

    /// <summary>Jobs that are not running but still name a machine: it must be destroyed.</summary>
    public async Task<IReadOnlyList<(Guid Id, string Instance)>> OrphanedInstancesAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT id, instance::text FROM jobs WHERE instance IS NOT NULL AND state NOT IN ('provisioning', 'running') LIMIT 100");
        var orphans = new List<(Guid, string)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            orphans.Add((reader.GetGuid(0), reader.GetString(1)));
        }

        return orphans;
    }

    /// <summary>Forgets a machine once it is destroyed, unless a newer attempt recorded another meanwhile.</summary>
    public async Task ForgetInstanceAsync(Guid id, string instanceJson, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("UPDATE jobs SET instance = NULL WHERE id = @id AND instance = @instance::jsonb");
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("instance", instanceJson);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// A waiting job is cancelled at once; a running one is flagged and its worker told (NOTIFY), and the worker ends
    /// it. A finished job is left as it is.
    /// </summary>
    public async Task<JobRecord?> CancelAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            WITH cancelled AS (
                UPDATE jobs SET cancel_requested = true, updated_at = now(),
                    state = CASE WHEN state IN ('queued', 'retrying', 'recovering') THEN 'cancelled' ELSE state END,
                    finished_at = CASE WHEN state IN ('queued', 'retrying', 'recovering') THEN now() ELSE finished_at END,
                    lease_owner = CASE WHEN state IN ('queued', 'retrying', 'recovering') THEN NULL ELSE lease_owner END
                WHERE id = @id AND state NOT IN ('succeeded', 'failed', 'cancelled', 'dead')
                RETURNING *
            ), logged AS (
                INSERT INTO job_events (job_id, attempt, kind, message)
                SELECT id, attempt, 'cancel_requested', CASE WHEN state = 'cancelled' THEN 'cancelled before it ran' ELSE 'cancellation sent to the running attempt' END
                FROM cancelled
            )
            SELECT id, pg_notify('{CancelChannel}', id::text) FROM cancelled
            """);
        command.Parameters.AddWithValue("id", id);
        await command.ExecuteScalarAsync(cancellationToken);
        return await GetAsync(id, cancellationToken);
    }

    /// <summary>
    /// Charges one interval of a rented machine ahead of use. Serialised by one advisory lock so that two workers
    /// cannot both take the month's last dollar.
    /// </summary>
    public async Task<ChargeResult> ChargeAsync(JobLease lease, decimal usd, decimal monthlyBudget, DateTimeOffset monthStart, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken);
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(@key)", connection, transaction))
        {
            lockCommand.Parameters.AddWithValue("key", 0x4275646765744C); // "BudgetL"
            await lockCommand.ExecuteNonQueryAsync(cancellationToken);
        }

        decimal jobSpend;
        decimal? jobLimit;
        await using (var job = new NpgsqlCommand($"SELECT spend_usd, (spec->>'max_total_usd')::numeric FROM jobs WHERE {Fence} FOR UPDATE", connection, transaction))
        {
            AddFence(job.Parameters, lease);
            await using var reader = await job.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return ChargeResult.LeaseLost;
            }

            jobSpend = reader.GetDecimal(0);
            jobLimit = reader.IsDBNull(1) ? null : reader.GetDecimal(1);
        }

        if (jobLimit is { } limit && jobSpend + usd > limit)
        {
            return ChargeResult.JobBudgetExhausted;
        }

        await using (var month = new NpgsqlCommand(MonthSpend, connection, transaction))
        {
            month.Parameters.AddWithValue("start", monthStart);
            if ((decimal)(await month.ExecuteScalarAsync(cancellationToken))! + usd > monthlyBudget)
            {
                return ChargeResult.MonthlyBudgetExhausted;
            }
        }

        await using (var charge = new NpgsqlCommand("""
            INSERT INTO spend_entries (job_id, attempt, usd) VALUES (@id, @attempt, @usd);
            UPDATE jobs SET spend_usd = spend_usd + @usd WHERE id = @id;
            """, connection, transaction))
        {
            charge.Parameters.AddWithValue("id", lease.JobId);
            charge.Parameters.AddWithValue("attempt", lease.Attempt);
            charge.Parameters.AddWithValue("usd", usd);
            await charge.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return ChargeResult.Charged;
    }

    /// <summary>Budgets run by calendar month, in UTC.</summary>
    public static DateTimeOffset MonthStart(DateTimeOffset now) => new(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);

    public async Task<decimal> MonthSpendAsync(DateTimeOffset monthStart, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(MonthSpend);
        command.Parameters.AddWithValue("start", monthStart);
        return (decimal)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public async Task<IReadOnlyList<JobEvent>> EventsAsync(Guid id, long after, int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT id, at, attempt, kind, message FROM job_events WHERE job_id = @id AND id > @after ORDER BY id LIMIT @limit");
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("after", after);
        command.Parameters.AddWithValue("limit", limit);
        var events = new List<JobEvent>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            events.Add(new JobEvent(reader.GetInt64(0), reader.GetFieldValue<DateTimeOffset>(1), reader.GetInt32(2), reader.GetString(3), reader.GetString(4)));
        }

        return events;
    }

    public async Task AppendLogsAsync(JobLease lease, IReadOnlyList<(string Stream, string Line)> lines, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ArgumentNullException.ThrowIfNull(lines);
        if (lines.Count == 0)
        {
            return;
        }

        await using var command = dataSource.CreateCommand(
            "INSERT INTO job_logs (job_id, attempt, stream, line) SELECT @id, @attempt, s, l FROM unnest(@streams, @lines) WITH ORDINALITY AS t(s, l, n) ORDER BY n");
        command.Parameters.AddWithValue("id", lease.JobId);
        command.Parameters.AddWithValue("attempt", lease.Attempt);
        command.Parameters.AddWithValue("streams", lines.Select(l => l.Stream).ToArray());
        command.Parameters.AddWithValue("lines", lines.Select(l => l.Line).ToArray());
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<JobLogLine>> LogsAsync(Guid id, int? attempt, long after, int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT seq, attempt, stream, line FROM job_logs WHERE job_id = @id AND seq > @after AND (@attempt::int IS NULL OR attempt = @attempt) ORDER BY seq LIMIT @limit");
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("after", after);
        command.Parameters.AddWithValue("attempt", NpgsqlDbType.Integer, (object?)attempt ?? DBNull.Value);
        command.Parameters.AddWithValue("limit", limit);
        var lines = new List<JobLogLine>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            lines.Add(new JobLogLine(reader.GetInt64(0), reader.GetInt32(1), reader.GetString(2), reader.GetString(3)));
        }

        return lines;
    }

    private async Task<bool> FencedAsync(JobLease lease, string set, string eventKind, string message, Action<NpgsqlParameterCollection>? parameters, CancellationToken cancellationToken, bool notifyQueue = false)
    {
        await using var command = dataSource.CreateCommand($"""
            WITH changed AS (
                UPDATE jobs SET {set}, updated_at = now() WHERE {Fence} RETURNING id, attempt, queue
            ), logged AS (
                INSERT INTO job_events (job_id, attempt, kind, message) SELECT id, attempt, @kind, @message FROM changed
            )
            SELECT {(notifyQueue ? $"pg_notify('{JobsChannel}', queue)::text" : "queue")} FROM changed
            """);
        AddFence(command.Parameters, lease);
        command.Parameters.AddWithValue("kind", eventKind);
        command.Parameters.AddWithValue("message", message);
        parameters?.Invoke(command.Parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken);
    }

    private static void AddFence(NpgsqlParameterCollection parameters, JobLease lease)
    {
        parameters.AddWithValue("id", lease.JobId);
        parameters.AddWithValue("attempt", lease.Attempt);
        parameters.AddWithValue("owner", lease.Owner);
    }

    private static async Task<JobRecord?> ReadOneAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var all = await ReadAllAsync(command, cancellationToken);
        return all.Count == 0 ? null : all[0];
    }

    private static async Task<IReadOnlyList<JobRecord>> ReadAllAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var jobs = new List<JobRecord>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            jobs.Add(new JobRecord(
                reader.GetGuid(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.GetInt32(3),
                reader.GetString(4),
                JsonSerializer.Deserialize(reader.GetString(5), JobSpecJson.Default.JobSpec)!,
                reader.IsDBNull(6) ? null : reader.GetString(6),
                reader.GetString(7),
                reader.GetInt32(8),
                reader.GetInt32(9),
                reader.GetInt32(10),
                reader.GetFieldValue<DateTimeOffset>(11),
                reader.IsDBNull(12) ? null : reader.GetString(12),
                reader.IsDBNull(13) ? null : reader.GetFieldValue<DateTimeOffset>(13),
                reader.GetBoolean(14),
                reader.GetDecimal(15),
                reader.IsDBNull(16) ? null : reader.GetString(16),
                reader.IsDBNull(17) ? null : reader.GetString(17),
                reader.IsDBNull(18) ? null : reader.GetString(18),
                reader.IsDBNull(19) ? null : reader.GetString(19),
                reader.GetString(20),
                reader.IsDBNull(21) ? null : reader.GetString(21),
                reader.GetFieldValue<DateTimeOffset>(22),
                reader.IsDBNull(23) ? null : reader.GetFieldValue<DateTimeOffset>(23),
                reader.IsDBNull(24) ? null : reader.GetFieldValue<DateTimeOffset>(24),
                reader.GetFieldValue<DateTimeOffset>(25)));
        }

        return jobs;
    }
}
