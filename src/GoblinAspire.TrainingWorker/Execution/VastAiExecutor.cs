using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;

namespace GoblinAspire.TrainingWorker.Execution;

/// <summary>
/// Vast.ai's REST API (<c>/api/v0</c>): offers from <c>GET bundles/?q=</c>, instances created with
/// <c>PUT asks/{offer}/</c>, watched with <c>GET instances/{id}/</c>, destroyed with <c>DELETE instances/{id}/</c>.
/// Every instance carries a label naming the job and attempt, so one made by a create call that failed anyway is
/// found in <c>GET instances/</c> and destroyed.
/// </summary>
public sealed partial class VastAiExecutor(IHttpClientFactory clients, IOptions<TrainingWorkerOptions> options, TimeProvider time, ILogger<VastAiExecutor> logger)
    : RentedMachineExecutor(options, time)
{
    public const string HttpClientName = "vastai";
    public const string Kind = "vastai";
    private readonly Dictionary<string, DateTimeOffset> _offlineSince = [];
    private readonly Lock _gate = new();

    public override string Name => Jobs.Executors.VastAi;

    public override IReadOnlyList<string> InstanceKinds { get; } = [Kind];

    protected override TimeSpan PollInterval => Settings.VastAi.PollInterval;

    private VastAiOptions Vast => Settings.VastAi;

    protected override async Task<Offer?> ChooseAsync(ExecutionRequest request, CancellationToken cancellationToken)
    {
        var resources = request.Job.Spec.Resources;
        var interruptible = resources?.Interruptible ?? true;
        var gpus = (resources?.GpuTypes is { Count: > 0 } wanted ? wanted : Vast.PreferredGpus).Select(g => g.Replace('_', ' ')).ToList();
        var reliability = Math.Max(resources?.MinReliability ?? 0, Vast.MinReliability);
        var query = new JsonObject
        {
            ["gpu_name"] = new JsonObject { ["in"] = new JsonArray([.. gpus.Select(g => (JsonNode)g)]) },
            ["num_gpus"] = new JsonObject { ["gte"] = resources?.GpuCount ?? 1 },
            ["dph_total"] = new JsonObject { ["lte"] = request.MaxUsdPerHour },
            ["reliability2"] = new JsonObject { ["gte"] = reliability },
            ["disk_space"] = new JsonObject { ["gte"] = resources?.DiskGb ?? 20 },
            ["rentable"] = new JsonObject { ["eq"] = true },
            ["rented"] = new JsonObject { ["eq"] = false },
            ["type"] = interruptible ? "bid" : "on-demand",
            ["order"] = new JsonArray(new JsonArray("dph_total", "asc")),
            ["limit"] = 50,
        };
        using var found = await ProviderHttp.SendAsync(Client, HttpMethod.Get, Url($"api/v0/bundles/?q={Uri.EscapeDataString(query.ToJsonString())}"), Key, null, "Vast.ai", cancellationToken);
        if (!found!.RootElement.TryGetProperty("offers", out var offers) || offers.ValueKind != JsonValueKind.Array)
        {
            throw new ProviderException("Vast.ai answered the offer search without an offers list", transient: true);
        }

        // The server filtered already; the cap and the reliability floor are checked again here, where they are enforced.
        return offers.EnumerateArray()
            .Select(o => (Offer: o, Price: OfferPrice(o, interruptible), Gpu: ProviderHttp.Text(o, "gpu_name") ?? "", Reliability: Reliability(o)))
            .Where(o => o.Price is { } p && p > 0 && p <= request.MaxUsdPerHour && o.Reliability >= reliability && gpus.Contains(o.Gpu, StringComparer.OrdinalIgnoreCase))
            .OrderBy(o => gpus.FindIndex(g => g.Equals(o.Gpu, StringComparison.OrdinalIgnoreCase)))
            .ThenBy(o => o.Price)
            .Select(o => new Offer(o.Offer.GetProperty("id").GetRawText(), o.Price!.Value, interruptible, $"{o.Gpu} (reliability {o.Reliability.ToString("0.###", CultureInfo.InvariantCulture)})"))
            .FirstOrDefault();
    }

    protected override async Task<InstanceRecord> CreateAsync(ExecutionRequest request, Offer offer, CancellationToken cancellationToken)
    {
        var spec = request.Job.Spec;
        var env = new JsonObject();
        foreach (var (name, value) in request.Environment)
        {
            env[name] = value;
        }

        var body = new JsonObject
        {
            ["client_id"] = "me",
            ["image"] = spec.Image,
            ["env"] = env,
            ["disk"] = spec.Resources?.DiskGb ?? 20,
            ["label"] = request.Label,
            ["runtype"] = "args",
            ["args"] = new JsonArray([.. (spec.Command ?? []).Select(a => (JsonNode)a)]),
        };
        if (offer.Interruptible)
        {
            body["price"] = offer.PricePerHour;
        }

        try
        {
            using var created = await ProviderHttp.SendAsync(Client, HttpMethod.Put, Url($"api/v0/asks/{offer.Id}/"), Key, body, "Vast.ai", cancellationToken);
            var root = created!.RootElement;
            if (root.TryGetProperty("success", out var success) && success.ValueKind == JsonValueKind.True && root.TryGetProperty("new_contract", out var contract))
            {
                return Record(request, contract.GetRawText());
            }

            throw new ProviderException($"Vast.ai did not create the instance: {ProviderHttp.Text(root, "msg") ?? ProviderHttp.Text(root, "error") ?? "no reason given"}", transient: true);
        }
        catch (Exception ex) when (ex is ProviderException or OperationCanceledException)
        {
            // The create may have worked on Vast.ai's side even though we never saw the answer.
            try
            {
                await DestroyLabelledAsync(request.Label, CancellationToken.None);
            }
            catch (ProviderException check)
            {
                // The pending record stays with the job: the rescuer looks again.
                LogOrphanCheckFailed(logger, request.Label, check.Message);
                throw new ProviderException($"{ex.Message}; and checking for a half-made instance failed", transient: true) { MachineMayRemain = true };
            }

            throw ex as ProviderException ?? new ProviderException("creating the Vast.ai instance timed out", transient: true);
        }
    }

    protected override async Task<MachineStatus> PollAsync(InstanceRecord instance, CancellationToken cancellationToken)
    {
        using var found = await ProviderHttp.SendAsync(Client, HttpMethod.Get, Url($"api/v0/instances/{instance.Id}/"), Key, null, "Vast.ai", cancellationToken, notFoundIsNull: true);
        if (found is null || !found.RootElement.TryGetProperty("instances", out var item) || item.ValueKind != JsonValueKind.Object)
        {
            return new MachineStatus(MachinePhase.Gone, "the instance no longer exists");
        }

        var actual = ProviderHttp.Text(item, "actual_status");
        var intended = ProviderHttp.Text(item, "intended_status");
        var message = ProviderHttp.Text(item, "status_msg") ?? "";
        var price = ProviderHttp.Price(item, "dph_total");
        if (actual is "offline" or "unknown")
        {
            var now = Time.GetUtcNow();
            lock (_gate)
            {
                var since = _offlineSince.TryGetValue(instance.Id, out var first) ? first : _offlineSince[instance.Id] = now;
                return now - since >= Vast.OfflineGrace
                    ? new MachineStatus(MachinePhase.Gone, $"the host has been {actual} since {since:O}")
                    : new MachineStatus(MachinePhase.Running, $"{actual} for now") { PricePerHour = price };
            }
        }

        lock (_gate)
        {
            _offlineSince.Remove(instance.Id);
        }

        // The worker never stops an instance, it destroys it: a stop it did not ask for is an outbid or a host's doing.
        if (intended == "stopped" || actual == "stopped")
        {
            return new MachineStatus(MachinePhase.Gone, $"stopped by Vast.ai ({message})");
        }

        return actual switch
        {
            "running" => new MachineStatus(MachinePhase.Running, "running") { PricePerHour = price },
            "exited" => new MachineStatus(MachinePhase.Exited, $"exited: {message}"),
            _ => new MachineStatus(MachinePhase.Starting, actual ?? "provisioning"),
        };
    }

    protected override InstanceRecord Pending(ExecutionRequest request) => Record(request, "");

    protected override async Task DestroyAsync(InstanceRecord instance, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(instance);
        if (instance.Id.Length == 0)
        {
            await DestroyLabelledAsync(instance.Scope!, cancellationToken);
            return;
        }

        await DestroyIdAsync(instance.Id, cancellationToken);
        lock (_gate)
        {
            _offlineSince.Remove(instance.Id);
        }
    }

    private async Task DestroyIdAsync(string id, CancellationToken cancellationToken)
    {
        using var _ = await ProviderHttp.SendAsync(Client, HttpMethod.Delete, Url($"api/v0/instances/{id}/"), Key, null, "Vast.ai", cancellationToken, notFoundIsNull: true);
        LogDestroyed(logger, id);
    }

    private async Task DestroyLabelledAsync(string label, CancellationToken cancellationToken)
    {
        using var listed = await ProviderHttp.SendAsync(Client, HttpMethod.Get, Url("api/v0/instances/"), Key, null, "Vast.ai", cancellationToken);
        if (listed!.RootElement.TryGetProperty("instances", out var instances) && instances.ValueKind == JsonValueKind.Array)
        {
            foreach (var instance in instances.EnumerateArray().Where(i => ProviderHttp.Text(i, "label") == label))
            {
                await DestroyIdAsync(instance.GetProperty("id").GetRawText(), cancellationToken);
            }
        }
    }

    private static InstanceRecord Record(ExecutionRequest request, string id) =>
        new() { Kind = Kind, Id = id, Scope = request.Label, JobId = request.Job.Id, Attempt = request.Attempt };

    private static decimal? OfferPrice(JsonElement offer, bool interruptible) =>
        interruptible && ProviderHttp.Price(offer, "min_bid") is { } bid and > 0 ? bid : ProviderHttp.Price(offer, "dph_total");

    private static double Reliability(JsonElement offer) =>
        offer.TryGetProperty("reliability2", out var r) && r.ValueKind == JsonValueKind.Number ? r.GetDouble()
        : offer.TryGetProperty("reliability", out var legacy) && legacy.ValueKind == JsonValueKind.Number ? legacy.GetDouble() : 0;

    private HttpClient Client => clients.CreateClient(HttpClientName);

    private string Key => Vast.ApiKey ?? throw new ProviderException("no Vast.ai API key is configured", transient: false);

    private Uri Url(string path) => new(Vast.BaseUrl, path);

    [LoggerMessage(Level = LogLevel.Information, Message = "Destroyed Vast.ai instance {InstanceId}.")]
    private static partial void LogDestroyed(ILogger logger, string instanceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not check Vast.ai for an instance labelled {Label} after a failed create: {Reason}")]
    private static partial void LogOrphanCheckFailed(ILogger logger, string label, string reason);
}
