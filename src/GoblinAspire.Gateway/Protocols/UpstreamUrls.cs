namespace GoblinAspire.Gateway.Protocols;

internal static class UpstreamUrls
{
    /// <summary>
    /// Joins a configured base URL and an API path, accepting both a server root (<c>http://vllm</c>) and a base
    /// that already ends in the version segment (<c>https://api.openai.com/v1</c>), as OpenAI SDKs do.
    /// </summary>
    public static Uri Combine(string baseUrl, string versionSegment, string path)
    {
        var trimmed = baseUrl.TrimEnd('/');
        if (!trimmed.EndsWith(versionSegment, StringComparison.Ordinal))
        {
            trimmed += versionSegment;
        }

        return new Uri(trimmed + path, UriKind.Absolute);
    }
}
