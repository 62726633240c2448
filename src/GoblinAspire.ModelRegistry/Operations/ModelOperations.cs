using System.Text.Json;
using GoblinAspire.ModelRegistry.Artifacts;
using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Storage;
using Microsoft.Extensions.Options;
using Npgsql;

namespace GoblinAspire.ModelRegistry.Operations;

public sealed record RegisteredArtifact(ModelVersion Version, string RunId, string ArtifactPath, long Size, string Sha256);

public sealed record ProductionModel(ModelVersion Version, string ArtifactPath, string? Sha256, long? Size, IReadOnlyList<Metric> Metrics);

/// <summary>
/// The platform's model operations on top of MLflow's registry (the seeds' registry API): register an artifact with
/// its metrics and params in one call, promote behind metric gates, roll back, and find the production model.
/// </summary>
public sealed partial class ModelOperations(
    NpgsqlDataSource dataSource,
    TrackingStore tracking,
    RegistryStore registry,
    IArtifactStore artifacts,
    IOptions<ModelRegistryOptions> options,
    ILogger<ModelOperations> logger)
{
    public const string Sha256Tag = "goblin.sha256";
    public const string SizeTag = "goblin.size_bytes";
    public const string ArtifactTag = "goblin.artifact_path";

    /// <summary>
    /// Stores the artifact under a staging path first, reading the whole upload before anything is written to the
    /// database: an upload that breaks off part-way leaves no model, run or version behind. Then, in one transaction,
    /// records the run with its metrics and params, the model when it is new, and the version; moves the artifact to
    /// <c>models/{org}/{name}/{version}/{artifact}</c>; and commits. A failure at any step rolls all of it back and
    /// removes the bytes, so a version never points at missing bytes and a failed registration leaves nothing.
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

        var stagingFolder = $"staging/{Guid.NewGuid():N}";
        var staging = $"{stagingFolder}/{artifactName}";
        string? finalPath = null;
        var keepFinal = false;
        try
        {
            var stored = await artifacts.WriteAsync(staging, content, cancellationToken);
            var organization = options.Value.Organization;
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var runId = await tracking.RecordFinishedRunAsync(
                connection, transaction, $"models/{name}", actor, $"register {name}", metricList, parameterList,
                [new KeyValue("goblin.model", name), new KeyValue(Sha256Tag, stored.Sha256Hex)], cancellationToken);
            await registry.EnsureModelAsync(connection, transaction, name, cancellationToken);
            var version = await registry.CreateVersionAsync(
                connection,
                transaction,
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
            await RegistryStore.UpsertVersionTagAsync(connection, transaction, name, version.Version, new KeyValue(ArtifactTag, finalPath), cancellationToken);

            // The bytes move into place before the version is committed (its model row locked meanwhile): no reader
            // ever sees the version without its bytes. A crash in between leaves only unreferenced bytes at a path
            // the next registration of this number overwrites.
            await artifacts.MoveAsync(staging, finalPath, cancellationToken);
            keepFinal = true;
            try
            {
                // Committed whatever the caller's request does meanwhile: with the bytes in place, stopping now
                // would only make work to undo.
                await transaction.CommitAsync(CancellationToken.None);
            }
            catch (NpgsqlException commitFailure)
            {
                // The answer to a commit can be lost after the commit took effect: then the version exists and its
                // bytes must stay. They go only when the version surely is not there.
                switch (await VersionCommittedAsync(name, version.Version))
                {
                    case false:
                        keepFinal = false;
                        throw;
                    case null:
                        LogCommitUnknown(logger, name, version.Version, commitFailure);
                        throw new MlflowException(ErrorCodes.InternalError, $"Registering {name}: the commit failed and whether version {Versions.Format(version.Version)} exists could not be read back. Look it up before registering again.");
                }
            }

            await DeleteQuietlyAsync(stagingFolder);
            return new RegisteredArtifact(await registry.GetVersionAsync(name, version.Version, CancellationToken.None), runId, finalPath, stored.Size, stored.Sha256Hex);
        }
        catch
        {
            await DeleteQuietlyAsync(stagingFolder);
            if (finalPath is not null && !keepFinal)
            {
                await DeleteQuietlyAsync(finalPath);
            }

            throw;
        }
    }

    /// <summary>Whether the version was committed; null when even that cannot be read.</summary>
    private async Task<bool?> VersionCommittedAsync(string name, int version)
    {
        try
        {
            return await registry.VersionExistsAsync(name, version, CancellationToken.None);
        }
        catch (NpgsqlException)
        {
            return null;
        }
    }

    /// <summary>
    /// Removes staged or orphaned bytes, even when the caller has gone (hence no cancellation), and never throws:
    /// a failed cleanup must not hide the failure that made it necessary, and the bytes are unreferenced either way.
    /// </summary>
    private async Task DeleteQuietlyAsync(string path)
    {
        try
        {
            await artifacts.DeleteAsync(path, CancellationToken.None);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or HttpRequestException or MlflowException)
        {
            LogCleanupFailed(logger, path, ex);
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

    /// <summary>
    /// Promotes behind the gates: 409 FAILED_PRECONDITION naming the failed conditions when any fails, and 409
    /// FAILED_PRECONDITION when the version's artifact is missing from the store. A refused promotion changes nothing.
    /// </summary>
    public async Task<ModelVersion> PromoteAsync(string name, int version, string actor, CancellationToken cancellationToken)
    {
        await RequireArtifactAsync(name, version, cancellationToken);
        var results = await CheckGatesAsync(name, version, cancellationToken);
        var failed = results.Where(r => !r.Passed).ToList();
        if (failed.Count > 0)
        {
            throw new PromotionRefusedException(name, version, failed);
        }

        return await registry.TransitionStageAsync(name, version, ModelStages.Production, archiveExisting: true, actor, cancellationToken);
    }

    /// <summary>
    /// Puts an earlier version back into production at once; gates are not checked for a rollback, but its artifact
    /// must still be there, or production would point at nothing.
    /// </summary>
    public async Task<ModelVersion> RollbackAsync(string name, int version, string actor, CancellationToken cancellationToken)
    {
        await RequireArtifactAsync(name, version, cancellationToken);
        return await registry.TransitionStageAsync(name, version, ModelStages.Production, archiveExisting: true, actor, cancellationToken);
    }

    /// <summary>
    /// Refuses (409 FAILED_PRECONDITION) a version whose artifact this registry stores but cannot find. A version
    /// whose source lies outside this registry's store (s3://, a run elsewhere) cannot be checked here and passes.
    /// </summary>
    private async Task RequireArtifactAsync(string name, int version, CancellationToken cancellationToken)
    {
        var modelVersion = await registry.GetVersionAsync(name, version, cancellationToken);
        if (ArtifactPathOf(modelVersion) is { } path && await artifacts.GetAsync(path, cancellationToken) is null)
        {
            throw new MlflowException(
                ErrorCodes.FailedPrecondition,
                $"Model {name} version {Versions.Format(version)} cannot be moved to {ModelStages.Production}: its artifact '{path}' is missing from the artifact store.");
        }
    }

    private static string? ArtifactPathOf(ModelVersion version) =>
        version.Tags.FirstOrDefault(t => t.Key == ArtifactTag)?.Value ?? Api.ArtifactEndpoints.StorePath(version.Source);

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
        var path = ArtifactPathOf(version) ?? "";
        var sha256 = version.Tags.FirstOrDefault(t => t.Key == Sha256Tag)?.Value;
        var size = long.TryParse(version.Tags.FirstOrDefault(t => t.Key == SizeTag)?.Value, out var bytes) ? bytes : (long?)null;
        return new ProductionModel(version, path, sha256, size, metrics);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not remove {Path} left by a registration; the bytes are unreferenced")]
    private static partial void LogCleanupFailed(ILogger logger, string path, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Registering {Name} version {Version}: the commit failed and whether it took effect could not be read back; its artifact is kept")]
    private static partial void LogCommitUnknown(ILogger logger, string name, int version, Exception exception);
}

/// <summary>A promotion refused by its gates; answered 409 with the failed conditions.</summary>
public sealed class PromotionRefusedException(string name, int version, IReadOnlyList<GateResult> failed)
    : Exception($"Model {name} version {version} does not meet its promotion gates: {string.Join("; ", failed.Select(f => $"{f.Condition} (actual {(f.Actual is { } a ? a.ToString(System.Globalization.CultureInfo.InvariantCulture) : "missing")})"))}.")
{
    public IReadOnlyList<GateResult> Failed { get; } = failed;
}

[System.Text.Json.Serialization.JsonSerializable(typeof(List<string>))]
internal sealed partial class RegistryJson : System.Text.Json.Serialization.JsonSerializerContext;
