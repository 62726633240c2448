using System.Text.RegularExpressions;

namespace GoblinAspire.TrainingWorker.Jobs;

/// <summary>
/// Checks a submitted spec against the platform's rules and this worker's limits, and fills the defaults. Every
/// problem is reported at once, keyed by the field's JSON name, so a client fixes its spec in one round.
/// </summary>
public static partial class JobSpecValidator
{
    public const int MaxArguments = 256;
    public const int MaxArgumentLength = 8192;
    public const int MaxEnvironmentVariables = 128;
    public const int MaxEnvironmentValueLength = 32 * 1024;

    /// <summary>Variables the worker injects; a job may not set them itself.</summary>
    public static readonly string[] ReservedPrefixes = ["GOBLIN_", "MLFLOW_"];

    public static Dictionary<string, string[]> Validate(JobSpec spec, TrainingWorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(options);
        var errors = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        void Add(string field, string message)
        {
            if (!errors.TryGetValue(field, out var list))
            {
                errors[field] = list = [];
            }

            list.Add(message);
        }

        if (string.IsNullOrWhiteSpace(spec.Name))
        {
            Add("name", "name is required.");
        }
        else if (!NamePattern().IsMatch(spec.Name))
        {
            Add("name", "name must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.");
        }

        spec.Queue ??= JobQueues.Default;
        if (!JobQueues.ByRank.Contains(spec.Queue))
        {
            Add("queue", $"queue must be one of {string.Join(", ", JobQueues.ByRank)}.");
        }

        if (spec.Priority is < -1000 or > 1000)
        {
            Add("priority", "priority must be between -1000 and 1000.");
        }

        spec.Executor ??= Executors.Local;
        if (!Executors.All.Contains(spec.Executor))
        {
            Add("executor", $"executor must be one of {string.Join(", ", Executors.All)}.");
        }
        else if (spec.Executor == Executors.VastAi && string.IsNullOrEmpty(options.VastAi.ApiKey))
        {
            Add("executor", "the vastai executor is not configured on this worker (no API key).");
        }
        else if (spec.Executor == Executors.RunPod && string.IsNullOrEmpty(options.RunPod.ApiKey))
        {
            Add("executor", "the runpod executor is not configured on this worker (no API key).");
        }

        var serverless = spec.Resources?.ServerlessEndpoint is { Length: > 0 };
        if (spec.Executor == Executors.Local && (spec.Command is null || spec.Command.Count == 0))
        {
            Add("command", "a local job needs a command: an argv array such as [\"python\", \"train.py\"].");
        }

        if (spec.Executor is Executors.VastAi or Executors.RunPod && !serverless && string.IsNullOrWhiteSpace(spec.Image))
        {
            Add("image", "a job on a rented machine needs a container image.");
        }

        if (spec.Image is { } image && (image.Length > 512 || image.Any(char.IsWhiteSpace) || image.EndsWith(":latest", StringComparison.Ordinal)))
        {
            Add("image", "image must be a reference of at most 512 characters without spaces, pinned to a tag other than 'latest' or a digest.");
        }

        if (spec.Command is { } command)
        {
            if (command.Count > MaxArguments)
            {
                Add("command", $"command has more than {MaxArguments} arguments.");
            }

            for (var i = 0; i < command.Count; i++)
            {
                if (command[i] is null)
                {
                    Add("command", $"command[{i}] is null.");
                }
                else if (command[i].Length > MaxArgumentLength || command[i].Contains('\0', StringComparison.Ordinal))
                {
                    Add("command", $"command[{i}] is longer than {MaxArgumentLength} characters or contains a NUL.");
                }
            }

            if (command.Count > 0 && string.IsNullOrEmpty(command[0]))
            {
                Add("command", "command[0], the program, is empty.");
            }
        }

        if (spec.Env is { } env)
        {
            if (env.Count > MaxEnvironmentVariables)
            {
                Add("env", $"env has more than {MaxEnvironmentVariables} variables.");
            }

            foreach (var (key, value) in env)
            {
                if (!VariablePattern().IsMatch(key))
                {
                    Add("env", $"'{Clip(key)}' is not a valid variable name.");
                }
                else if (ReservedPrefixes.Any(p => key.StartsWith(p, StringComparison.Ordinal)))
                {
                    Add("env", $"'{key}' is reserved: the worker sets GOBLIN_* and MLFLOW_* variables itself.");
                }

                if (value is null || value.Length > MaxEnvironmentValueLength || value.Contains('\0', StringComparison.Ordinal))
                {
                    Add("env", $"the value of '{Clip(key)}' is missing, longer than {MaxEnvironmentValueLength} characters or contains a NUL.");
                }
            }
        }

        if (spec.Resources is { } resources)
        {
            if (resources.GpuCount is < 0 or > 16)
            {
                Add("resources.gpu_count", "gpu_count must be between 0 and 16.");
            }

            if (resources.DiskGb is < 1 or > 4096)
            {
                Add("resources.disk_gb", "disk_gb must be between 1 and 4096.");
            }

            if (resources.GpuTypes is { } gpus && (gpus.Count > 32 || gpus.Any(g => string.IsNullOrWhiteSpace(g) || g.Length > 128)))
            {
                Add("resources.gpu_types", "gpu_types must be at most 32 non-empty names.");
            }

            if (resources.MinReliability is < 0 or > 1)
            {
                Add("resources.min_reliability", "min_reliability must be between 0 and 1.");
            }

            if (serverless && (spec.Executor != Executors.RunPod || !EndpointPattern().IsMatch(resources.ServerlessEndpoint!)))
            {
                Add("resources.serverless_endpoint", "serverless_endpoint is a RunPod endpoint id (letters and digits) and needs executor 'runpod'.");
            }
        }

        spec.MaxUsdPerHour ??= spec.Executor == Executors.Local ? null : options.MaxUsdPerHour;
        if (spec.MaxUsdPerHour is { } perHour && (perHour <= 0 || perHour > options.MaxUsdPerHour))
        {
            Add("max_usd_per_hour", $"max_usd_per_hour must be above 0 and at most the platform's cap of {options.MaxUsdPerHour} $/h.");
        }

        if (spec.MaxTotalUsd is { } total && (total <= 0 || total > options.MonthlyBudgetUsd))
        {
            Add("max_total_usd", $"max_total_usd must be above 0 and at most the monthly budget of {options.MonthlyBudgetUsd} $.");
        }

        if (spec.CheckpointIntervalSeconds is < 1 or > 86400)
        {
            Add("checkpoint_interval_seconds", "checkpoint_interval_seconds must be between 1 and 86400.");
        }

        spec.MaxAttempts ??= 3;
        if (spec.MaxAttempts is < 1 or > 100)
        {
            Add("max_attempts", "max_attempts must be between 1 and 100.");
        }

        if (spec.TimeoutSeconds is < 1 or > 7 * 86400)
        {
            Add("timeout_seconds", "timeout_seconds must be between 1 and 604800 (7 days).");
        }

        if (spec.IdempotencyKey is { } idempotencyKey && (idempotencyKey.Length is 0 or > 256 || idempotencyKey.Any(char.IsControl)))
        {
            Add("idempotency_key", "idempotency_key must be 1 to 256 printable characters.");
        }

        if (spec.Experiment is { } experiment && (experiment.Length is 0 or > 256 || experiment.Any(char.IsControl)))
        {
            Add("experiment", "experiment must be 1 to 256 printable characters.");
        }

        if (spec.RegisteredModel is { } model)
        {
            if (model.Length is 0 or > 256 || model.Any(char.IsControl))
            {
                Add("registered_model", "registered_model must be 1 to 256 printable characters.");
            }

            if (string.IsNullOrEmpty(spec.OutputArtifact))
            {
                Add("output_artifact", "registering a model needs output_artifact: the run artifact to register.");
            }
        }

        if (spec.OutputArtifact is { } artifact && (artifact.Length > 1024 || artifact.StartsWith('/') || artifact.Split('/').Any(s => s is "" or "." or "..") || artifact.Any(char.IsControl)))
        {
            Add("output_artifact", "output_artifact must be a relative path under the run's artifacts, without '.' or '..' segments.");
        }

        if (spec.RegisterStage is { } stage && stage is not ("Staging" or "Production"))
        {
            Add("register_stage", "register_stage must be Staging or Production.");
        }
        else if (spec.RegisterStage is not null && spec.RegisteredModel is null)
        {
            Add("register_stage", "register_stage needs registered_model.");
        }

        return errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
    }

    private static string Clip(string value) => value.Length <= 64 ? value : value[..64] + "…";

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
    private static partial Regex VariablePattern();

    [GeneratedRegex("^[A-Za-z0-9]{1,64}$")]
    private static partial Regex EndpointPattern();
}
