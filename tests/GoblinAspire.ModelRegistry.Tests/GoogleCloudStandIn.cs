using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using GoblinAspire.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>
/// What the registry's GCS backend talks to in Google Cloud, on one loopback port:
/// <list type="bullet">
/// <item>Cloud Storage's JSON API: a registry on its local backend, whose API is GCS's (as the issue asks);</item>
/// <item>OAuth 2.0's token endpoint for a service account's JWT-bearer grant (the key file's <c>token_uri</c>),
/// checking the RS256 signature, issuer, audience, scope and expiry as Google's does;</item>
/// <item>the metadata server's token path, which answers only with <c>Metadata-Flavor: Google</c>.</item>
/// </list>
/// Storage calls without a bearer token it issued get GCS's 401. Faults can be injected: the next upload PUT breaks
/// off after 256 KiB (kept, as GCS keeps a session's received bytes), or the next download has one byte flipped.
/// </summary>
public sealed class GoogleCloudStandIn : IAsyncDisposable
{
    public const string ClientEmail = "goblin-registry@goblin-test.iam.gserviceaccount.com";
    public const string Project = "goblin-test";
    public const int BreakAfter = 256 * 1024;

    private readonly ConcurrentDictionary<string, byte> _issued = new(StringComparer.Ordinal);
    private readonly RSA _key = RSA.Create(2048);
    private RegistryHost _storage = null!;
    private long _uploadedBytes;
    private int _copies;
    private int _moves;

    private GoogleCloudStandIn(string root)
    {
        ArtifactRoot = root;
    }

    /// <summary>Where the stand-in keeps the objects (its own artifact root).</summary>
    public string ArtifactRoot { get; }

    public Uri Endpoint => _storage.Host.BaseAddress;

    public HttpClient Client => _storage.Host.Client;

    public int TokensIssued => _issued.Count;

    private int _authorisedStorageCalls;

    public int AuthorisedStorageCalls => Volatile.Read(ref _authorisedStorageCalls);

    public bool BreakNextUpload { get; set; }

    /// <summary>Bytes the registry sent as object data (upload bodies), so a test can count how often weights travel.</summary>
    public long UploadedBytes => Interlocked.Read(ref _uploadedBytes);

    /// <summary>Server-side copies asked for (rewriteTo, copyTo): each writes an object's bytes again inside Cloud Storage.</summary>
    public int Copies => Volatile.Read(ref _copies);

    /// <summary>objects.move calls: renames that write no bytes.</summary>
    public int Moves => Volatile.Read(ref _moves);

    public bool CorruptNextDownload { get; set; }

    public static async Task<GoogleCloudStandIn> StartAsync(PlatformServers servers)
    {
        var standIn = new GoogleCloudStandIn(Directory.CreateTempSubdirectory("goblin-gcs-standin-").FullName);
        standIn._storage = await RegistryHost.StartAsync(
            servers,
            settings: new Dictionary<string, string?> { ["ModelRegistry__ArtifactRoot"] = standIn.ArtifactRoot },
            configure: builder => builder.Services.AddSingleton<IStartupFilter>(new FrontDoor(standIn)));
        return standIn;
    }

    /// <summary>A service-account key file as Google issues them, its token endpoint this stand-in's; signed by <paramref name="key"/> (this stand-in's by default).</summary>
    public string WriteKeyFile(RSA? key = null)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("goblin-sa-").FullName, "key.json");
        File.WriteAllText(path, JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["type"] = "service_account",
            ["project_id"] = Project,
            ["private_key_id"] = "k1",
            ["private_key"] = (key ?? _key).ExportPkcs8PrivateKeyPem(),
            ["client_email"] = ClientEmail,
            ["client_id"] = "1234567890",
            ["token_uri"] = new Uri(Endpoint, "token").AbsoluteUri,
        }));
        return path;
    }

    /// <summary>The registry settings that put it on its GCS backend against this stand-in.</summary>
    public Dictionary<string, string?> BackendSettings(string auth, string? keyFile = null) => new()
    {
        ["ModelRegistry__Storage__Backend"] = "gcs",
        ["ModelRegistry__Storage__Gcs__Endpoint"] = Endpoint.AbsoluteUri,
        ["ModelRegistry__Storage__Gcs__Project"] = Project,
        ["ModelRegistry__Storage__Gcs__Auth"] = auth,
        ["ModelRegistry__Storage__Gcs__CredentialsFile"] = auth == "service-account" ? keyFile ?? WriteKeyFile() : null,
        ["ModelRegistry__Storage__Gcs__MetadataEndpoint"] = Endpoint.AbsoluteUri,
    };

    public async ValueTask DisposeAsync()
    {
        await _storage.DisposeAsync();
        _key.Dispose();
    }

    private async Task HandleAsync(HttpContext http, RequestDelegate next)
    {
        var path = http.Request.Path.Value ?? "";
        if (path == "/token" && HttpMethods.IsPost(http.Request.Method))
        {
            await GrantAsync(http);
            return;
        }

        if (path == "/computeMetadata/v1/instance/service-accounts/default/token")
        {
            if (http.Request.Headers["Metadata-Flavor"] != "Google")
            {
                http.Response.StatusCode = StatusCodes.Status403Forbidden;
                return;
            }

            await IssueAsync(http);
            return;
        }

        if (!path.StartsWith("/storage/", StringComparison.Ordinal) && !path.StartsWith("/upload/", StringComparison.Ordinal) && !path.StartsWith("/download/", StringComparison.Ordinal))
        {
            await next(http);
            return;
        }

        var authorization = http.Request.Headers.Authorization.ToString();
        if (!authorization.StartsWith("Bearer ", StringComparison.Ordinal) || !_issued.ContainsKey(authorization[7..]))
        {
            http.Response.StatusCode = StatusCodes.Status401Unauthorized;
            await http.Response.WriteAsync("""{"error":{"code":401,"message":"Invalid Credentials","errors":[{"domain":"global","reason":"authError","message":"Invalid Credentials"}]}}""");
            return;
        }

        Interlocked.Increment(ref _authorisedStorageCalls);
        if (path.StartsWith("/upload/", StringComparison.Ordinal) && HttpMethods.IsPut(http.Request.Method))
        {
            Interlocked.Add(ref _uploadedBytes, http.Request.ContentLength ?? 0);
        }

        if (HttpMethods.IsPost(http.Request.Method) && (path.Contains("/rewriteTo/", StringComparison.Ordinal) || path.Contains("/copyTo/", StringComparison.Ordinal)))
        {
            Interlocked.Increment(ref _copies);
        }

        if (HttpMethods.IsPost(http.Request.Method) && path.Contains("/moveTo/", StringComparison.Ordinal))
        {
            Interlocked.Increment(ref _moves);
        }
        if (BreakNextUpload && HttpMethods.IsPut(http.Request.Method) && http.Request.ContentLength > BreakAfter
            && http.Request.Headers.ContentRange.ToString() is { } range && range.StartsWith("bytes 0-", StringComparison.Ordinal))
        {
            // GCS keeps what reached it of a broken chunk: the first 256 KiB go into the session, then the line drops.
            BreakNextUpload = false;
            var total = range[(range.IndexOf('/', StringComparison.Ordinal) + 1)..];
            var head = new byte[BreakAfter];
            await http.Request.Body.ReadExactlyAsync(head);
            http.Request.Body = new MemoryStream(head);
            http.Request.ContentLength = BreakAfter;
            http.Request.Headers.ContentRange = $"bytes 0-{BreakAfter - 1}/{total}";
            http.Response.Body = Stream.Null;
            await next(http);
            http.Abort();
            return;
        }

        if (CorruptNextDownload && http.Request.Query["alt"] == "media")
        {
            CorruptNextDownload = false;
            var original = http.Response.Body;
            using var buffer = new MemoryStream();
            http.Response.Body = buffer;
            await next(http);
            var bytes = buffer.ToArray();
            bytes[bytes.Length / 2] ^= 0x01;
            http.Response.Body = original;
            await original.WriteAsync(bytes);
            return;
        }

        await next(http);
    }

    private async Task GrantAsync(HttpContext http)
    {
        var form = await http.Request.ReadFormAsync();
        var parts = form["assertion"].ToString().Split('.');
        if (form["grant_type"] != "urn:ietf:params:oauth:grant-type:jwt-bearer" || parts.Length != 3
            || !_key.VerifyData(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), Base64Url.DecodeFromChars(parts[2]), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1))
        {
            await RefuseAsync(http, "Invalid JWT Signature.");
            return;
        }

        using var claims = JsonDocument.Parse(Base64Url.DecodeFromChars(parts[1]));
        var root = claims.RootElement;
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (root.GetProperty("iss").GetString() != ClientEmail
            // Google's token endpoint takes its own public address as the audience, wherever the request is sent.
            || root.GetProperty("aud").GetString() != "https://oauth2.googleapis.com/token"
            || root.GetProperty("scope").GetString()?.Contains("devstorage", StringComparison.Ordinal) != true
            || root.GetProperty("exp").GetInt64() < now
            || root.GetProperty("iat").GetInt64() > now + 300)
        {
            await RefuseAsync(http, "Invalid JWT: claims are wrong or expired.");
            return;
        }

        await IssueAsync(http);
    }

    private async Task IssueAsync(HttpContext http)
    {
        var token = "ya29.standin-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        _issued[token] = 0;
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(JsonSerializer.Serialize(new Dictionary<string, object> { ["access_token"] = token, ["expires_in"] = 3599, ["token_type"] = "Bearer" }));
    }

    /// <summary>Why the last token request was refused, for a failing test's message.</summary>
    public string? LastRefusal { get; private set; }

    private async Task RefuseAsync(HttpContext http, string description)
    {
        LastRefusal = description;
        http.Response.StatusCode = StatusCodes.Status400BadRequest;
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(JsonSerializer.Serialize(new Dictionary<string, string> { ["error"] = "invalid_grant", ["error_description"] = description }));
    }

    private sealed class FrontDoor(GoogleCloudStandIn standIn) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((http, following) => standIn.HandleAsync(http, following));
            next(app);
        };
    }
}
