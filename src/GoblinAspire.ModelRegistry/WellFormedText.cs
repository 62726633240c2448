namespace GoblinAspire.ModelRegistry;

/// <summary>
/// Whether a string can be stored and echoed as text: every surrogate is half of a pair (an escaped <c>"\ud800"</c>
/// is valid JSON, not valid Unicode), and, for <see cref="IsStorable"/>, no NUL, which PostgreSQL's text cannot hold.
/// </summary>
public static class WellFormedText
{
    public static bool IsWellFormed(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        for (var i = 0; i < value.Length; i++)
        {
            if (char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(value[i]))
            {
                return false;
            }
        }

        return true;
    }

    public static bool IsStorable(string value) => !value.Contains('\0', StringComparison.Ordinal) && IsWellFormed(value);
}
