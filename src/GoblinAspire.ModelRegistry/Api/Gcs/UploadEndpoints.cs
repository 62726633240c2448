using System.Globalization;
using System.Text.Json;
using GoblinAspire.ModelRegistry.Objects;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace GoblinAspire.ModelRegistry.Api.Gcs;

public static class UploadEndpoints
{
    public const string Path = "/upload/storage/v1/b/{bucket}/o";

    /// <summary><c>uploadType=media</c>, <c>multipart</c> (multipart/related) and <c>resumable</c> uploads.</summary>
    public static IEndpointRouteBuilder MapUploads(this IEndpointRouteBuilder app)
    {
        app.MapPost(Path, GcsRequest.Endpoint(async (http, ct) =>
        {
            GcsRequest.AllowLargeBody(http);
            if (http.Request.Query["upload_id"].ToString() is { Length: > 0 } id)
            {
                await ChunkAsync(http, id, ct);
                return;
            }

            switch (http.Request.Query["uploadType"].ToString())
            {
                case "media":
                    await MediaAsync(http, ct);
                    break;
                case "multipart":
                    await MultipartAsync(http, ct);
                    break;
                case "resumable":
                    await StartResumableAsync(http, ct);
                    break;
                case "":
                    throw GcsException.Required("uploadType (media, multipart or resumable)");
                default:
                    throw GcsException.Invalid($"Unsupported uploadType '{http.Request.Query["uploadType"]}'.");
            }
        }));
        app.MapPut(Path, GcsRequest.Endpoint(async (http, ct) =>
        {
            GcsRequest.AllowLargeBody(http);
            await ChunkAsync(http, UploadId(http), ct);
        }));
        app.MapDelete(Path, GcsRequest.Endpoint(async (http, _) =>
        {
            if (!await http.RequestServices.GetRequiredService<UploadSessions>().CancelAsync(UploadId(http), GcsRequest.Bucket(http)))
            {
                throw new GcsException(404, "notFound", "No such upload session.");
            }

            // What GCS answers to a cancelled session.
            http.Response.StatusCode = 499;
        }));
        return app;
    }

    private static async Task MediaAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var bucket = GcsRequest.Bucket(http);
        var name = ObjectNames.Object(GcsRequest.Query(http, "name") is { Length: > 0 } n ? n : throw GcsException.Required("name"));
        var attributes = new ObjectAttributes { ContentType = GcsRequest.HeaderText(http.Request.ContentType, "Content-Type") };
        var stored = await ObjectTransfers.StoreAsync(BucketEndpoints.Store(http), bucket, name, attributes, GcsRequest.Preconditions(http.Request), GcsRequest.Declared(http.Request, null), http.Request.Body, cancellationToken);
        await GcsResources.WriteAsync(http.Response, w => GcsResources.Object(w, stored, GcsRequest.BaseUri(http)));
    }

    /// <summary>A multipart/related body: the object resource as JSON, then the media, streamed.</summary>
    private static async Task MultipartAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var bucket = GcsRequest.Bucket(http);
        if (!MediaTypeHeaderValue.TryParse(http.Request.ContentType, out var type) || !type.MediaType.Equals("multipart/related", StringComparison.OrdinalIgnoreCase)
            || HeaderUtilities.RemoveQuotes(type.Boundary).Value is not { Length: > 0 and <= 200 } boundary)
        {
            throw GcsException.Invalid("A multipart upload needs Content-Type: multipart/related with a boundary.");
        }

        ObjectRecord stored;
        try
        {
            var reader = new MultipartReader(boundary, http.Request.Body) { HeadersLengthLimit = 16 * 1024, BodyLengthLimit = null };
            var metadataSection = await reader.ReadNextSectionAsync(cancellationToken) ?? throw GcsException.Invalid("The multipart body has no metadata part.");
            using var metadata = JsonDocument.Parse(await GcsRequest.ReadLimitedAsync(metadataSection.Body, GcsRequest.MaxMetadataBodyBytes, cancellationToken));
            var resource = metadata.RootElement;
            var attributes = GcsRequest.Attributes(resource);
            var name = ObjectNames.Object(GcsRequest.Query(http, "name") is { Length: > 0 } n ? n : GcsRequest.Text(resource, "name"));
            var media = await reader.ReadNextSectionAsync(cancellationToken) ?? throw GcsException.Invalid("The multipart body has no media part.");
            attributes = attributes with { ContentType = attributes.ContentType ?? GcsRequest.HeaderText(media.ContentType, "The media part's Content-Type") };
            stored = await ObjectTransfers.StoreAsync(BucketEndpoints.Store(http), bucket, name, attributes, GcsRequest.Preconditions(http.Request), GcsRequest.Declared(http.Request, resource), media.Body, cancellationToken);
        }
        catch (Exception ex) when (ex is InvalidDataException || ex.GetType() == typeof(IOException))
        {
            // What MultipartReader raises for a body that is not multipart/related as declared (bad boundaries or
            // part headers, a body that ends inside a part).
            throw GcsException.Invalid("The multipart body is malformed: " + ex.Message);
        }

        await GcsResources.WriteAsync(http.Response, w => GcsResources.Object(w, stored, GcsRequest.BaseUri(http)));
    }

    private static async Task StartResumableAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var bucket = GcsRequest.Bucket(http);
        using var body = await GcsRequest.ReadJsonAsync(http.Request, cancellationToken);
        var resource = body?.RootElement;
        var attributes = resource is { } json ? GcsRequest.Attributes(json) : new ObjectAttributes();
        if (attributes.ContentType is null && http.Request.Headers["X-Upload-Content-Type"].ToString() is { Length: > 0 } uploadType)
        {
            attributes = attributes with { ContentType = GcsRequest.HeaderText(uploadType, "X-Upload-Content-Type") };
        }

        var name = ObjectNames.Object(GcsRequest.Query(http, "name") is { Length: > 0 } n ? n : resource is { } r ? GcsRequest.Text(r, "name") : null);
        long? total = http.Request.Headers["X-Upload-Content-Length"].ToString() is { Length: > 0 } lengthText
            ? lengthText.Length <= 18 && long.TryParse(lengthText, NumberStyles.None, CultureInfo.InvariantCulture, out var length) ? length : throw GcsException.Invalid("Invalid X-Upload-Content-Length.")
            : null;
        var preconditions = GcsRequest.Preconditions(http.Request);
        preconditions.Check(await BucketEndpoints.Store(http).GetObjectAsync(bucket, name, cancellationToken));
        var id = await http.RequestServices.GetRequiredService<UploadSessions>().StartAsync(new UploadTarget(bucket, name, attributes, preconditions, GcsRequest.Declared(http.Request, resource), total), cancellationToken);
        var location = $"{GcsRequest.BaseUri(http)}upload/storage/v1/b/{bucket}/o?uploadType=resumable&name={Uri.EscapeDataString(name)}&upload_id={id}";
        http.Response.Headers.Location = location;
        http.Response.Headers["X-GUploader-UploadID"] = id;
        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentLength = 0;
    }

    private static async Task ChunkAsync(HttpContext http, string id, CancellationToken cancellationToken)
    {
        var bucket = GcsRequest.Bucket(http);
        var range = ChunkRange.Parse(http.Request.Headers.ContentRange.ToString(), http.Request.ContentLength);
        var result = await http.RequestServices.GetRequiredService<UploadSessions>().AppendAsync(id, bucket, range, http.Request.Body, cancellationToken);
        if (result.Object is { } done)
        {
            await GcsResources.WriteAsync(http.Response, w => GcsResources.Object(w, done, GcsRequest.BaseUri(http)));
            return;
        }

        // 308 "Resume Incomplete": Range names what is held, absent when nothing is.
        http.Response.StatusCode = 308;
        if (result.Received > 0)
        {
            http.Response.Headers.Range = $"bytes=0-{result.Received - 1}";
        }

        http.Response.ContentLength = 0;
    }

    private static string UploadId(HttpContext http) =>
        http.Request.Query["upload_id"].ToString() is { Length: > 0 } id ? id : throw GcsException.Required("upload_id");
}
