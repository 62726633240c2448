using System.Text.Json;
using GoblinAspire.ModelRegistry.Artifacts;
using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Storage;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Operations;

public sealed record RegisteredArtifact(ModelVersion Version, string RunId, string ArtifactPath, long Size, string Sha256);

public sealed record ProductionModel(ModelVersion Version, string ArtifactPath, string? Sha256, long? Size, IReadOnlyList<Metric> Metrics);

/// <summary>
/// The platform's model operations on top of MLflow's registry (the seeds' registry API): register an artifact with
/// its metrics and params in one call, promote behind metric gates, roll back, and find the production model.
/// </summary>
public sealed class ModelOperations(TrackingStore tracking, RegistryStore registry, IArtifactStore artifacts, IOptions<ModelRegistryOptions> options, TimeProvider time)
{
    public const string Sha256Tag = "goblin.sha256";
    public const string SizeTag = "goblin.size_bytes";
    public const string ArtifactTag = "goblin.artifact_path";

    /// <summary>
    /// Stores the artifact under a staging path first, then records run, metrics, params and version, then moves the
    /// artifact to <c>models/{org}/{name}/{version}/{artifact}</c>. Any failure removes what was made, so a version
    /// never points at missing bytes and no stray bytes stay behind.
    /// </summary>
    public async Task<RegisteredArtifact> RegisterAsync(
        string name,
        string artifactName,
        Stream content,
        IReadOnlyDictionary<string, double> metrics,
        IReadOnlyDictionary<string, string> parameters,
        string? description,
        string actor,
        CancellationToken cancellationToken)
    {
        Validation.Name(name, "name");
        if (ArtifactPath.Normalize(artifactName).Contains('/', StringComparison.Ordinal))
        {
            throw MlflowException.Invalid("The artifact name must be a file name, without folders.");
        }

        var metricList = metrics.Select(m => new Metric(Validation.Key(m.Key, "Metric"), m.Value, 0, 0)).ToList();
        var parameterList = parameters.Select(p => new KeyValue(Validation.Key(p.Key, "Param"), Validation.Value(p.Value, "Param", p.Key, Validation.MaxParamValueLength))).ToList();
        await EnsureModelAsync(name, cancellationToken);

        var stagingFolder = $"staging/{Guid.NewGuid():N}";
        var staging = $"{stagingFolder}/{artifactName}";
        var stored = await artifacts.WriteAsync(staging, content, cancellationToken);
        ModelVersion? version = null;
        string? finalPath = null;
        try
        {
            var experiment = await EnsureExperimentAsync($"models/{name}", cancellationToken);
            var now = time.GetUtcNow().ToUnixTimeMilliseconds();
            var run = await tracking.CreateRunAsync(experiment, actor, now, $"register {name}", [new KeyValue("goblin.model", name)], cancellationToken);
            var runId = run.Info.RunId;
            await tracking.LogBatchAsync(runId, metricList.Select(m => m with { Timestamp = now }).ToList(), parameterList, [new KeyValue(Sha256Tag, stored.Sha256Hex)], cancellationToken);
            await tracking.UpdateRunAsync(runId, "FINISHED", now, null, cancellationToken);

            var organization = options.Value.Organization;
            version = await registry.CreateVersionAsync(
                name,
                $"{Api.ArtifactEndpoints.MlflowArtifactsScheme}models/{organization}/{Uri.EscapeDataString(name)}/{RegistryStore.VersionPlaceholder}/{artifactName}",
                sourceIsTemplate: true,
                runId,
                null,
                description,
                actor,
                [new KeyValue(Sha256Tag, stored.Sha256Hex), new KeyValue(SizeTag, stored.Size.ToString(System.Globalization.CultureInfo.InvariantCulture))],
                cancellationToken);
            finalPath = LayoutPath(organization, name, version.Version, artifactName);
            await artifacts.MoveAsync(staging, finalPath, cancellationToken);
            await artifacts.DeleteAsync(stagingFolder, cancellationToken);
            await registry.SetVersionTagAsync(name, version.Version, new KeyValue(ArtifactTag, finalPath), cancellationToken);
            return new RegisteredArtifact(await registry.GetVersionAsync(name, version.Version, CancellationToken.None), runId, finalPath, stored.Size, stored.Sha256Hex);
        }
        catch
        {
            await artifacts.DeleteAsync(stagingFolder, CancellationToken.None);
            if (version is not null)
            {
                await registry.DeleteVersionAsync(name, version.Version, CancellationToken.None);
                if (finalPath is not null)
                {
                    await artifacts.DeleteAsync(finalPath, CancellationToken.None);
                }
            }

            throw;
        }
    }

    /// <summary><c>models/{org}/{model_name}/{version}/{artifact}</c>; model names may contain '/', which stay folders.</summary>
    public static string LayoutPath(string organization, string name, int version, string artifact) =>
        $"models/{organization}/{Uri.EscapeDataString(name)}/{Versions.Format(version)}/{artifact}";

    public async Task SetGatesAsync(string name, IReadOnlyList<string> conditions, CancellationToken cancellationToken)
    {
        var gates = conditions.Select(PromotionGate.Parse).Select(g => g.ToString()).ToList();
        await registry.SetModelTagAsync(name, new KeyValue(PromotionGate.Tag, JsonSerializer.Serialize(gates, RegistryJson.Default.ListString)), cancellationToken);
    }

    public async Task<IReadOnlyList<PromotionGate>> GatesAsync(string name, CancellationToken cancellationToken)
    {
        var model = await registry.GetModelAsync(name, cancellationToken);
        var tag = model.Tags.FirstOrDefault(t => t.Key == PromotionGate.Tag);
        return tag is null ? [] : (JsonSerializer.Deserialize(tag.Value, RegistryJson.Default.ListString) ?? []).Select(PromotionGate.Parse).ToList();
    }

    /// <summary>Checks every gate against the version's run metrics (latest value per metric).</summary>
    public async Task<IReadOnlyList<GateResult>> CheckGatesAsync(string name, int version, CancellationToken cancellationToken)
    {
        var gates = await GatesAsync(name, cancellationToken);
        if (gates.Count == 0)
        {
            return [];
        }

        var modelVersion = await registry.GetVersionAsync(name, version, cancellationToken);
        var metrics = modelVersion.RunId is { Length: > 0 } runId
            ? (await tracking.GetRunAsync(runId, cancellationToken)).Metrics.ToDictionary(m => m.Key, m => m.Value)
            : [];
        return gates.Select(g =>
        {
            double? actual = metrics.TryGetValue(g.Metric, out var value) ? value : null;
            return new GateResult(g.ToString(), actual, g.Holds(actual));
        }).ToList();
    }

    /// <summary>Promotes behind the gates: 409 FAILED_PRECONDITION naming the failed conditions when any fails.</summary>
    public async Task<ModelVersion> PromoteAsync(string name, int version, string actor, CancellationToken cancellationToken)
    {
        var results = await CheckGatesAsync(name, version, cancellationToken);
        var failed = results.Where(r => !r.Passed).ToList();
        if (failed.Count > 0)
        {
            throw new PromotionRefusedException(name, version, failed);
        }

        return await registry.TransitionStageAsync(name, version, ModelStages.Production, archiveExisting: true, actor, cancellationToken);
    }

    /// <summary>Puts an earlier version back into production at once; gates are not checked for a rollback.</summary>
    public Task<ModelVersion> RollbackAsync(string name, int version, string actor, CancellationToken cancellationToken) =>
        registry.TransitionStageAsync(name, version, ModelStages.Production, archiveExisting: true, actor, cancellationToken);

    public async Task<ProductionModel> GetProductionAsync(string name, CancellationToken cancellationToken)
    {
        ModelVersion version;
        try
        {
            version = await registry.GetVersionByAliasAsync(name, RegistryStore.ProductionAlias, cancellationToken);
        }
        catch (MlflowException ex) when (ex.ErrorCode == ErrorCodes.ResourceDoesNotExist && ex.Message.Contains("alias", StringComparison.Ordinal))
        {
            throw MlflowException.NotFound($"Registered Model with name={name} has no production version.");
        }

        var metrics = version.RunId is { Length: > 0 } runId ? (await tracking.GetRunAsync(runId, cancellationToken)).Metrics : [];
        var path = version.Tags.FirstOrDefault(t => t.Key == ArtifactTag)?.Value ?? Api.ArtifactEndpoints.StorePath(version.Source) ?? "";
        var sha256 = version.Tags.FirstOrDefault(t => t.Key == Sha256Tag)?.Value;
        var size = long.TryParse(version.Tags.FirstOrDefault(t => t.Key == SizeTag)?.Value, out var bytes) ? bytes : (long?)null;
        return new ProductionModel(version, path, sha256, size, metrics);
    }

    private async Task EnsureModelAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            await registry.CreateModelAsync(name, null, [], cancellationToken);
        }
        catch (MlflowException ex) when (ex.ErrorCode == ErrorCodes.ResourceAlreadyExists)
        {
        }
    }

    private async Task<long> EnsureExperimentAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            return (await tracking.GetExperimentByNameAsync(name, cancellationToken)).Id;
        }
        catch (MlflowException ex) when (ex.ErrorCode == ErrorCodes.ResourceDoesNotExist)
        {
            try
            {
                return await tracking.CreateExperimentAsync(name, null, [], cancellationToken);
            }
            catch (MlflowException again) when (again.ErrorCode == ErrorCodes.ResourceAlreadyExists)
            {
                return (await tracking.GetExperimentByNameAsync(name, cancellationToken)).Id;
            }
        }
    }
}

/// <summary>A promotion refused by its gates; answered 409 with the failed conditions.</summary>
public sealed class PromotionRefusedException(string name, int version, IReadOnlyList<GateResult> failed)
    : Exception($"Model {name} version {version} does not meet its promotion gates: {string.Join("; ", failed.Select(f => $"{f.Condition} (actual {(f.Actual is { } a ? a.ToString(System.Globalization.CultureInfo.InvariantCulture) : "missing")})"))}.")
{
    public IReadOnlyList<GateResult> Failed { get; } = failed;
}

[System.Text.Json.Serialization.JsonSerializable(typeof(List<string>))]
internal sealed partial class RegistryJson : System.Text.Json.Serialization.JsonSerializerContext;
