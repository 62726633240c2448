using System.Text;

namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>GCS's object listing over a sorted set of names: prefix, delimiter, offsets and page tokens.</summary>
public static class ObjectListings
{
    public const int MaxPageSize = 1000;

    public static ObjectListing Page(SortedDictionary<string, ObjectRecord> objects, ObjectListQuery query)
    {
        ArgumentNullException.ThrowIfNull(objects);
        ArgumentNullException.ThrowIfNull(query);
        var prefix = query.Prefix ?? "";
        var delimiter = string.IsNullOrEmpty(query.Delimiter) ? null : query.Delimiter;
        var after = DecodeToken(query.PageToken);
        var limit = Math.Clamp(query.MaxResults, 1, MaxPageSize);
        var items = new List<ObjectRecord>();
        var prefixes = new List<string>();
        string? last = null;
        var count = 0;
        foreach (var (name, record) in objects)
        {
            if (string.CompareOrdinal(name, prefix) < 0 && !name.StartsWith(prefix, StringComparison.Ordinal))
            {
                continue;
            }

            if (!name.StartsWith(prefix, StringComparison.Ordinal))
            {
                // Sorted: once past the prefix, nothing later can match.
                break;
            }

            if (query.StartOffset is { } start && string.CompareOrdinal(name, start) < 0
                || after is not null && (string.CompareOrdinal(name, after) <= 0 || delimiter is not null && after.EndsWith(delimiter, StringComparison.Ordinal) && name.StartsWith(after, StringComparison.Ordinal)))
            {
                continue;
            }

            if (query.EndOffset is { } end && string.CompareOrdinal(name, end) >= 0)
            {
                break;
            }

            if (query.MatchGlob is { } glob && !glob.IsMatch(name))
            {
                continue;
            }

            var cut = delimiter is null ? -1 : name.IndexOf(delimiter, prefix.Length, StringComparison.Ordinal);
            if (count == limit)
            {
                return new ObjectListing(items, prefixes, EncodeToken(last!));
            }

            if (cut >= 0)
            {
                var folder = name[..(cut + delimiter!.Length)];
                if (prefixes.Count == 0 || prefixes[^1] != folder)
                {
                    prefixes.Add(folder);
                    count++;
                    last = folder;
                }

                if (query.IncludeTrailingDelimiter && cut + delimiter.Length == name.Length)
                {
                    items.Add(record);
                }

                continue;
            }

            items.Add(record);
            count++;
            last = name;
        }

        return new ObjectListing(items, prefixes, null);
    }

    private static string EncodeToken(string last) => Convert.ToBase64String(Encoding.UTF8.GetBytes(last)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static string? DecodeToken(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return null;
        }

        try
        {
            var base64 = token.Replace('-', '+').Replace('_', '/');
            return Encoding.UTF8.GetString(Convert.FromBase64String(base64.PadRight(base64.Length + ((4 - (base64.Length % 4)) % 4), '=')));
        }
        catch (FormatException)
        {
            throw GcsException.Invalid("Invalid pageToken.");
        }
    }
}
