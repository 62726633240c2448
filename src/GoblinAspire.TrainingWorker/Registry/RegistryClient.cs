using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;

namespace GoblinAspire.TrainingWorker.Registry;

/// <summary>The registry refused or failed a call; <see cref="ErrorCode"/> is MLflow's or GCS's reason.</summary>
public sealed class RegistryException(HttpStatusCode status, string? errorCode, string message) : Exception(message)
{
    public HttpStatusCode Status { get; } = status;

    public string? ErrorCode { get; } = errorCode;

    /// <summary>The registry is down or overloaded rather than refusing: worth trying again later.</summary>
    public bool IsTransient => Status is 0 or HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)Status >= 500;
}

public sealed record MlflowRun(string RunId, string ExperimentId, string ArtifactUri, string Status);

public sealed record SignedUrl(Uri Url, DateTimeOffset ExpiresAt);

/// <summary>
/// The worker's calls to the ModelRegistry: MLflow's REST API for experiments, runs and model versions, and the
/// registry's storage API for checkpoint buckets and signed URLs. Over service discovery, with the standard
/// resilience handler, like every other call between services.
/// </summary>
public sealed class RegistryClient(IHttpClientFactory clients, IOptions<TrainingWorkerOptions> options, TimeProvider time)
{
    public const string HttpClientName = "registry";
    private const string Mlflow = "api/2.0/mlflow/";

    // Experiments and buckets are never deleted under a running platform, so one look-up per process is enough.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _experiments = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _buckets = new(StringComparer.Ordinal);

    public async Task<string> EnsureExperimentAsync(string name, CancellationToken cancellationToken)
    {
        if (_experiments.TryGetValue(name, out var known))
        {
            return known;
        }

        var id = await FindOrCreateExperimentAsync(name, cancellationToken);
        _experiments[name] = id;
        return id;
    }

    private async Task<string> FindOrCreateExperimentAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            using var found = await SendAsync(HttpMethod.Get, $"{Mlflow}experiments/get-by-name?experiment_name={Uri.EscapeDataString(name)}", null, cancellationToken);
            return found.RootElement.GetProperty("experiment").GetProperty("experiment_id").GetString()!;
        }
        catch (RegistryException ex) when (ex.ErrorCode == "RESOURCE_DOES_NOT_EXIST")
        {
            try
            {
                using var created = await SendAsync(HttpMethod.Post, $"{Mlflow}experiments/create", new JsonObject { ["name"] = name }, cancellationToken);
                return created.RootElement.GetProperty("experiment_id").GetString()!;
            }
            catch (RegistryException again) when (again.ErrorCode == "RESOURCE_ALREADY_EXISTS")
            {
                return await FindOrCreateExperimentAsync(name, cancellationToken);
            }
        }
    }

    public async Task<MlflowRun> CreateRunAsync(string experimentId, string runName, IReadOnlyDictionary<string, string> tags, CancellationToken cancellationToken)
    {
        var tagArray = new JsonArray();
        foreach (var (key, value) in tags)
        {
            tagArray.Add(new JsonObject { ["key"] = key, ["value"] = value });
        }

        using var created = await SendAsync(HttpMethod.Post, $"{Mlflow}runs/create", new JsonObject
        {
            ["experiment_id"] = experimentId,
            ["run_name"] = runName,
            ["start_time"] = time.GetUtcNow().ToUnixTimeMilliseconds(),
            ["tags"] = tagArray,
        }, cancellationToken);
        return ReadRun(created.RootElement.GetProperty("run"));
    }

    public async Task<MlflowRun> GetRunAsync(string runId, CancellationToken cancellationToken)
    {
        using var found = await SendAsync(HttpMethod.Get, $"{Mlflow}runs/get?run_id={Uri.EscapeDataString(runId)}", null, cancellationToken);
        return ReadRun(found.RootElement.GetProperty("run"));
    }

    /// <summary>Ends the run with the worker's verdict unless the job already ended it itself (its own report stands).</summary>
    public async Task EndRunAsync(string runId, string status, CancellationToken cancellationToken)
    {
        var run = await GetRunAsync(runId, cancellationToken);
        if (run.Status != "RUNNING")
        {
            return;
        }

        using var _ = await SendAsync(HttpMethod.Post, $"{Mlflow}runs/update", new JsonObject
        {
            ["run_id"] = runId,
            ["status"] = status,
            ["end_time"] = time.GetUtcNow().ToUnixTimeMilliseconds(),
        }, cancellationToken);
    }

    /// <summary>Whether <paramref name="path"/> is a file or a non-empty folder among the run's artifacts.</summary>
    public async Task<bool> ArtifactExistsAsync(string runId, string path, CancellationToken cancellationToken)
    {
        var slash = path.LastIndexOf('/');
        var parent = slash < 0 ? "" : path[..slash];
        using var listing = await SendAsync(HttpMethod.Get, $"{Mlflow}artifacts/list?run_id={Uri.EscapeDataString(runId)}&path={Uri.EscapeDataString(parent)}", null, cancellationToken);
        return listing.RootElement.TryGetProperty("files", out var files)
            && files.EnumerateArray().Any(f => f.GetProperty("path").GetString() == path);
    }

    /// <summary>Registers the run's artifact as a new version of <paramref name="model"/>, creating the model if needed.</summary>
    public async Task<string> RegisterVersionAsync(string model, MlflowRun run, string artifact, string? stage, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(run);
        try
        {
            using var _ = await SendAsync(HttpMethod.Post, $"{Mlflow}registered-models/create", new JsonObject { ["name"] = model }, cancellationToken);
        }
        catch (RegistryException ex) when (ex.ErrorCode == "RESOURCE_ALREADY_EXISTS")
        {
            // Registered by an earlier job: a new version is what this adds.
        }

        using var created = await SendAsync(HttpMethod.Post, $"{Mlflow}model-versions/create", new JsonObject
        {
            ["name"] = model,
            ["source"] = $"{run.ArtifactUri.TrimEnd('/')}/{artifact}",
            ["run_id"] = run.RunId,
        }, cancellationToken);
        var version = created.RootElement.GetProperty("model_version").GetProperty("version").GetString()!;
        if (stage is not null)
        {
            using var _ = await SendAsync(HttpMethod.Post, $"{Mlflow}model-versions/transition-stage", new JsonObject
            {
                ["name"] = model,
                ["version"] = version,
                ["stage"] = stage,
                ["archive_existing_versions"] = false,
            }, cancellationToken);
        }

        return version;
    }

    /// <summary>Creates the bucket checkpoints live in, once; an existing one is fine.</summary>
    public async Task EnsureBucketAsync(string bucket, CancellationToken cancellationToken)
    {
        if (_buckets.ContainsKey(bucket))
        {
            return;
        }

        try
        {
            using var _ = await SendAsync(HttpMethod.Post, "storage/v1/b", new JsonObject { ["name"] = bucket }, cancellationToken);
        }
        catch (RegistryException ex) when (ex.Status == HttpStatusCode.Conflict)
        {
            // Exists already.
        }

        _buckets[bucket] = true;
    }

    /// <summary>
    /// A V4 signed URL for one object, signed for the host jobs use (<see cref="TrainingWorkerOptions.JobRegistryUrl"/>),
    /// which may differ from the worker's own address of the registry.
    /// </summary>
    public async Task<SignedUrl> SignAsync(string bucket, string objectName, string method, TimeSpan lifetime, CancellationToken cancellationToken)
    {
        var jobBase = options.Value.JobRegistryUrl;
        using var document = await SendAsync(HttpMethod.Post, "api/v1/storage/signed-urls", new JsonObject
        {
            ["bucket"] = bucket,
            ["object"] = objectName,
            ["method"] = method,
            ["expires_in"] = (long)lifetime.TotalSeconds,
        }, cancellationToken, jobBase?.Authority);
        var url = new Uri(document.RootElement.GetProperty("url").GetString()!);
        if (jobBase is not null)
        {
            // The host is signed; the scheme is not, and a public address may be HTTPS in front of the registry.
            url = new UriBuilder(url) { Scheme = jobBase.Scheme, Port = jobBase.Port }.Uri;
        }

        return new SignedUrl(url, DateTimeOffset.Parse(document.RootElement.GetProperty("expires_at").GetString()!, CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// A token for one run (<c>POST /api/v1/run-tokens</c>), for the job to send as <c>MLFLOW_TRACKING_TOKEN</c>; null when
    /// the worker itself has no registry token (a registry run without one).
    /// </summary>
    public async Task<string?> RunTokenAsync(string runId, TimeSpan lifetime, CancellationToken cancellationToken)
    {
        if (options.Value.RegistryToken is not { Length: > 0 })
        {
            return null;
        }

        using var document = await SendAsync(HttpMethod.Post, "api/v1/run-tokens", new JsonObject
        {
            ["run_id"] = runId,
            ["ttl_seconds"] = (long)lifetime.TotalSeconds,
        }, cancellationToken);
        return document.RootElement.GetProperty("token").GetString();
    }

    private static MlflowRun ReadRun(JsonElement run)
    {
        var info = run.GetProperty("info");
        return new MlflowRun(info.GetProperty("run_id").GetString()!, info.GetProperty("experiment_id").GetString()!, info.GetProperty("artifact_uri").GetString()!, info.GetProperty("status").GetString()!);
    }

    private async Task<JsonDocument> SendAsync(HttpMethod method, string path, JsonObject? body, CancellationToken cancellationToken, string? hostOverride = null)
    {
        var client = clients.CreateClient(HttpClientName);
        using var request = new HttpRequestMessage(method, new Uri(options.Value.RegistryUrl, path));
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, new MediaTypeHeaderValue("application/json"));
        }

        if (hostOverride is not null)
        {
            request.Headers.Host = hostOverride;
        }

        HttpResponseMessage response;
        try
        {
            response = await client.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new RegistryException(0, null, $"the registry is unreachable: {ex.Message}");
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            JsonDocument? document = null;
            try
            {
                document = text.Length == 0 ? JsonDocument.Parse("{}") : JsonDocument.Parse(text);
            }
            catch (JsonException)
            {
                throw new RegistryException(response.StatusCode, null, $"the registry answered {(int)response.StatusCode} with a body that is not JSON");
            }

            if (response.IsSuccessStatusCode)
            {
                return document;
            }

            using (document)
            {
                var root = document.RootElement;
                var code = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error_code", out var c) ? c.GetString()
                    : root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object && e.TryGetProperty("errors", out var errs) && errs.GetArrayLength() > 0 && errs[0].TryGetProperty("reason", out var r) ? r.GetString()
                    : null;
                var message = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("message", out var m) ? m.GetString()
                    : root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error", out var e2) && e2.ValueKind == JsonValueKind.Object && e2.TryGetProperty("message", out var m2) ? m2.GetString()
                    : null;
                throw new RegistryException(response.StatusCode, code, $"the registry answered {(int)response.StatusCode} {code}: {message}");
            }
        }
    }
}
