using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>
/// Signed URLs in GCS's V4 scheme with an HMAC key (<c>GOOG4-HMAC-SHA256</c>): a canonical request over method, path,
/// the sorted query (all <c>X-Goog-*</c> parameters but the signature), the host header and <c>UNSIGNED-PAYLOAD</c>,
/// signed with a key derived from the secret through date, region, service and <c>goog4_request</c>.
/// </summary>
public sealed class UrlSigner(IOptions<StorageOptions> options, TimeProvider time)
{
    public const string Algorithm = "GOOG4-HMAC-SHA256";
    public const string Region = "auto";
    public static readonly TimeSpan MaxLifetime = TimeSpan.FromDays(7);

    public TimeSpan DefaultLifetime => options.Value.DefaultSignedUrlLifetime;

    /// <summary>A URL for <paramref name="method"/> on one object, valid for <paramref name="lifetime"/> (default from options).</summary>
    /// <param name="signedParameters">More query parameters the signature covers (a precondition, say).</param>
    public Uri Sign(string method, Uri baseUri, string bucket, string name, TimeSpan? lifetime = null, IReadOnlyDictionary<string, string>? signedParameters = null)
    {
        ArgumentNullException.ThrowIfNull(baseUri);
        var expires = lifetime ?? options.Value.DefaultSignedUrlLifetime;
        if (expires <= TimeSpan.Zero || expires > MaxLifetime)
        {
            throw GcsException.Invalid("A signed URL's lifetime must be between 1 second and 7 days.");
        }

        var now = time.GetUtcNow();
        var date = now.ToString("yyyyMMdd", CultureInfo.InvariantCulture);
        var query = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["X-Goog-Algorithm"] = Algorithm,
            ["X-Goog-Credential"] = $"{options.Value.SigningKeyId}/{date}/{Region}/storage/goog4_request",
            ["X-Goog-Date"] = now.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture),
            ["X-Goog-Expires"] = ((long)expires.TotalSeconds).ToString(CultureInfo.InvariantCulture),
            ["X-Goog-SignedHeaders"] = "host",
        };
        foreach (var (parameter, value) in signedParameters ?? new Dictionary<string, string>())
        {
            query.Add(parameter, value);
        }

        var path = ObjectPath(baseUri.AbsolutePath, bucket, name);
        var canonicalQuery = CanonicalQuery(query.Select(p => (p.Key, p.Value)));
        var signature = Signature(method, path, canonicalQuery, baseUri.Authority, query["X-Goog-Date"], date);
        return new Uri($"{baseUri.Scheme}://{baseUri.Authority}{path}?{canonicalQuery}&X-Goog-Signature={signature}");
    }

    /// <summary>
    /// Checks a request made with a signed URL. A wrong signature (any byte of the method, path, query or host
    /// changed) → 403 <c>SignatureDoesNotMatch</c>; a valid but expired one → 400 <c>ExpiredToken</c>.
    /// </summary>
    /// <param name="rawPath">The path as sent, still percent-encoded.</param>
    public void Verify(string method, string rawPath, IReadOnlyList<(string Name, string Value)> query, string host)
    {
        ArgumentNullException.ThrowIfNull(query);
        foreach (var repeated in query.GroupBy(p => p.Name, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1 && g.Key.StartsWith("X-Goog-", StringComparison.OrdinalIgnoreCase)))
        {
            // Which of two values would count is exactly what a tampered URL would like to choose.
            throw new SignedUrlException(400, "InvalidArgument", $"The query parameter {repeated.Key} is given more than once.");
        }

        string? Single(string parameter) => query.Where(p => p.Name == parameter).Select(p => p.Value).SingleOrDefault();
        if (Single("X-Goog-Algorithm") is { } algorithm && algorithm != Algorithm)
        {
            // GOOG4-RSA-SHA256 URLs are signed with a service account's private key, which this server cannot check.
            throw new SignedUrlException(400, "InvalidArgument", $"The signing algorithm '{Printable(algorithm)}' is not supported by this server: it accepts only {Algorithm} URLs that it signed itself.");
        }

        var signature = Single("X-Goog-Signature");
        var credential = Single("X-Goog-Credential");
        var googDate = Single("X-Goog-Date");
        var expiresText = Single("X-Goog-Expires");
        if (signature is null || credential is null || googDate is null || expiresText is null || Single("X-Goog-Algorithm") != Algorithm || Single("X-Goog-SignedHeaders") != "host")
        {
            throw new SignedUrlException(400, "AuthenticationRequired", "The URL is missing one of the X-Goog-* signature parameters.");
        }

        if (!DateTimeOffset.TryParseExact(googDate, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var signedAt)
            || !long.TryParse(expiresText, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            || seconds is < 1 or > 604800)
        {
            throw new SignedUrlException(400, "AuthenticationRequired", "X-Goog-Date or X-Goog-Expires is malformed.");
        }

        var date = googDate[..8];
        var canonicalQuery = CanonicalQuery(query.Where(p => p.Name != "X-Goog-Signature"));
        var expected = Signature(method, CanonicalPath(rawPath), canonicalQuery, host, googDate, date);
        if (credential != $"{options.Value.SigningKeyId}/{date}/{Region}/storage/goog4_request"
            || !CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signature)))
        {
            throw new SignedUrlException(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.");
        }

        if (time.GetUtcNow() > signedAt.AddSeconds(seconds))
        {
            throw new SignedUrlException(400, "ExpiredToken", "Invalid argument: the signed URL has expired.");
        }
    }

    /// <summary>The percent-encoded path of an object, each byte outside RFC 3986's unreserved set escaped; '/' kept.</summary>
    public static string ObjectPath(string basePath, string bucket, string name) =>
        $"{basePath.TrimEnd('/')}/{bucket}/{string.Join('/', name.Split('/').Select(Encode))}";

    private string Signature(string method, string path, string canonicalQuery, string host, string googDate, string date)
    {
        var canonicalRequest = $"{method}\n{path}\n{canonicalQuery}\nhost:{host.ToLowerInvariant()}\n\nhost\nUNSIGNED-PAYLOAD";
        var scope = $"{date}/{Region}/storage/goog4_request";
        var stringToSign = $"{Algorithm}\n{googDate}\n{scope}\n{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest)))}";
        var key = Encoding.UTF8.GetBytes("GOOG4" + options.Value.SigningSecret);
        foreach (var part in new[] { date, Region, "storage", "goog4_request" })
        {
            key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(part));
        }

        return Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(stringToSign)));
    }

    private static string CanonicalQuery(IEnumerable<(string Name, string Value)> parameters) =>
        string.Join('&', parameters.Select(p => (Name: Encode(p.Name), Value: Encode(p.Value))).OrderBy(p => p.Name, StringComparer.Ordinal).ThenBy(p => p.Value, StringComparer.Ordinal).Select(p => $"{p.Name}={p.Value}"));

    /// <summary>Re-encodes a received path the way <see cref="ObjectPath"/> encodes, so equivalent spellings sign alike.</summary>
    private static string CanonicalPath(string rawPath) =>
        string.Join('/', rawPath.Split('/').Select(segment => Encode(Uri.UnescapeDataString(segment))));

    private static string Encode(string value) => Uri.EscapeDataString(value);

    private static string Printable(string value) => new(value.Take(64).Select(c => char.IsControl(c) ? '?' : c).ToArray());
}

/// <summary>A signed-URL failure, answered in the XML error shape GCS uses on that path.</summary>
public sealed class SignedUrlException : Exception
{
    public SignedUrlException(int statusCode, string code, string message)
        : base(message)
    {
        StatusCode = statusCode;
        Code = code;
    }

    public SignedUrlException()
        : this(403, "AccessDenied", "Access denied.")
    {
    }

    public SignedUrlException(string message)
        : this(403, "AccessDenied", message)
    {
    }

    public SignedUrlException(string message, Exception innerException)
        : base(message, innerException)
    {
        StatusCode = 403;
        Code = "AccessDenied";
    }

    public int StatusCode { get; }

    public string Code { get; } = "AccessDenied";

    public async Task WriteAsync(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.Clear();
        response.StatusCode = StatusCode;
        response.ContentType = "application/xml; charset=UTF-8";
        var body = $"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{Code}</Code><Message>{System.Security.SecurityElement.Escape(Message)}</Message></Error>";
        await response.WriteAsync(body);
    }
}
