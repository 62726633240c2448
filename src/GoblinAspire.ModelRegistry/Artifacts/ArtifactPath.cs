using GoblinAspire.ModelRegistry.Mlflow;

namespace GoblinAspire.ModelRegistry.Artifacts;

/// <summary>Checks artifact paths before they reach any store: no traversal, no absolute paths, no hidden bytes.</summary>
public static class ArtifactPath
{
    public const int MaxLength = 1024;

    /// <summary>The normalised relative path, or an MLflow INVALID_PARAMETER_VALUE error.</summary>
    public static string Normalize(string? path, bool allowEmpty = false)
    {
        var value = path ?? "";
        if (value.Length == 0)
        {
            return allowEmpty ? "" : throw MlflowException.Invalid("An artifact path is required.");
        }

        // Absolute paths, drive or scheme prefixes, backslashes, control bytes (NUL included) and dot segments
        // are refused outright rather than "cleaned": a cleaned path is a different object than the caller named.
        if (value.Length > MaxLength
            || value.StartsWith('/')
            || value.Contains('\\', StringComparison.Ordinal)
            || value.Contains(':', StringComparison.Ordinal)
            || value.Any(char.IsControl)
            || value.TrimEnd('/').Split('/').Any(segment => segment is "" or "." or ".."))
        {
            throw MlflowException.Invalid($"Invalid artifact path: '{MlflowArgs.Shorten(value)}'.");
        }

        return value.TrimEnd('/');
    }
}
