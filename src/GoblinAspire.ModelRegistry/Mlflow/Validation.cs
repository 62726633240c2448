using System.Text.RegularExpressions;

namespace GoblinAspire.ModelRegistry.Mlflow;

/// <summary>MLflow's limits and name rules, with its error texts.</summary>
public static partial class Validation
{
    public const int MaxKeyLength = 250;
    public const int MaxParamValueLength = 6000;
    public const int MaxTagValueLength = 8000;
    public const int MaxMetricsPerBatch = 1000;
    public const int MaxParamsTagsPerBatch = 100;
    public const int MaxEntitiesPerBatch = 1000;
    public const int MaxNameLength = 256;
    public const int MaxDescriptionLength = 5000;

    public static string Key(string key, string what)
    {
        if (key.Length == 0)
        {
            throw MlflowException.Missing("key");
        }

        if (key.Length > MaxKeyLength)
        {
            throw MlflowException.Invalid($"{what} '{MlflowArgs.Shorten(key)}' had length {key.Length}, which exceeded length limit of {MaxKeyLength}");
        }

        // MLflow's rule: alphanumerics, underscores, dashes, periods, spaces, slashes; and no path tricks.
        if (!KeyPattern().IsMatch(key) || key.StartsWith('/') || key.Split('/').Any(part => part is "." or ".."))
        {
            throw MlflowException.Invalid($"Invalid {what.ToLowerInvariant()} name: '{MlflowArgs.Shorten(key)}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), and slashes (/).");
        }

        return key;
    }

    public static string Value(string value, string what, string key, int maxLength) =>
        value.Length <= maxLength
            ? value
            : throw MlflowException.Invalid($"{what} value '{MlflowArgs.Shorten(value)}' for key '{key}' had length {value.Length}, which exceeded length limit of {maxLength}");

    /// <summary>Experiment and registered model names: non-empty, bounded, no control characters.</summary>
    public static string Name(string? name, string parameter)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            throw MlflowException.Missing(parameter);
        }

        if (name.Length > MaxNameLength || name.Any(char.IsControl))
        {
            throw MlflowException.Invalid($"Invalid value '{MlflowArgs.Shorten(name)}' for parameter '{parameter}': names are at most {MaxNameLength} characters without control characters.");
        }

        return name;
    }

    public static string? Description(string? description) =>
        description is { Length: > MaxDescriptionLength }
            ? throw MlflowException.Invalid($"Description had length {description.Length}, which exceeded length limit of {MaxDescriptionLength}")
            : description;

    /// <summary>MLflow's MAX_REGISTERED_MODEL_ALIAS_LENGTH.</summary>
    public const int MaxAliasLength = 255;

    /// <summary>
    /// Aliases as MLflow's <c>_validate_model_alias_name</c> checks them, in its order and with its messages: letters,
    /// digits, underscores and dashes; at most 255 characters; not <c>latest</c> in any case, which MLflow resolves
    /// itself; and not a version-like <c>v1</c>/<c>V2</c>, which MLflow reads as a version number.
    /// </summary>
    public static string Alias(string? alias)
    {
        if (string.IsNullOrEmpty(alias))
        {
            throw MlflowException.Missing("alias");
        }

        if (!AliasPattern().IsMatch(alias))
        {
            throw MlflowException.Invalid($"Invalid alias name: '{MlflowArgs.Shorten(alias)}'. Names may only contain alphanumerics, underscores (_), and dashes (-).");
        }

        if (alias.Length > MaxAliasLength)
        {
            throw MlflowException.Invalid($"'Registered model alias name' exceeds the maximum length of {MaxAliasLength} characters");
        }

        if (alias.Equals("latest", StringComparison.OrdinalIgnoreCase))
        {
            throw MlflowException.Invalid("'latest' alias name (case insensitive) is reserved.");
        }

        if (VersionAlias().IsMatch(alias))
        {
            throw MlflowException.Invalid($"Version alias name '{alias}' is reserved.");
        }

        return alias;
    }

    [GeneratedRegex(@"^[/\w.\- ]+$")]
    private static partial Regex KeyPattern();

    // \z, not $: $ would also accept a trailing newline.
    [GeneratedRegex(@"^[\w\-]+\z")]
    private static partial Regex AliasPattern();

    [GeneratedRegex(@"^[vV]\d+\z")]
    private static partial Regex VersionAlias();
}
