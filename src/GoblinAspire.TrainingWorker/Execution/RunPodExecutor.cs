using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;

namespace GoblinAspire.TrainingWorker.Execution;

/// <summary>
/// RunPod, two ways. Pods through the REST API (<c>POST /pods</c>, <c>GET /pods/{id}</c>, <c>DELETE /pods/{id}</c>),
/// interruptible or on-demand, named with the attempt's label so a half-made one is found with <c>GET /pods?name=</c>.
/// Serverless endpoints through <c>/{endpoint}/run</c>, <c>/status/{id}</c> and <c>/cancel/{id}</c>, when the job names
/// one. RunPod quotes no price before creating a pod, so only GPU types priced in configuration under the cap are asked
/// for, and the price the pod reports is checked again; serverless spend is charged at the job's cap, an upper bound,
/// since the API reports run time but no price.
/// </summary>
public sealed partial class RunPodExecutor(IHttpClientFactory clients, IOptions<TrainingWorkerOptions> options, TimeProvider time, ILogger<RunPodExecutor> logger)
    : RentedMachineExecutor(options, time)
{
    public const string HttpClientName = "runpod";
    public const string PodKind = "runpod-pod";
    public const string RequestKind = "runpod-request";

    public override string Name => Jobs.Executors.RunPod;

    public override IReadOnlyList<string> InstanceKinds { get; } = [PodKind, RequestKind];

    protected override TimeSpan PollInterval => Pod.PollInterval;

    private RunPodOptions Pod => Settings.RunPod;

    protected override Task<Offer?> ChooseAsync(ExecutionRequest request, CancellationToken cancellationToken)
    {
        var resources = request.Job.Spec.Resources;
        if (resources?.ServerlessEndpoint is { } endpoint)
        {
            return Task.FromResult<Offer?>(new Offer(endpoint, request.MaxUsdPerHour, false, $"serverless endpoint {endpoint}"));
        }

        var count = Math.Max(1, resources?.GpuCount ?? 1);
        var wanted = resources?.GpuTypes is { Count: > 0 } types ? types : [.. Pod.GpuPrices.Keys];
        var affordable = wanted
            .Where(g => Pod.GpuPrices.TryGetValue(g, out var price) && price * count <= request.MaxUsdPerHour)
            .ToList();
        if (affordable.Count == 0)
        {
            return Task.FromResult<Offer?>(null);
        }

        // The dearest type asked for bounds what RunPod may pick.
        var bound = affordable.Max(g => Pod.GpuPrices[g]) * count;
        return Task.FromResult<Offer?>(new Offer(string.Join(",", affordable), bound, resources?.Interruptible ?? true, $"{count} × {string.Join(" or ", affordable)}"));
    }

    protected override InstanceRecord Pending(ExecutionRequest request) =>
        new() { Kind = request.Job.Spec.Resources?.ServerlessEndpoint is null ? PodKind : RequestKind, Id = "", Scope = request.Job.Spec.Resources?.ServerlessEndpoint ?? request.Label, JobId = request.Job.Id, Attempt = request.Attempt };

    protected override async Task<InstanceRecord> CreateAsync(ExecutionRequest request, Offer offer, CancellationToken cancellationToken)
    {
        var spec = request.Job.Spec;
        var env = new JsonObject();
        foreach (var (name, value) in request.Environment)
        {
            env[name] = value;
        }

        if (spec.Resources?.ServerlessEndpoint is { } endpoint)
        {
            // A serverless request cannot be found by label, so a lost answer is a request nobody will cancel; it
            // ends at the endpoint's own execution timeout. Not retried, for the same reason.
            using var queued = await ProviderHttp.SendAsync(Client, HttpMethod.Post, Serverless($"{endpoint}/run"), Key, new JsonObject
            {
                ["input"] = new JsonObject { ["command"] = new JsonArray([.. (spec.Command ?? []).Select(a => (JsonNode)a)]), ["env"] = env },
            }, "RunPod", cancellationToken);
            var id = ProviderHttp.Text(queued!.RootElement, "id") ?? throw new ProviderException("RunPod queued the request but returned no id", transient: true);
            return new InstanceRecord { Kind = RequestKind, Id = id, Scope = endpoint, JobId = request.Job.Id, Attempt = request.Attempt };
        }

        var body = new JsonObject
        {
            ["name"] = request.Label,
            ["imageName"] = spec.Image,
            ["gpuTypeIds"] = new JsonArray([.. offer.Id.Split(',').Select(g => (JsonNode)g)]),
            ["gpuCount"] = Math.Max(1, spec.Resources?.GpuCount ?? 1),
            ["interruptible"] = offer.Interruptible,
            ["cloudType"] = Pod.CloudType,
            ["containerDiskInGb"] = spec.Resources?.DiskGb ?? 20,
            ["env"] = env,
        };
        if (spec.Command is { Count: > 0 } command)
        {
            body["dockerStartCmd"] = new JsonArray([.. command.Select(a => (JsonNode)a)]);
        }

        InstanceRecord pod;
        decimal? price;
        try
        {
            using var created = await ProviderHttp.SendAsync(Client, HttpMethod.Post, Rest("pods"), Key, body, "RunPod", cancellationToken);
            var id = ProviderHttp.Text(created!.RootElement, "id") ?? throw new ProviderException("RunPod created a pod but returned no id", transient: true);
            pod = new InstanceRecord { Kind = PodKind, Id = id, Scope = request.Label, JobId = request.Job.Id, Attempt = request.Attempt };
            price = ProviderHttp.Price(created.RootElement, "adjustedCostPerHr") ?? ProviderHttp.Price(created.RootElement, "costPerHr");
        }
        catch (Exception ex) when (ex is ProviderException or OperationCanceledException)
        {
            try
            {
                await DestroyNamedAsync(request.Label, CancellationToken.None);
            }
            catch (ProviderException check)
            {
                LogOrphanCheckFailed(logger, request.Label, check.Message);
                throw new ProviderException($"{ex.Message}; and checking for a half-made pod failed", transient: true) { MachineMayRemain = true };
            }

            throw ex as ProviderException ?? new ProviderException("creating the RunPod pod timed out", transient: true);
        }

        if (price > request.MaxUsdPerHour)
        {
            await DestroyAsync(pod, CancellationToken.None);
            throw new ProviderException($"RunPod priced the pod at {price} $/h, over the cap of {request.MaxUsdPerHour} $/h; it was terminated at once", transient: false);
        }

        return pod;
    }

    protected override async Task<MachineStatus> PollAsync(InstanceRecord instance, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(instance);
        if (instance.Kind == RequestKind)
        {
            using var status = await ProviderHttp.SendAsync(Client, HttpMethod.Get, Serverless($"{instance.Scope}/status/{instance.Id}"), Key, null, "RunPod", cancellationToken, notFoundIsNull: true);
            if (status is null)
            {
                return new MachineStatus(MachinePhase.Gone, "the request is no longer known to the endpoint");
            }

            var root = status.RootElement;
            var error = ProviderHttp.Text(root, "error");
            return ProviderHttp.Text(root, "status") switch
            {
                "IN_QUEUE" => new MachineStatus(MachinePhase.Starting, "queued at the endpoint"),
                "IN_PROGRESS" => new MachineStatus(MachinePhase.Running, "in progress"),
                "COMPLETED" => new MachineStatus(MachinePhase.Finished, "completed") { Outcome = ExecutionOutcome.Succeeded("the serverless request completed") },
                "FAILED" => new MachineStatus(MachinePhase.Finished, "failed") { Outcome = ExecutionOutcome.Failed($"the serverless request failed: {error}") },
                "TIMED_OUT" => new MachineStatus(MachinePhase.Finished, "timed out") { Outcome = ExecutionOutcome.Failed("the serverless request timed out at the endpoint") },
                "CANCELLED" => new MachineStatus(MachinePhase.Gone, "cancelled at the endpoint"),
                var other => new MachineStatus(MachinePhase.Starting, other ?? "unknown"),
            };
        }

        if (instance.Id.Length == 0)
        {
            return new MachineStatus(MachinePhase.Gone, "the pod was never created");
        }

        using var pod = await ProviderHttp.SendAsync(Client, HttpMethod.Get, Rest($"pods/{instance.Id}"), Key, null, "RunPod", cancellationToken, notFoundIsNull: true);
        if (pod is null)
        {
            return new MachineStatus(MachinePhase.Gone, "the pod no longer exists");
        }

        var price = ProviderHttp.Price(pod.RootElement, "adjustedCostPerHr") ?? ProviderHttp.Price(pod.RootElement, "costPerHr");
        var change = ProviderHttp.Text(pod.RootElement, "lastStatusChange") ?? "";
        return ProviderHttp.Text(pod.RootElement, "desiredStatus") switch
        {
            "RUNNING" => new MachineStatus(MachinePhase.Running, "running") { PricePerHour = price },
            "EXITED" => new MachineStatus(MachinePhase.Exited, $"exited: {change}"),
            "TERMINATED" => new MachineStatus(MachinePhase.Gone, $"terminated by RunPod: {change}"),
            var other => new MachineStatus(MachinePhase.Starting, other ?? "starting"),
        };
    }

    protected override async Task DestroyAsync(InstanceRecord instance, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(instance);
        if (instance.Kind == RequestKind)
        {
            if (instance.Id.Length > 0)
            {
                using var _ = await ProviderHttp.SendAsync(Client, HttpMethod.Post, Serverless($"{instance.Scope}/cancel/{instance.Id}"), Key, null, "RunPod", cancellationToken, notFoundIsNull: true);
            }

            return;
        }

        if (instance.Id.Length == 0)
        {
            await DestroyNamedAsync(instance.Scope!, cancellationToken);
            return;
        }

        using var deleted = await ProviderHttp.SendAsync(Client, HttpMethod.Delete, Rest($"pods/{instance.Id}"), Key, null, "RunPod", cancellationToken, notFoundIsNull: true);
        LogTerminated(logger, instance.Id);
    }

    private async Task DestroyNamedAsync(string name, CancellationToken cancellationToken)
    {
        using var listed = await ProviderHttp.SendAsync(Client, HttpMethod.Get, Rest($"pods?name={Uri.EscapeDataString(name)}"), Key, null, "RunPod", cancellationToken);
        if (listed!.RootElement.ValueKind != JsonValueKind.Array)
        {
            return;
        }

        foreach (var pod in listed.RootElement.EnumerateArray().Where(p => ProviderHttp.Text(p, "name") == name))
        {
            await DestroyAsync(new InstanceRecord { Kind = PodKind, Id = ProviderHttp.Text(pod, "id")!, Scope = name }, cancellationToken);
        }
    }

    private HttpClient Client => clients.CreateClient(HttpClientName);

    private string Key => Pod.ApiKey ?? throw new ProviderException("no RunPod API key is configured", transient: false);

    private Uri Rest(string path) => new(Pod.BaseUrl, path);

    private Uri Serverless(string path) => new(Pod.ServerlessBaseUrl, path);

    [LoggerMessage(Level = LogLevel.Information, Message = "Terminated RunPod pod {PodId}.")]
    private static partial void LogTerminated(ILogger logger, string podId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not check RunPod for a pod named {Name} after a failed create: {Reason}")]
    private static partial void LogOrphanCheckFailed(ILogger logger, string name, string reason);
}
