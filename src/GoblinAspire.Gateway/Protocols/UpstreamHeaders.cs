namespace GoblinAspire.Gateway.Protocols;

/// <summary>Which upstream response headers a passthrough forwards: not hop-by-hop ones, nor ones the gateway sets.</summary>
public static class UpstreamHeaders
{
    private static readonly HashSet<string> Skipped = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "TE", "Trailer",
        "Content-Length", "Content-Type", "Server", "Date", "Set-Cookie", "Alt-Svc",
    };

    public static void CopyTo(HttpResponseMessage upstream, HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        ArgumentNullException.ThrowIfNull(response);
        foreach (var (name, values) in upstream.Headers)
        {
            if (!Skipped.Contains(name))
            {
                response.Headers[name] = values.ToArray();
            }
        }

        foreach (var (name, values) in upstream.Content.Headers)
        {
            if (!Skipped.Contains(name))
            {
                response.Headers[name] = values.ToArray();
            }
        }
    }
}
