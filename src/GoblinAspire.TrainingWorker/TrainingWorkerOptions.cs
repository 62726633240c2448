using System.ComponentModel.DataAnnotations;
using GoblinAspire.TrainingWorker.Jobs;
using Microsoft.Extensions.Options;

namespace GoblinAspire.TrainingWorker;

public sealed class TrainingWorkerOptions
{
    public const string SectionName = "TrainingWorker";

    /// <summary>How long a claimed job stays ours without a heartbeat before the rescuer may re-queue it.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    [Range(typeof(TimeSpan), "00:00:00.100", "00:30:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often the worker looks for work when no notification arrived (notifications make it immediate).</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often expired leases are looked for and orphaned machines destroyed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan RescueInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Between SIGTERM and SIGKILL when a local job is cancelled or times out.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan StopGracePeriod { get; set; } = TimeSpan.FromSeconds(10);

    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(10);

    [Range(typeof(TimeSpan), "00:00:00.010", "1.00:00:00")]
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Jobs of one queue that may run at once on this worker (the seeds' numbers).</summary>
    public Dictionary<string, int> QueueConcurrency { get; set; } = new(StringComparer.Ordinal)
    {
        ["high_priority"] = 2,
        ["default"] = 4,
        ["low_priority"] = 2,
        ["training"] = 2,
        ["inference"] = 4,
    };

    /// <summary>The month's spend on rented machines, across all jobs and workers (the seeds' 100 $).</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal MonthlyBudgetUsd { get; set; } = 100m;

    /// <summary>No machine pricier than this is ever rented, whatever a job asks (the seeds' 0.80 $/h).</summary>
    [Range(typeof(decimal), "0", "1000")]
    public decimal MaxUsdPerHour { get; set; } = 0.80m;

    /// <summary>Spend is charged ahead, one interval at a time, from the machine's real price.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan SpendInterval { get; set; } = TimeSpan.FromMinutes(1);

    [Range(1024, 1024L * 1024 * 1024)]
    public long MaxLogBytesPerAttempt { get; set; } = 1024 * 1024;

    [Range(1024, 16 * 1024 * 1024)]
    public int MaxSpecBytes { get; set; } = 256 * 1024;

    /// <summary>Where local jobs get their working folders (kept across attempts on one machine).</summary>
    public string WorkDirectory { get; set; } = Path.Combine(Path.GetTempPath(), "goblin-jobs");

    /// <summary>The worker's own address of the ModelRegistry (service discovery resolves it).</summary>
    [Required]
    public Uri RegistryUrl { get; set; } = new("http://modelregistry");

    /// <summary>
    /// The registry address jobs are given (<c>MLFLOW_TRACKING_URI</c>, signed URLs). Unset: the address service
    /// discovery resolves, which local jobs can reach; set a public address when jobs run on rented machines.
    /// </summary>
    public Uri? JobRegistryUrl { get; set; }

    /// <summary>
    /// A secret: the registry's bearer token, sent on the worker's own registry calls. A job never sees it: it gets a
    /// token the registry makes for its run alone (<c>MLFLOW_TRACKING_TOKEN</c>). Unset: a registry without a token.
    /// </summary>
    public string? RegistryToken { get; set; }

    [Required]
    public string CheckpointBucket { get; set; } = GoblinAspire.ServiceDefaults.PlatformResources.ArtifactBucket;

    /// <summary>Variables of the worker's own environment a local job inherits; nothing else (the worker holds secrets).</summary>
    public List<string> InheritedEnvironment { get; set; } = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "DOTNET_ROOT", "DOTNET_CLI_HOME", "DOTNET_NOLOGO", "DOTNET_CLI_TELEMETRY_OPTOUT", "DOTNET_SKIP_FIRST_TIME_EXPERIENCE"];

    [ValidateObjectMembers]
    public JobIsolationOptions Isolation { get; set; } = new();

    [ValidateObjectMembers]
    public VastAiOptions VastAi { get; set; } = new();

    [ValidateObjectMembers]
    public RunPodOptions RunPod { get; set; } = new();
}

/// <summary>How local jobs are kept from the worker's secrets (see <see cref="Execution.JobSandbox"/>).</summary>
public sealed class JobIsolationOptions
{
    /// <summary>
    /// Opts out of isolation: local jobs then run as the worker's user, see its processes and can read its secrets.
    /// Only for machines where namespaces are unavailable and every job is trusted; logged as a warning at start.
    /// </summary>
    public bool Disabled { get; set; }

    /// <summary>The unprivileged user a job runs as when the worker itself runs as root (the overflow uid, nobody).</summary>
    [Range(1, int.MaxValue)]
    public int Uid { get; set; } = 65534;

    [Range(1, int.MaxValue)]
    public int Gid { get; set; } = 65534;

    /// <summary>
    /// Folders and files a job must not see even where its user could read them (a developer's jobs run as the
    /// developer): absolute, or under <c>~/</c>. By default the user secrets Aspire keeps generated passwords in, and
    /// ASP.NET's keys and development certificates.
    /// </summary>
    public List<string> HiddenPaths { get; set; } = ["~/.microsoft/usersecrets", "~/.aspnet"];
}

public sealed class VastAiOptions
{
    [Required]
    public Uri BaseUrl { get; set; } = new("https://console.vast.ai/");

    /// <summary>A secret: set through the <c>vastai-api-key</c> parameter. Unset, the executor refuses jobs.</summary>
    public string? ApiKey { get; set; }

    public List<string> PreferredGpus { get; set; } = ["RTX_4090", "RTX_3090"];

    [Range(0.0, 1.0)]
    public double MinReliability { get; set; } = 0.90;

    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long an instance may stay unreachable (<c>offline</c>/<c>unknown</c>) before it counts as lost capacity.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan OfflineGrace { get; set; } = TimeSpan.FromMinutes(3);
}

public sealed class RunPodOptions
{
    [Required]
    public Uri BaseUrl { get; set; } = new("https://rest.runpod.io/v1/");

    [Required]
    public Uri ServerlessBaseUrl { get; set; } = new("https://api.runpod.ai/v2/");

    /// <summary>A secret: set through the <c>runpod-api-key</c> parameter. Unset, the executor refuses jobs.</summary>
    public string? ApiKey { get; set; }

    /// <summary>
    /// $/hour per GPU type id: RunPod's REST API does not quote prices before creation, so only types priced here
    /// under the cap are asked for, and the price the created pod reports is checked again.
    /// </summary>
    public Dictionary<string, decimal> GpuPrices { get; set; } = new(StringComparer.Ordinal)
    {
        ["NVIDIA GeForce RTX 3090"] = 0.22m,
        ["NVIDIA GeForce RTX 4090"] = 0.34m,
    };

    public string CloudType { get; set; } = "COMMUNITY";

    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(10);
}

[OptionsValidator]
public sealed partial class TrainingWorkerOptionsAttributeValidator : IValidateOptions<TrainingWorkerOptions>;

/// <summary>The rules that span fields, which attributes cannot say.</summary>
public sealed class TrainingWorkerOptionsValidator : IValidateOptions<TrainingWorkerOptions>
{
    private readonly TrainingWorkerOptionsAttributeValidator _attributes = new();

    public ValidateOptionsResult Validate(string? name, TrainingWorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = new ValidateOptionsResultBuilder();
        builder.AddResult(_attributes.Validate(name, options));
        if (options.HeartbeatInterval >= options.LeaseDuration)
        {
            builder.AddError($"HeartbeatInterval ({options.HeartbeatInterval}) must be shorter than LeaseDuration ({options.LeaseDuration}).", "TrainingWorker:HeartbeatInterval");
        }

        if (options.RetryBaseDelay > options.RetryMaxDelay)
        {
            builder.AddError($"RetryBaseDelay ({options.RetryBaseDelay}) must not exceed RetryMaxDelay ({options.RetryMaxDelay}).", "TrainingWorker:RetryBaseDelay");
        }

        foreach (var (queue, concurrency) in options.QueueConcurrency)
        {
            if (!JobQueues.ByRank.Contains(queue))
            {
                builder.AddError($"unknown queue '{queue}'; queues are {string.Join(", ", JobQueues.ByRank)}.", $"TrainingWorker:QueueConcurrency:{queue}");
            }
            else if (concurrency is < 0 or > 256)
            {
                builder.AddError($"concurrency {concurrency} is outside 0..256.", $"TrainingWorker:QueueConcurrency:{queue}");
            }
        }

        foreach (var (gpu, price) in options.RunPod.GpuPrices)
        {
            if (price <= 0)
            {
                builder.AddError($"the price of '{gpu}' must be positive.", $"TrainingWorker:RunPod:GpuPrices:{gpu}");
            }
        }

        return builder.Build();
    }
}
