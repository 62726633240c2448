using System.Text.Json;
using GoblinAspire.ModelRegistry.Objects;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Api.Gcs;

public static class BucketEndpoints
{
    /// <summary>The GCS JSON API's routes are served with and without <c>/storage/v1</c> (emulator-host clients drop it).</summary>
    public static readonly string[] JsonPrefixes = ["/storage/v1", ""];

    public static IEndpointRouteBuilder MapBuckets(this IEndpointRouteBuilder app)
    {
        foreach (var prefix in JsonPrefixes)
        {
            var buckets = app.MapGroup(prefix + "/b");
            buckets.MapGet("", GcsRequest.Endpoint(async (http, ct) =>
            {
                var all = await Store(http).ListBucketsAsync(ct);
                var filter = http.Request.Query["prefix"].ToString();
                var (uri, key) = (GcsRequest.BaseUri(http), ActiveKey(http));
                await GcsResources.WriteAsync(http.Response, w =>
                {
                    w.WriteStartObject();
                    w.WriteString("kind", "storage#buckets");
                    w.WriteStartArray("items");
                    foreach (var bucket in all.Where(b => b.Name.StartsWith(filter, StringComparison.Ordinal)))
                    {
                        GcsResources.Bucket(w, bucket, uri, key);
                    }

                    w.WriteEndArray();
                    w.WriteEndObject();
                });
            }));
            buckets.MapPost("", GcsRequest.Endpoint(async (http, ct) =>
            {
                using var body = await GcsRequest.ReadJsonAsync(http.Request, ct) ?? throw GcsException.Required("bucket resource");
                var json = body.RootElement;
                if (json.ValueKind != JsonValueKind.Object)
                {
                    throw GcsException.Invalid("The bucket resource must be a JSON object.");
                }

                var name = ObjectNames.Bucket(GcsRequest.Text(json, "name"));
                var encrypted = false;
                if (json.TryGetProperty("encryption", out var encryption) && encryption.ValueKind == JsonValueKind.Object && GcsRequest.Text(encryption, "defaultKmsKeyName") is { } keyName)
                {
                    var options = http.RequestServices.GetRequiredService<IOptions<StorageOptions>>().Value;
                    if (!options.EncryptionKeys.ContainsKey(keyName.Split('/')[^1]))
                    {
                        throw GcsException.Invalid($"Unknown encryption key '{keyName}': it must name a configured key.");
                    }

                    encrypted = true;
                }

                Dictionary<string, string>? labels = null;
                if (json.TryGetProperty("labels", out var labelJson) && labelJson.ValueKind != JsonValueKind.Null)
                {
                    labels = Labels(labelJson).Where(l => l.Value is not null).ToDictionary(l => l.Key, l => l.Value!, StringComparer.Ordinal);
                    if (labels.Count > BucketLabels.MaxCount)
                    {
                        throw GcsException.Invalid($"A bucket has at most {BucketLabels.MaxCount} labels.");
                    }
                }

                var created = await Store(http).CreateBucketAsync(name, encrypted, labels, ct);
                await GcsResources.WriteAsync(http.Response, w => GcsResources.Bucket(w, created, GcsRequest.BaseUri(http), ActiveKey(http)));
            }));
            buckets.MapGet("/{bucket}", GcsRequest.Endpoint(async (http, ct) =>
            {
                var name = GcsRequest.Bucket(http);
                var bucket = await Store(http).GetBucketAsync(name, ct) ?? throw GcsException.BucketNotFound(name);
                await GcsResources.WriteAsync(http.Response, w => GcsResources.Bucket(w, bucket, GcsRequest.BaseUri(http), ActiveKey(http)));
            }));
            // Labels are what this server keeps of a bucket's settable metadata; a patch of anything else is refused
            // rather than answered as if applied.
            buckets.MapPatch("/{bucket}", GcsRequest.Endpoint(async (http, ct) =>
            {
                var name = GcsRequest.Bucket(http);
                using var body = await GcsRequest.ReadJsonAsync(http.Request, ct) ?? throw GcsException.Required("bucket resource");
                var json = body.RootElement;
                if (json.ValueKind != JsonValueKind.Object)
                {
                    throw GcsException.Invalid("The bucket resource must be a JSON object.");
                }

                var labels = new Dictionary<string, string?>(StringComparer.Ordinal);
                foreach (var property in json.EnumerateObject())
                {
                    switch (GcsRequest.Name(property))
                    {
                        case "labels" when property.Value.ValueKind == JsonValueKind.Null:
                            // GCS: a null labels field removes them all.
                            var current = await Store(http).GetBucketAsync(name, ct) ?? throw GcsException.BucketNotFound(name);
                            foreach (var key in current.Labels?.Keys ?? Enumerable.Empty<string>())
                            {
                                labels[key] = null;
                            }

                            break;
                        case "labels":
                            foreach (var (key, value) in Labels(property.Value))
                            {
                                labels[key] = value;
                            }

                            break;
                        case "name" when property.Value.ValueKind == JsonValueKind.String && GcsRequest.String(property.Value) == name:
                        case "kind" or "id" or "selfLink" or "etag" or "projectNumber" or "metageneration" or "timeCreated" or "updated":
                            break;
                        case var other:
                            throw GcsException.Invalid($"Changing the bucket's '{other}' is not supported by this server; only labels can be patched.");
                    }
                }

                var patched = await Store(http).PatchBucketAsync(name, labels, GcsRequest.Preconditions(http.Request), ct);
                await GcsResources.WriteAsync(http.Response, w => GcsResources.Bucket(w, patched, GcsRequest.BaseUri(http), ActiveKey(http)));
            }));
            buckets.MapDelete("/{bucket}", GcsRequest.Endpoint(async (http, ct) =>
            {
                await Store(http).DeleteBucketAsync(GcsRequest.Bucket(http), ct);
                http.Response.StatusCode = StatusCodes.Status204NoContent;
            }));
        }

        return app;
    }

    /// <summary>A labels object: string values set a label, null values remove one.</summary>
    private static List<KeyValuePair<string, string?>> Labels(JsonElement json)
    {
        if (json.ValueKind != JsonValueKind.Object)
        {
            throw GcsException.Invalid("labels must be an object of strings.");
        }

        var labels = new List<KeyValuePair<string, string?>>();
        foreach (var property in json.EnumerateObject())
        {
            var key = GcsRequest.Name(property);
            var value = property.Value.ValueKind switch
            {
                JsonValueKind.String => GcsRequest.String(property.Value),
                JsonValueKind.Null => null,
                _ => throw GcsException.Invalid("labels must be strings."),
            };
            BucketLabels.Check(key, value);
            labels.Add(KeyValuePair.Create(key, value));
            if (labels.Count > 2 * BucketLabels.MaxCount)
            {
                throw GcsException.Invalid($"A bucket has at most {BucketLabels.MaxCount} labels.");
            }
        }

        return labels;
    }

    internal static IObjectStore Store(HttpContext http) => http.RequestServices.GetRequiredService<IObjectStore>();

    private static string? ActiveKey(HttpContext http) => http.RequestServices.GetRequiredService<IOptions<StorageOptions>>().Value.ActiveEncryptionKey;
}
