using System.Globalization;
using System.Text.Json;
using GoblinAspire.ModelRegistry.Objects;

namespace GoblinAspire.ModelRegistry.Api.Gcs;

public static class SignedUrlEndpoints
{
    public const string MintPath = "/api/v1/storage/signed-urls";

    /// <summary>
    /// Serves <c>/{bucket}/{object}</c> requests that carry V4 signature parameters (GET, HEAD, PUT), as
    /// storage.googleapis.com does. A middleware rather than a route: a catch-all route would make every other
    /// path's wrong-method 405 a 404.
    /// </summary>
    public static IApplicationBuilder UseSignedUrls(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.Use(async (http, next) =>
        {
            // Any X-Goog-* parameter makes it a signed-URL request, so one with a parameter missing is told so.
            if (!http.Request.Query.Keys.Any(k => k.StartsWith("X-Goog-", StringComparison.OrdinalIgnoreCase)) || SignedBucket(http.Request.Path) is not { } bucket)
            {
                await next(http);
                return;
            }

            if (!(HttpMethods.IsGet(http.Request.Method) || HttpMethods.IsHead(http.Request.Method) || HttpMethods.IsPut(http.Request.Method)))
            {
                await new SignedUrlException(405, "MethodNotAllowed", "Signed URLs accept GET, HEAD and PUT.").WriteAsync(http.Response);
                return;
            }

            await ServeAsync(http, bucket);
        });
    }

    /// <summary><c>POST /api/v1/storage/signed-urls</c> mints signed URLs for jobs and services that hand them on.</summary>
    public static IEndpointRouteBuilder MapSignedUrls(this IEndpointRouteBuilder app)
    {
        app.MapPost(MintPath, GcsRequest.Endpoint(async (http, ct) =>
        {
            using var body = await GcsRequest.ReadJsonAsync(http.Request, ct) ?? throw GcsException.Required("request body");
            var json = body.RootElement;
            if (json.ValueKind != JsonValueKind.Object)
            {
                throw GcsException.Invalid("The request body must be a JSON object.");
            }

            var bucket = ObjectNames.Bucket(GcsRequest.Text(json, "bucket"));
            var name = ObjectNames.Object(GcsRequest.Text(json, "object"));
            var method = (GcsRequest.Text(json, "method") ?? "GET").ToUpperInvariant();
            if (method is not ("GET" or "PUT"))
            {
                throw GcsException.Invalid("method must be GET or PUT.");
            }

            TimeSpan? lifetime = json.TryGetProperty("expires_in", out var expires) && expires.ValueKind == JsonValueKind.Number
                ? expires.TryGetInt64(out var seconds) && seconds is > 0 and <= 604800 ? TimeSpan.FromSeconds(seconds) : throw GcsException.Invalid("expires_in must be 1 to 604800 seconds.")
                : null;
            // A PUT may be bound to the generation it replaces (0: only if there is none), as the JSON API's
            // ifGenerationMatch binds an upload; the signature covers it, so the holder cannot drop it.
            var signed = new Dictionary<string, string>(StringComparer.Ordinal);
            if (GcsRequest.Long(json, "if_generation_match") is { } generation)
            {
                signed["ifGenerationMatch"] = method == "PUT" ? generation.ToString(CultureInfo.InvariantCulture) : throw GcsException.Invalid("if_generation_match applies to PUT URLs only.");
            }

            _ = await BucketEndpoints.Store(http).GetBucketAsync(bucket, ct) ?? throw GcsException.BucketNotFound(bucket);
            var signer = http.RequestServices.GetRequiredService<UrlSigner>();
            var url = signer.Sign(method, GcsRequest.BaseUri(http), bucket, name, lifetime, signed);
            await GcsResources.WriteAsync(http.Response, w =>
            {
                w.WriteStartObject();
                w.WriteString("url", url.AbsoluteUri);
                w.WriteString("method", method);
                w.WriteString("expires_at", (http.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow() + (lifetime ?? signer.DefaultLifetime)).ToString("O", CultureInfo.InvariantCulture));
                w.WriteEndObject();
            });
        }));
        return app;
    }

    private static async Task ServeAsync(HttpContext http, string bucket)
    {
        try
        {
            var raw = GcsRequest.RawPath(http);
            var name = ObjectNames.Object(GcsRequest.Decode(raw[(raw.IndexOf('/', 1) + 1)..]));
            var query = http.Request.Query.SelectMany(p => p.Value.Select(v => (p.Key, v ?? ""))).ToList();
            var signedMethod = HttpMethods.IsHead(http.Request.Method) ? HttpMethods.Get : http.Request.Method;
            http.RequestServices.GetRequiredService<UrlSigner>().Verify(signedMethod, raw, query, http.Request.Host.Value ?? "");
            var store = BucketEndpoints.Store(http);
            if (HttpMethods.IsPut(http.Request.Method))
            {
                GcsRequest.AllowLargeBody(http);
                var attributes = new ObjectAttributes { ContentType = GcsRequest.HeaderText(http.Request.ContentType, "Content-Type") };
                var stored = await ObjectTransfers.StoreAsync(store, bucket, name, attributes, PutPreconditions(http.Request), GcsRequest.Declared(http.Request, null), http.Request.Body, http.RequestAborted);
                GcsResources.DownloadHeaders(http.Response, stored);
                http.Response.StatusCode = StatusCodes.Status200OK;
                return;
            }

            await ObjectTransfers.SendAsync(http, store, bucket, name);
        }
        catch (SignedUrlException ex) when (!http.Response.HasStarted)
        {
            await ex.WriteAsync(http.Response);
        }
        catch (GcsException ex) when (!http.Response.HasStarted)
        {
            // The XML API's codes for what the JSON API calls notFound, conditionNotMet and invalid.
            var code = ex.StatusCode switch
            {
                404 => "NoSuchKey",
                412 => "PreconditionFailed",
                400 => "InvalidArgument",
                _ => ex.Reason,
            };
            await new SignedUrlException(ex.StatusCode, code, ex.Message).WriteAsync(http.Response);
        }
        catch (ObjectCorruptedException) when (!http.Response.HasStarted)
        {
            await new SignedUrlException(500, "InternalError", "The stored object failed its integrity check; it is not served.").WriteAsync(http.Response);
        }
        catch (ObjectCorruptedException)
        {
            http.Abort();
        }
        catch (BadHttpRequestException ex) when (!http.Response.HasStarted)
        {
            await new SignedUrlException(ex.StatusCode, "IncompleteBody", "The request body could not be read: it was truncated or too large.").WriteAsync(http.Response);
        }
    }

    /// <summary>
    /// The XML API's precondition headers (<c>x-goog-if-generation-match</c>, <c>x-goog-if-metageneration-match</c>),
    /// or a signed <c>ifGenerationMatch</c> parameter. Unsigned headers can only narrow what the URL allows.
    /// </summary>
    private static Preconditions PutPreconditions(HttpRequest request)
    {
        long? Read(string header, string? parameter)
        {
            var values = request.Headers[header].Concat(parameter is null ? [] : request.Query[parameter]).Where(v => !string.IsNullOrEmpty(v)).Distinct(StringComparer.Ordinal).ToList();
            return values.Count switch
            {
                0 => null,
                1 when values[0]!.Length <= 18 && long.TryParse(values[0], NumberStyles.None, CultureInfo.InvariantCulture, out var number) => number,
                _ => throw GcsException.Invalid($"Invalid {header}: one non-negative number is expected."),
            };
        }

        return new Preconditions(Read("x-goog-if-generation-match", "ifGenerationMatch"), null, Read("x-goog-if-metageneration-match", null));
    }

    /// <summary>The first path segment when it is a valid, unreserved bucket name followed by an object name.</summary>
    private static string? SignedBucket(PathString path)
    {
        var value = path.Value ?? "";
        var slash = value.IndexOf('/', 1);
        if (slash < 2 || slash == value.Length - 1)
        {
            return null;
        }

        try
        {
            return ObjectNames.Bucket(value[1..slash]);
        }
        catch (GcsException)
        {
            return null;
        }
    }
}
