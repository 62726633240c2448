using System.Globalization;
using GoblinAspire.ModelRegistry.Objects;

namespace GoblinAspire.ModelRegistry.Api.Gcs;

public static class ObjectEndpoints
{
    public static IEndpointRouteBuilder MapObjects(this IEndpointRouteBuilder app)
    {
        foreach (var prefix in BucketEndpoints.JsonPrefixes)
        {
            var objects = app.MapGroup(prefix + "/b/{bucket}/o");
            objects.MapGet("", GcsRequest.Endpoint(ListAsync));
            objects.MapMethods("/{**rest}", [HttpMethods.Get, HttpMethods.Head], GcsRequest.Endpoint(async (http, ct) =>
            {
                var (bucket, name) = Target(http);
                if (http.Request.Query["alt"] == "media")
                {
                    await ObjectTransfers.SendAsync(http, BucketEndpoints.Store(http), bucket, name, r => Check(http, r));
                    return;
                }

                var record = await BucketEndpoints.Store(http).GetObjectAsync(bucket, name, ct) ?? throw GcsException.ObjectNotFound(bucket, name);
                await Check(http, record);
                await GcsResources.WriteAsync(http.Response, w => GcsResources.Object(w, record, GcsRequest.BaseUri(http)));
            }));
            objects.MapPatch("/{**rest}", GcsRequest.Endpoint(async (http, ct) =>
            {
                var (bucket, name) = Target(http);
                using var body = await GcsRequest.ReadJsonAsync(http.Request, ct) ?? throw GcsException.Required("object resource");
                var patched = await BucketEndpoints.Store(http).PatchObjectAsync(bucket, name, GcsRequest.Attributes(body.RootElement), GcsRequest.Preconditions(http.Request), ct);
                await GcsResources.WriteAsync(http.Response, w => GcsResources.Object(w, patched, GcsRequest.BaseUri(http)));
            }));
            objects.MapDelete("/{**rest}", GcsRequest.Endpoint(async (http, ct) =>
            {
                var (bucket, name) = Target(http);
                var store = BucketEndpoints.Store(http);
                var record = await store.GetObjectAsync(bucket, name, ct) ?? throw GcsException.ObjectNotFound(bucket, name);
                GcsRequest.CheckGeneration(http.Request, record);
                if (!await store.DeleteObjectAsync(bucket, name, GcsRequest.Preconditions(http.Request), ct))
                {
                    throw GcsException.ObjectNotFound(bucket, name);
                }

                http.Response.StatusCode = StatusCodes.Status204NoContent;
            }));
            objects.MapPost("/{**rest}", GcsRequest.Endpoint(CopyAsync));
        }

        app.MapMethods("/download/storage/v1/b/{bucket}/o/{**rest}", [HttpMethods.Get, HttpMethods.Head], GcsRequest.Endpoint(async (http, _) =>
        {
            var (bucket, name) = Target(http);
            await ObjectTransfers.SendAsync(http, BucketEndpoints.Store(http), bucket, name, r => Check(http, r));
        }));
        return app;
    }

    private static async Task ListAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var bucket = GcsRequest.Bucket(http);
        var query = http.Request.Query;
        var maxText = query["maxResults"].ToString();
        var max = maxText.Length == 0 ? ObjectListings.MaxPageSize : int.TryParse(maxText, NumberStyles.None, CultureInfo.InvariantCulture, out var m) && m > 0 ? m : throw GcsException.Invalid($"Invalid maxResults: '{maxText}'.");
        string? Optional(string name) => query[name].ToString() is { Length: > 0 } value ? value : null;
        var glob = Optional("matchGlob") is { } pattern ? ObjectGlob.Parse(pattern) : null;
        var listing = await BucketEndpoints.Store(http).ListObjectsAsync(bucket, new ObjectListQuery(
            Optional("prefix"), Optional("delimiter"), Optional("startOffset"), Optional("endOffset"), Optional("pageToken"), max, query["includeTrailingDelimiter"] == "true", glob), cancellationToken);
        var baseUri = GcsRequest.BaseUri(http);
        await GcsResources.WriteAsync(http.Response, w =>
        {
            w.WriteStartObject();
            w.WriteString("kind", "storage#objects");
            if (listing.NextPageToken is { } token)
            {
                w.WriteString("nextPageToken", token);
            }

            if (listing.Prefixes.Count > 0)
            {
                w.WriteStartArray("prefixes");
                foreach (var prefix in listing.Prefixes)
                {
                    w.WriteStringValue(prefix);
                }

                w.WriteEndArray();
            }

            if (listing.Items.Count > 0)
            {
                w.WriteStartArray("items");
                foreach (var item in listing.Items)
                {
                    GcsResources.Object(w, item, baseUri);
                }

                w.WriteEndArray();
            }

            w.WriteEndObject();
        });
    }

    /// <summary>
    /// <c>{source}/rewriteTo/b/{bucket}/o/{name}</c>, <c>{source}/copyTo/b/{bucket}/o/{name}</c>,
    /// <c>{source}/moveTo/o/{name}</c> (objects.move: a rename within the bucket, no bytes copied) and <c>{destination}/compose</c>.
    /// </summary>
    private static async Task CopyAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var sourceBucket = GcsRequest.Bucket(http);
        var raw = GcsRequest.RawObjectPath(http);
        if (raw.IndexOf("/moveTo/o/", StringComparison.Ordinal) is var move and >= 0 && !raw.Contains("/rewriteTo/b/", StringComparison.Ordinal) && !raw.Contains("/copyTo/b/", StringComparison.Ordinal))
        {
            var from = ObjectNames.Object(GcsRequest.Decode(raw[..move]));
            var to = ObjectNames.Object(GcsRequest.Decode(raw[(move + "/moveTo/o/".Length)..]));
            var moved = await BucketEndpoints.Store(http).RenameObjectAsync(sourceBucket, from, to, cancellationToken, GcsRequest.Preconditions(http.Request, "ifSource"), GcsRequest.Preconditions(http.Request));
            await GcsResources.WriteAsync(http.Response, w => GcsResources.Object(w, moved, GcsRequest.BaseUri(http)));
            return;
        }

        if (raw.EndsWith("/compose", StringComparison.Ordinal) && !raw.Contains("/rewriteTo/b/", StringComparison.Ordinal) && !raw.Contains("/copyTo/b/", StringComparison.Ordinal))
        {
            await ComposeAsync(http, sourceBucket, ObjectNames.Object(GcsRequest.Decode(raw[..^"/compose".Length])), cancellationToken);
            return;
        }

        var (verb, cut) = raw.IndexOf("/rewriteTo/b/", StringComparison.Ordinal) is var r and >= 0 ? ("rewriteTo", r)
            : raw.IndexOf("/copyTo/b/", StringComparison.Ordinal) is var c and >= 0 ? ("copyTo", c)
            : throw new GcsException(404, "notFound", "Objects accept POST only for rewriteTo, copyTo, moveTo and compose.");
        var sourceName = ObjectNames.Object(GcsRequest.Decode(raw[..cut]));
        var destination = raw[(cut + verb.Length + 4)..];
        var slash = destination.IndexOf("/o/", StringComparison.Ordinal);
        if (slash < 0)
        {
            throw GcsException.Invalid($"{verb} needs a destination /b/{{bucket}}/o/{{object}}.");
        }

        var bucket = ObjectNames.Bucket(GcsRequest.Decode(destination[..slash]));
        var name = ObjectNames.Object(GcsRequest.Decode(destination[(slash + 3)..]));
        using var body = await GcsRequest.ReadJsonAsync(http.Request, cancellationToken);
        var attributes = body is null || body.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object && !body.RootElement.EnumerateObject().Any()
            ? null
            : GcsRequest.Attributes(body.RootElement);
        var store = BucketEndpoints.Store(http);
        var source = await store.GetObjectAsync(sourceBucket, sourceName, cancellationToken) ?? throw GcsException.ObjectNotFound(sourceBucket, sourceName);
        GcsRequest.CheckGeneration(http.Request, source, "sourceGeneration");
        var copied = await store.CopyObjectAsync(sourceBucket, sourceName, GcsRequest.Preconditions(http.Request, "ifSource"), bucket, name, attributes, GcsRequest.Preconditions(http.Request), cancellationToken);
        var baseUri = GcsRequest.BaseUri(http);
        await GcsResources.WriteAsync(http.Response, w =>
        {
            if (verb == "copyTo")
            {
                GcsResources.Object(w, copied, baseUri);
                return;
            }

            // A rewrite finishes in one call here: done, with every byte counted.
            w.WriteStartObject();
            w.WriteString("kind", "storage#rewriteResponse");
            w.WriteString("totalBytesRewritten", copied.Size.ToString(CultureInfo.InvariantCulture));
            w.WriteString("objectSize", copied.Size.ToString(CultureInfo.InvariantCulture));
            w.WriteBoolean("done", true);
            w.WritePropertyName("resource");
            GcsResources.Object(w, copied, baseUri);
            w.WriteEndObject();
        });
    }

    private static async Task ComposeAsync(HttpContext http, string bucket, string name, CancellationToken cancellationToken)
    {
        using var body = await GcsRequest.ReadJsonAsync(http.Request, cancellationToken) ?? throw GcsException.Required("compose request");
        var (sources, attributes) = ComposeRequest.Read(body.RootElement, name);
        var composed = await BucketEndpoints.Store(http).ComposeObjectAsync(bucket, sources, name, attributes, GcsRequest.Preconditions(http.Request), cancellationToken);
        await GcsResources.WriteAsync(http.Response, w => GcsResources.Object(w, composed, GcsRequest.BaseUri(http)));
    }

    private static (string Bucket, string Name) Target(HttpContext http) =>
        (GcsRequest.Bucket(http), ObjectNames.Object(GcsRequest.Decode(GcsRequest.RawObjectPath(http))));

    private static Task Check(HttpContext http, ObjectRecord record)
    {
        GcsRequest.CheckGeneration(http.Request, record);
        GcsRequest.Preconditions(http.Request).Check(record);
        return Task.CompletedTask;
    }
}
