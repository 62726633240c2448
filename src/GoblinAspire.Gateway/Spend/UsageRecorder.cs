using System.Diagnostics.Metrics;
using System.Threading.Channels;
using GoblinAspire.Gateway.Telemetry;
using Npgsql;
using NpgsqlTypes;

namespace GoblinAspire.Gateway.Spend;

/// <summary>
/// Records every request's usage in PostgreSQL without a synchronous insert on the request path: requests hand
/// records to a bounded channel, and a background loop writes them in batches with binary COPY. On graceful shutdown
/// the channel is closed and drained, so nothing accepted is lost. If PostgreSQL is away, a batch is retried.
/// </summary>
public sealed partial class UsageRecorder : BackgroundService, IUsageSink
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger<UsageRecorder> _logger;

    private const int MaxBatch = 1000;
    private static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(250);

    private readonly Channel<UsageRecord> _pending = Channel.CreateBounded<UsageRecord>(new BoundedChannelOptions(100_000)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.DropWrite,
    });

    private long _dropped;

    public UsageRecorder(NpgsqlDataSource dataSource, ILogger<UsageRecorder> logger, IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _dataSource = dataSource;
        _logger = logger;
        meterFactory.Create(GatewayMetrics.MeterName).CreateObservableCounter("usage_records_dropped_total", () => Dropped, description: "Usage records refused because the write queue was full (PostgreSQL away for long): spend that will be missing.");
    }

    /// <summary>Records handed over but refused because the queue was full (PostgreSQL away for long).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public void Record(UsageRecord record)
    {
        if (!_pending.Writer.TryWrite(record))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _pending.Writer.TryComplete();
        await base.StopAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<UsageRecord>(MaxBatch);
        // The loop ends when the channel is completed and empty, not on the stopping token: that is the drain.
        while (await _pending.Reader.WaitToReadAsync(CancellationToken.None))
        {
            while (batch.Count < MaxBatch && _pending.Reader.TryRead(out var record))
            {
                batch.Add(record);
            }

            await WriteWithRetryAsync(batch, stoppingToken);
            batch.Clear();
            if (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(FlushInterval, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    // Shutting down: keep draining without pauses.
                }
            }
        }
    }

    private async Task WriteWithRetryAsync(List<UsageRecord> batch, CancellationToken _)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await WriteAsync(batch);
                return;
            }
            catch (NpgsqlException ex) when (attempt < 20)
            {
                LogRetry(batch.Count, attempt, ex.GetType().Name);
                // While shutting down the wait is not cut short: the drain still needs PostgreSQL to come back.
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 100 * attempt * attempt)), CancellationToken.None);
            }
        }
    }

    private async Task WriteAsync(List<UsageRecord> batch)
    {
        await using var connection = await _dataSource.OpenConnectionAsync();
        await using var writer = await connection.BeginBinaryImportAsync(
            "COPY usage_records (at, key_id, team, model, provider, input_tokens, output_tokens, cost_usd, latency_ms, ttft_ms, status, cache_hit) FROM STDIN (FORMAT BINARY)");
        foreach (var r in batch)
        {
            await writer.StartRowAsync();
            await writer.WriteAsync(r.At, NpgsqlDbType.TimestampTz);
            await writer.WriteAsync(r.KeyId is { } id ? id : (object)DBNull.Value, NpgsqlDbType.Uuid);
            await writer.WriteAsync(r.Team, NpgsqlDbType.Text);
            await writer.WriteAsync(r.Model, NpgsqlDbType.Text);
            await writer.WriteAsync(r.Provider, NpgsqlDbType.Text);
            await writer.WriteAsync(r.InputTokens, NpgsqlDbType.Bigint);
            await writer.WriteAsync(r.OutputTokens, NpgsqlDbType.Bigint);
            await writer.WriteAsync(r.CostUsd, NpgsqlDbType.Numeric);
            await writer.WriteAsync(r.LatencyMs, NpgsqlDbType.Double);
            await writer.WriteAsync(r.FirstTokenMs is { } ttft ? ttft : (object)DBNull.Value, NpgsqlDbType.Double);
            await writer.WriteAsync(r.Status, NpgsqlDbType.Integer);
            await writer.WriteAsync(r.CacheHit, NpgsqlDbType.Boolean);
        }

        await writer.CompleteAsync();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Writing {Count} usage records failed (attempt {Attempt}, {Error}); retrying.")]
    private partial void LogRetry(int count, int attempt, string error);
}
