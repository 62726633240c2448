using System.Text.Json;
using GoblinAspire.TrainingWorker.Jobs;
using GoblinAspire.TrainingWorker.Queue;

namespace GoblinAspire.TrainingWorker.Api;

/// <summary>The API's job document, written straight to the response (snake_case, as the spec is).</summary>
public static class JobJson
{
    public static void Write(Utf8JsonWriter writer, JobRecord job)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(job);
        writer.WriteStartObject();
        writer.WriteString("id", job.Id);
        writer.WriteString("name", job.Name);
        writer.WriteString("queue", job.Queue);
        writer.WriteNumber("priority", job.Priority);
        writer.WriteString("executor", job.Executor);
        writer.WriteString("state", job.State);
        writer.WriteNumber("attempt", job.Attempt);
        writer.WriteNumber("failures", job.Failures);
        writer.WriteNumber("max_attempts", job.MaxAttempts);
        writer.WriteBoolean("cancel_requested", job.CancelRequested);
        writer.WriteNumber("spend_usd", job.SpendUsd);
        writer.WriteString("checkpoint_uri", job.CheckpointUri);
        WriteOptional(writer, "idempotency_key", job.IdempotencyKey);
        WriteOptional(writer, "mlflow_experiment_id", job.ExperimentId);
        WriteOptional(writer, "mlflow_run_id", job.RunId);
        WriteOptional(writer, "model_version", job.ModelVersion);
        WriteOptional(writer, "last_error", job.LastError);
        if (job.Instance is { } instance)
        {
            writer.WritePropertyName("instance");
            writer.WriteRawValue(instance);
        }

        writer.WriteString("created_at", job.CreatedAt);
        writer.WriteString("updated_at", job.UpdatedAt);
        if (!JobStates.IsTerminal(job.State) && job.State != JobStates.Provisioning && job.State != JobStates.Running)
        {
            writer.WriteString("run_after", job.RunAfter);
        }

        if (job.StartedAt is { } started)
        {
            writer.WriteString("started_at", started);
        }

        if (job.FinishedAt is { } finished)
        {
            writer.WriteString("finished_at", finished);
        }

        if (job.LeaseOwner is { } owner)
        {
            writer.WriteString("lease_owner", owner);
        }

        writer.WritePropertyName("spec");
        JsonSerializer.Serialize(writer, job.Spec, JobSpecJson.Default.JobSpec);
        writer.WriteEndObject();
    }

    private static void WriteOptional(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is not null)
        {
            writer.WriteString(name, value);
        }
    }
}
