using System.Text;
using System.Text.Json;
using GoblinAspire.TrainingWorker.Jobs;
using GoblinAspire.TrainingWorker.Queue;
using Microsoft.Extensions.Options;

namespace GoblinAspire.TrainingWorker.Api;

/// <summary>The worker's HTTP API: submit, inspect, cancel and follow jobs. Errors are RFC 9457 problem details.</summary>
public static class JobEndpoints
{
    private const int MaxPageSize = 1000;

    public static IEndpointRouteBuilder MapJobs(this IEndpointRouteBuilder app)
    {
        var jobs = app.MapGroup("/jobs");
        jobs.MapPost("/", SubmitAsync);
        jobs.MapGet("/", ListAsync);
        jobs.MapGet("/{id}", async (string id, JobQueue queue, HttpContext http) =>
            ParseId(id) is { } jobId && await queue.GetAsync(jobId, http.RequestAborted) is { } job ? JobResult(job, StatusCodes.Status200OK) : NotFound(id));
        jobs.MapPost("/{id}/cancel", async (string id, JobQueue queue, HttpContext http) =>
        {
            if (ParseId(id) is not { } jobId || await queue.GetAsync(jobId, http.RequestAborted) is not { } before)
            {
                return NotFound(id);
            }

            if (JobStates.IsTerminal(before.State))
            {
                return Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "The job has already ended.", detail: $"Job {id} is {before.State}; there is nothing to cancel.");
            }

            var after = await queue.CancelAsync(jobId, http.RequestAborted);
            return JobResult(after!, StatusCodes.Status202Accepted);
        });
        jobs.MapGet("/{id}/events", async (string id, JobQueue queue, HttpContext http, long? after, int? limit) =>
        {
            if (ParseId(id) is not { } jobId || await queue.GetAsync(jobId, http.RequestAborted) is null)
            {
                return NotFound(id);
            }

            var events = await queue.EventsAsync(jobId, after ?? 0, Math.Clamp(limit ?? 1000, 1, MaxPageSize), http.RequestAborted);
            return Json(StatusCodes.Status200OK, w =>
            {
                w.WriteStartObject();
                w.WriteStartArray("events");
                foreach (var e in events)
                {
                    w.WriteStartObject();
                    w.WriteNumber("id", e.Id);
                    w.WriteString("at", e.At);
                    w.WriteNumber("attempt", e.Attempt);
                    w.WriteString("kind", e.Kind);
                    w.WriteString("message", e.Message);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            });
        });
        jobs.MapGet("/{id}/logs", FollowLogsAsync);
        app.MapGet("/budget", async (JobQueue queue, TimeProvider time, IOptions<TrainingWorkerOptions> options, HttpContext http) =>
        {
            var monthStart = JobQueue.MonthStart(time.GetUtcNow());
            var spent = await queue.MonthSpendAsync(monthStart, http.RequestAborted);
            return Json(StatusCodes.Status200OK, w =>
            {
                w.WriteStartObject();
                w.WriteString("month", monthStart.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture));
                w.WriteNumber("monthly_budget_usd", options.Value.MonthlyBudgetUsd);
                w.WriteNumber("spent_usd", spent);
                w.WriteNumber("remaining_usd", Math.Max(0, options.Value.MonthlyBudgetUsd - spent));
                w.WriteNumber("max_usd_per_hour", options.Value.MaxUsdPerHour);
                w.WriteEndObject();
            });
        });
        return app;
    }

    private static async Task<IResult> SubmitAsync(HttpContext http, JobQueue queue, IOptions<TrainingWorkerOptions> options)
    {
        var settings = options.Value;
        if (http.Request.ContentLength > settings.MaxSpecBytes)
        {
            return TooLarge(settings.MaxSpecBytes);
        }

        if (!(http.Request.ContentType?.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) ?? false))
        {
            return Results.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, title: "A job spec is JSON.", detail: "Send the spec with Content-Type: application/json.");
        }

        // Read within the limit whatever Content-Length claimed (chunked bodies have none).
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await http.Request.Body.ReadAsync(chunk, http.RequestAborted)) > 0)
        {
            if (buffer.Length + read > settings.MaxSpecBytes)
            {
                return TooLarge(settings.MaxSpecBytes);
            }

            buffer.Write(chunk, 0, read);
        }

        JobSpec? spec;
        try
        {
            spec = JsonSerializer.Deserialize(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), JobSpecJson.Default.JobSpec);
        }
        catch (JsonException ex)
        {
            var where = ex.Path is { Length: > 1 } path ? $" at {path}" : "";
            return Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "The job spec is not valid JSON for a job.", detail: $"{FirstSentence(ex.Message)}{where}");
        }

        if (spec is null)
        {
            return Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "The job spec is not valid JSON for a job.", detail: "The body must be a JSON object.");
        }

        var errors = JobSpecValidator.Validate(spec, settings);
        if (errors.Count > 0)
        {
            return Results.ValidationProblem(errors, title: "The job spec is invalid.", detail: $"{errors.Sum(e => e.Value.Length)} problem(s); every one is listed.");
        }

        var (job, created) = await queue.SubmitAsync(spec, $"gs://{settings.CheckpointBucket}/checkpoints", http.RequestAborted);
        http.Response.Headers.Location = $"/jobs/{job.Id}";
        return JobResult(job, created ? StatusCodes.Status201Created : StatusCodes.Status200OK);
    }

    private static async Task<IResult> ListAsync(JobQueue queue, HttpContext http, string? state, int? limit, string? before)
    {
        // "queue" is read by hand: the parameter name belongs to the injected JobQueue.
        var q = http.Request.Query["queue"].FirstOrDefault();
        var problems = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (state is not null && !JobStates.All.Contains(state))
        {
            problems["state"] = [$"state must be one of {string.Join(", ", JobStates.All)}."];
        }

        if (q is not null && !JobQueues.ByRank.Contains(q))
        {
            problems["queue"] = [$"queue must be one of {string.Join(", ", JobQueues.ByRank)}."];
        }

        if (limit is < 1 or > MaxPageSize)
        {
            problems["limit"] = [$"limit must be between 1 and {MaxPageSize}."];
        }

        Guid? beforeId = null;
        if (before is not null)
        {
            if (ParseId(before) is { } parsed)
            {
                beforeId = parsed;
            }
            else
            {
                problems["before"] = ["before must be a job id from the previous page."];
            }
        }

        if (problems.Count > 0)
        {
            return Results.ValidationProblem(problems, title: "The query is invalid.");
        }

        var pageSize = limit ?? 100;
        var page = await queue.ListAsync(state, q, pageSize, beforeId, http.RequestAborted);
        return Json(StatusCodes.Status200OK, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("jobs");
            foreach (var job in page)
            {
                JobJson.Write(w, job);
            }

            w.WriteEndArray();
            if (page.Count == pageSize)
            {
                w.WriteString("next_before", page[^1].Id);
            }

            w.WriteEndObject();
        });
    }

    /// <summary>
    /// Plain text, one line per output line. With <c>follow=true</c> it stays open and streams new lines until the job
    /// ends — read from the database, so any worker replica can serve it whichever runs the job.
    /// </summary>
    private static async Task FollowLogsAsync(HttpContext http, string id, JobQueue queue, TimeProvider time, bool? follow, int? attempt, long? after)
    {
        if (ParseId(id) is not { } jobId || await queue.GetAsync(jobId, http.RequestAborted) is null)
        {
            await NotFound(id).ExecuteAsync(http);
            return;
        }

        http.Response.ContentType = "text/plain; charset=utf-8";
        http.Response.Headers.CacheControl = "no-cache";
        var cursor = after ?? 0;
        var builder = new StringBuilder();
        try
        {
            while (true)
            {
                var lines = await queue.LogsAsync(jobId, attempt, cursor, 5000, http.RequestAborted);
                if (lines.Count > 0)
                {
                    builder.Clear();
                    foreach (var line in lines)
                    {
                        builder.Append(line.Line).Append('\n');
                    }

                    cursor = lines[^1].Seq;
                    await http.Response.WriteAsync(builder.ToString(), http.RequestAborted);
                    await http.Response.Body.FlushAsync(http.RequestAborted);
                    continue;
                }

                if (follow != true)
                {
                    return;
                }

                var job = await queue.GetAsync(jobId, http.RequestAborted);
                if (job is null || JobStates.IsTerminal(job.State))
                {
                    // One more read: lines flushed just before the end.
                    if ((await queue.LogsAsync(jobId, attempt, cursor, 1, http.RequestAborted)).Count == 0)
                    {
                        return;
                    }

                    continue;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(250), time, http.RequestAborted);
            }
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client stopped following.
        }
    }

    private static IResult JobResult(JobRecord job, int status) => Json(status, w => JobJson.Write(w, job));

    private static IResult Json(int status, Action<Utf8JsonWriter> write) => new JsonWriterResult(status, write);

    private static IResult NotFound(string id) =>
        Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "No such job.", detail: $"There is no job with id '{(id.Length > 64 ? id[..64] : id)}'.");

    private static IResult TooLarge(int limit) =>
        Results.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "The job spec is too large.", detail: $"A job spec is at most {limit} bytes.");

    private static Guid? ParseId(string id) => Guid.TryParse(id, out var parsed) ? parsed : null;

    private static string FirstSentence(string message)
    {
        var end = message.IndexOf(". ", StringComparison.Ordinal);
        return end < 0 ? message : message[..(end + 1)];
    }

    private sealed class JsonWriterResult(int status, Action<Utf8JsonWriter> write) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = status;
            httpContext.Response.ContentType = "application/json; charset=utf-8";
            await using var writer = new Utf8JsonWriter(httpContext.Response.BodyWriter);
            write(writer);
            await writer.FlushAsync();
        }
    }
}
