using System.Text;
using GoblinAspire.TrainingWorker.Queue;

namespace GoblinAspire.TrainingWorker.Execution;

/// <summary>
/// An attempt's output on its way to the database: buffered, written in batches, and bounded — past the limit one
/// marker line says how much was dropped, so a chatty job cannot fill the database.
/// </summary>
public sealed class AttemptOutput(JobQueue queue, JobLease lease, long maxBytes)
{
    private readonly Lock _gate = new();
    private List<(string Stream, string Line)> _pending = [];
    private long _bytes;
    private bool _markerQueued;

    public void Add(string stream, string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        // PostgreSQL text cannot hold NUL: one such line would fail every later write of the attempt's output.
        line = line.Replace('\0', '\uFFFD');
        var size = Encoding.UTF8.GetByteCount(line) + 1;
        lock (_gate)
        {
            if (_bytes + size > maxBytes)
            {
                if (!_markerQueued)
                {
                    _markerQueued = true;
                    _pending.Add(("goblin", $"[goblin] output beyond {maxBytes} bytes is not stored"));
                }

                return;
            }

            _bytes += size;
            _pending.Add((stream, line));
        }
    }

    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        List<(string, string)> batch;
        lock (_gate)
        {
            if (_pending.Count == 0)
            {
                return;
            }

            batch = _pending;
            _pending = [];
        }

        try
        {
            await queue.AppendLogsAsync(lease, batch, cancellationToken);
        }
        catch
        {
            lock (_gate)
            {
                _pending.InsertRange(0, batch);
            }

            throw;
        }
    }
}
