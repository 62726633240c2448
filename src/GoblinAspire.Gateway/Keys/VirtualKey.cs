namespace GoblinAspire.Gateway.Keys;

/// <summary>A virtual API key as stored: never the key itself, only its hash and a short prefix to recognise it by.</summary>
public sealed record VirtualKey(
    Guid Id,
    string KeyPrefix,
    string Name,
    string Owner,
    string Team,
    IReadOnlyList<string> AllowedModels,
    int? Rpm,
    int? Tpm,
    int? MaxParallel,
    decimal? BudgetUsd,
    string? BudgetPeriod,
    DateTimeOffset? ExpiresAt,
    bool Disabled,
    DateTimeOffset CreatedAt,
    DateTimeOffset? RevokedAt)
{
    /// <summary>The secret itself: set only on the value returned by a key's creation, the one time it is shown.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("key")]
    public string? Secret { get; init; }

    public bool AllowsModel(string model) => AllowedModels.Count == 0 || AllowedModels.Contains(model, StringComparer.Ordinal);

    public bool IsUsable(DateTimeOffset now) => !Disabled && RevokedAt is null && (ExpiresAt is null || ExpiresAt > now);
}

/// <summary>What an admin may set on a key; null leaves a field as it is on update.</summary>
public sealed record KeySettings(
    string? Name,
    string? Owner,
    string? Team,
    IReadOnlyList<string>? AllowedModels,
    int? Rpm,
    int? Tpm,
    int? MaxParallel,
    decimal? BudgetUsd,
    string? BudgetPeriod,
    DateTimeOffset? ExpiresAt,
    bool? Disabled,
    string? Key = null);
