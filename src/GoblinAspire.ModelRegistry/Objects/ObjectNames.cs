using System.Text;

namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>GCS's naming rules, plus the refusals that keep a name from ever meaning a different path.</summary>
public static class ObjectNames
{
    public const int MaxObjectNameBytes = 1024;

    /// <summary>Bucket names the platform's own routes use; a signed URL to such a bucket would be ambiguous.</summary>
    public static readonly IReadOnlySet<string> ReservedBuckets = new HashSet<string>(StringComparer.Ordinal)
    {
        "api", "ajax-api", "storage", "upload", "download", "b", "health", "alive", "metrics",
    };

    public static string Bucket(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw GcsException.Required("bucket name");
        }

        if (name.Length is < 3 or > 63
            || !char.IsAsciiLetterLower(name[0]) && !char.IsAsciiDigit(name[0])
            || !char.IsAsciiLetterLower(name[^1]) && !char.IsAsciiDigit(name[^1])
            || name.Any(c => !(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_' or '.'))
            || name.Contains("..", StringComparison.Ordinal)
            || name.StartsWith("goog", StringComparison.Ordinal)
            || System.Net.IPAddress.TryParse(name, out _)
            || ReservedBuckets.Contains(name))
        {
            throw GcsException.Invalid($"Invalid bucket name: '{Shorten(name)}'.");
        }

        return name;
    }

    public static string Object(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw GcsException.Required("object name");
        }

        // GCS itself allows most of these; they are refused here because names become paths in the artifact
        // layout and in signed URLs, where '..', a leading '/', '\' or a control byte would name another object.
        if (Encoding.UTF8.GetByteCount(name) > MaxObjectNameBytes
            || name.StartsWith('/')
            || name.Contains('\\', StringComparison.Ordinal)
            || name.Any(char.IsControl)
            || name.Split('/').Any(segment => segment is "." or "..")
            || name.StartsWith(".well-known/acme-challenge/", StringComparison.Ordinal)
            || name.Any(char.IsSurrogate) && !WellFormedText.IsWellFormed(name))
        {
            throw GcsException.Invalid($"Invalid object name: '{Shorten(name)}'.");
        }

        return name;
    }

    private static string Shorten(string value)
    {
        var printable = new string(value.Take(100).Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return value.Length > 100 ? printable + "…" : printable;
    }
}
