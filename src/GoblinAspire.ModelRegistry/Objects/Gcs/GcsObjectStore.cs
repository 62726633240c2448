// The GCS JSON API from the client side, written here because Google's .NET storage client (Google.Cloud.Storage.V1)
// is not on this machine's package feed; authorisation is Google.Apis.Auth's (GoogleAccessTokens).
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Objects.Gcs;

/// <summary>
/// Buckets and objects in Google Cloud Storage, as plain GCS objects any GCS tool reads. Writes are staged under the
/// registry's artifact root while their bytes arrive (the name and preconditions come only at the commit), then sent
/// as one resumable upload carrying its MD5 and CRC-32C, so GCS itself refuses bytes that changed on the way; GCS
/// makes the object visible only once whole, so no reader ever sees a part. A broken upload connection resumes from
/// the offset GCS confirms. Whole-object reads are checked against the object's CRC-32C as they stream.
/// </summary>
public sealed partial class GcsObjectStore : IObjectStore
{
    public const string JsonClient = "gcs-json";
    public const string MediaClient = "gcs-media";

    /// <summary>Custom metadata key holding the plaintext's SHA-256, which GCS does not compute; hidden from clients.</summary>
    public const string Sha256MetadataKey = "goblin-sha256";

    /// <summary>What a streamed upload holds in memory at once: a multiple of 256 KiB, as GCS requires of a chunk.</summary>
    public const int StreamChunkBytes = 8 * 1024 * 1024;

    private readonly IHttpClientFactory _http;
    private readonly GoogleAccessTokens _tokens;
    private readonly GcsBackendOptions _options;
    private readonly StorageOptions _storage;
    private readonly TimeProvider _time;
    private readonly string _staging;
    private readonly ILogger<GcsObjectStore> _logger;

    public GcsObjectStore(IHttpClientFactory http, GoogleAccessTokens tokens, IOptions<GcsBackendOptions> options, IOptions<StorageOptions> storage, IOptions<ModelRegistryOptions> registry, TimeProvider time, ILogger<GcsObjectStore> logger)
    {
        _logger = logger;
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(storage);
        ArgumentNullException.ThrowIfNull(registry);
        _storage = storage.Value;
        _http = http;
        _tokens = tokens;
        _options = options.Value;
        _time = time;
        _staging = Path.Combine(Path.GetFullPath(registry.Value.ArtifactRoot), ".staging");
        if (Directory.Exists(_staging))
        {
            // Uploads a previous process never committed: they never reached GCS.
            Directory.Delete(_staging, recursive: true);
        }

        Directory.CreateDirectory(_staging);
    }

    public async Task<BucketRecord> CreateBucketAsync(string name, bool encrypted, Dictionary<string, string>? labels, CancellationToken cancellationToken)
    {
        if (encrypted)
        {
            throw GcsException.Invalid("The registry's own encryption keys are not used with the gcs backend: give the bucket a default KMS key in Google Cloud instead.");
        }

        var body = Json(writer =>
        {
            writer.WriteString("name", name);
            if (labels is { Count: > 0 })
            {
                writer.WriteStartObject("labels");
                foreach (var (key, value) in labels)
                {
                    writer.WriteString(key, value);
                }

                writer.WriteEndObject();
            }
        });
        using var document = await SendJsonAsync(HttpMethod.Post, $"storage/v1/b?project={Uri.EscapeDataString(_options.Project)}", body, cancellationToken);
        return GcsRecords.Bucket(document!.RootElement);
    }

    public async Task<BucketRecord?> GetBucketAsync(string name, CancellationToken cancellationToken)
    {
        using var document = await SendJsonAsync(HttpMethod.Get, $"storage/v1/b/{Escape(name)}", null, cancellationToken, notFoundIsNull: true);
        return document is null ? null : GcsRecords.Bucket(document.RootElement);
    }

    public async Task<IReadOnlyList<BucketRecord>> ListBucketsAsync(CancellationToken cancellationToken)
    {
        var buckets = new List<BucketRecord>();
        string? token = null;
        do
        {
            var path = $"storage/v1/b?project={Uri.EscapeDataString(_options.Project)}" + (token is null ? "" : $"&pageToken={Uri.EscapeDataString(token)}");
            using var document = await SendJsonAsync(HttpMethod.Get, path, null, cancellationToken);
            var root = document!.RootElement;
            if (root.TryGetProperty("items", out var items))
            {
                buckets.AddRange(items.EnumerateArray().Select(GcsRecords.Bucket));
            }

            token = root.TryGetProperty("nextPageToken", out var next) ? next.GetString() : null;
        }
        while (token is not null);
        return buckets;
    }

    public async Task<BucketRecord> PatchBucketAsync(string name, IReadOnlyDictionary<string, string?> labels, Preconditions preconditions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(preconditions);
        var body = Json(writer =>
        {
            writer.WriteStartObject("labels");
            foreach (var (key, value) in labels)
            {
                if (value is null)
                {
                    writer.WriteNull(key);
                }
                else
                {
                    writer.WriteString(key, value);
                }
            }

            writer.WriteEndObject();
        });
        var query = Query(preconditions with { IfGenerationMatch = null, IfGenerationNotMatch = null }, "?");
        using var document = await SendJsonAsync(HttpMethod.Patch, $"storage/v1/b/{Escape(name)}{query}", body, cancellationToken);
        return GcsRecords.Bucket(document!.RootElement);
    }

    public async Task DeleteBucketAsync(string name, CancellationToken cancellationToken)
    {
        using var _ = await SendJsonAsync(HttpMethod.Delete, $"storage/v1/b/{Escape(name)}", null, cancellationToken);
    }

    public async Task<ObjectRecord?> GetObjectAsync(string bucket, string name, CancellationToken cancellationToken)
    {
        using var document = await SendJsonAsync(HttpMethod.Get, ObjectPath(bucket, name), null, cancellationToken, notFoundIsNull: true);
        if (document is null)
        {
            await RequireBucketAsync(bucket, cancellationToken);
            return null;
        }

        return GcsRecords.Object(document.RootElement);
    }

    public async Task<ObjectListing> ListObjectsAsync(string bucket, ObjectListQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        var path = new StringBuilder($"storage/v1/b/{Escape(bucket)}/o?maxResults={query.MaxResults.ToString(CultureInfo.InvariantCulture)}");
        void Add(string parameter, string? value)
        {
            if (value is not null)
            {
                path.Append('&').Append(parameter).Append('=').Append(Uri.EscapeDataString(value));
            }
        }

        Add("prefix", query.Prefix);
        Add("delimiter", query.Delimiter);
        Add("startOffset", query.StartOffset);
        Add("endOffset", query.EndOffset);
        Add("pageToken", query.PageToken);
        Add("includeTrailingDelimiter", query.IncludeTrailingDelimiter ? "true" : null);
        Add("matchGlob", query.MatchGlob?.Pattern);
        using var document = await SendJsonAsync(HttpMethod.Get, path.ToString(), null, cancellationToken);
        var root = document!.RootElement;
        var items = root.TryGetProperty("items", out var list) ? list.EnumerateArray().Select(GcsRecords.Object).ToList() : [];
        var prefixes = root.TryGetProperty("prefixes", out var folders) ? folders.EnumerateArray().Select(p => p.GetString()!).ToList() : [];
        return new ObjectListing(items, prefixes, root.TryGetProperty("nextPageToken", out var next) ? next.GetString() : null);
    }

    public Task<PendingObject> BeginWriteAsync(string bucket, CancellationToken cancellationToken) =>
        BeginWriteAtAsync(bucket, Path.Combine(_staging, Guid.NewGuid().ToString("N")), cancellationToken);

    public async Task<PendingObject> BeginWriteAtAsync(string bucket, string path, CancellationToken cancellationToken)
    {
        await RequireBucketAsync(bucket, cancellationToken);
        var file = StagingFile.Create(path, FileShare.Read, _storage.DirectWrites);
        return new PendingObject(bucket, file, keyId: null, key: null);
    }

    public async Task<ObjectRecord> CommitAsync(PendingObject pending, string name, ObjectAttributes attributes, Preconditions preconditions, DeclaredHashes? declared, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(pending);
        ArgumentNullException.ThrowIfNull(attributes);
        ArgumentNullException.ThrowIfNull(preconditions);
        var digests = await pending.CompleteAsync(declared, cancellationToken);
        RefuseReservedMetadata(attributes.Metadata);

        var metadata = Json(writer =>
        {
            writer.WriteString("name", name);
            GcsRecords.WriteAttributes(writer, attributes, digests.Sha256Hex);
            writer.WriteString("md5Hash", digests.Md5Base64);
            writer.WriteString("crc32c", digests.Crc32CBase64);
        });
        using var start = new HttpRequestMessage(HttpMethod.Post, new Uri(_options.Endpoint, $"upload/storage/v1/b/{Escape(pending.Bucket)}/o?uploadType=resumable&name={Uri.EscapeDataString(name)}{Query(preconditions, "&")}"))
        {
            Content = metadata,
        };
        start.Headers.Add("X-Upload-Content-Length", digests.Size.ToString(CultureInfo.InvariantCulture));
        start.Headers.Add("X-Upload-Content-Type", attributes.ContentType ?? "application/octet-stream");
        Uri session;
        using (var started = await SendAsync(JsonClient, start, cancellationToken))
        {
            await ThrowIfFailedAsync(started, cancellationToken);
            session = started.Headers.Location ?? throw new GcsException(502, "backendError", "Cloud Storage started no upload session.");
        }

        var resumes = 0;
        long offset = 0;
        while (true)
        {
            try
            {
                if (resumes > 0)
                {
                    // Where the broken attempt left off, as GCS confirms it (a bytes */size status query).
                    var (confirmed, finished) = await StatusAsync(session, digests.Size, cancellationToken);
                    if (finished is not null)
                    {
                        return finished;
                    }

                    offset = confirmed;
                }

                using var response = await PutFromAsync(session, pending, digests.Size, offset, cancellationToken);
                if (response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Created)
                {
                    return await ReadObjectAsync(response, cancellationToken);
                }

                if ((int)response.StatusCode != 308)
                {
                    await ThrowIfFailedAsync(response, cancellationToken);
                }

                // 308 after the last byte: GCS holds less than was sent; the status query says how much.
                resumes++;
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
            {
                if (++resumes > _options.UploadResumes)
                {
                    throw new GcsException(503, "backendError", "The upload to Cloud Storage kept breaking off; try again.");
                }

                await Task.Delay(TimeSpan.FromMilliseconds(100 << Math.Min(resumes, 6)), _time, cancellationToken);
            }

            if (resumes > _options.UploadResumes)
            {
                throw new GcsException(503, "backendError", "Cloud Storage did not take the whole upload; try again.");
            }
        }
    }

    public async Task<(ObjectRecord Record, Stream Content)?> OpenReadAsync(string bucket, string name, long offset, long? length, CancellationToken cancellationToken)
    {
        if (await GetObjectAsync(bucket, name, cancellationToken) is not { } record)
        {
            return null;
        }

        var start = Math.Clamp(offset, 0, record.Size);
        var count = Math.Min(length ?? record.Size, record.Size - start);
        if (count == 0)
        {
            return (record, Stream.Null);
        }

        // Pinned to the generation just read, so the bytes are that object's even if it is replaced meanwhile.
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_options.Endpoint, $"download/{ObjectPath(bucket, name)}?alt=media&generation={record.Generation.ToString(CultureInfo.InvariantCulture)}"));
        var whole = start == 0 && count == record.Size;
        if (!whole)
        {
            request.Headers.Range = new RangeHeaderValue(start, start + count - 1);
        }

        var response = await SendAsync(MediaClient, request, cancellationToken);
        try
        {
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                response.Dispose();
                return null;
            }

            await ThrowIfFailedAsync(response, cancellationToken);
            var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            return (record, new VerifiedDownloadStream(response, body, count, whole ? record.Crc32C : null));
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    public async Task<ObjectRecord> PatchObjectAsync(string bucket, string name, ObjectAttributes patch, Preconditions preconditions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(patch);
        ArgumentNullException.ThrowIfNull(preconditions);
        RefuseReservedMetadata(patch.Metadata);
        using var document = await SendJsonAsync(HttpMethod.Patch, ObjectPath(bucket, name) + Query(preconditions, "?"), Json(writer => GcsRecords.WriteAttributes(writer, patch, sha256: null)), cancellationToken);
        return GcsRecords.Object(document!.RootElement);
    }

    public async Task<bool> DeleteObjectAsync(string bucket, string name, Preconditions preconditions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(preconditions);
        using var document = await SendJsonAsync(HttpMethod.Delete, ObjectPath(bucket, name) + Query(preconditions, "?"), null, cancellationToken, notFoundIsNull: true, emptyIsDocument: true);
        if (document is null)
        {
            await RequireBucketAsync(bucket, cancellationToken);
            return false;
        }

        return true;
    }

    public async Task<ObjectRecord> CopyObjectAsync(string sourceBucket, string sourceName, Preconditions source, string bucket, string name, ObjectAttributes? attributes, Preconditions preconditions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(preconditions);
        string? sha256 = null;
        if (attributes is not null)
        {
            // New attributes replace the source's metadata, the hidden SHA-256 with it: carry that over.
            RefuseReservedMetadata(attributes.Metadata);
            var original = await GetObjectAsync(sourceBucket, sourceName, cancellationToken) ?? throw GcsException.ObjectNotFound(sourceBucket, sourceName);
            sha256 = original.Sha256;
        }

        var query = Query(preconditions, "?") is { Length: > 0 } destination ? destination + Query(source, "&ifSource") : Query(source, "?ifSource");
        var path = $"{ObjectPath(sourceBucket, sourceName)}/rewriteTo/b/{Escape(bucket)}/o/{Escape(name)}{query}";
        string? token = null;
        while (true)
        {
            var body = attributes is null ? null : Json(writer => GcsRecords.WriteAttributes(writer, attributes, sha256, replace: true));
            var call = token is null ? path : path + (path.Contains('?', StringComparison.Ordinal) ? "&" : "?") + "rewriteToken=" + Uri.EscapeDataString(token);
            using var document = await SendJsonAsync(HttpMethod.Post, call, body, cancellationToken);
            var root = document!.RootElement;
            if (root.GetProperty("done").GetBoolean())
            {
                return GcsRecords.Object(root.GetProperty("resource"));
            }

            // Large copies across locations or storage classes take several calls; each carries the token on.
            token = root.GetProperty("rewriteToken").GetString();
        }
    }

    public async Task<ObjectRecord> ComposeObjectAsync(string bucket, IReadOnlyList<ComposeSource> sources, string name, ObjectAttributes attributes, Preconditions preconditions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(attributes);
        ArgumentNullException.ThrowIfNull(preconditions);
        RefuseReservedMetadata(attributes.Metadata);
        var body = Json(writer =>
        {
            writer.WriteStartArray("sourceObjects");
            foreach (var source in sources)
            {
                writer.WriteStartObject();
                writer.WriteString("name", source.Name);
                if (source.Generation is { } generation)
                {
                    writer.WriteString("generation", generation.ToString(CultureInfo.InvariantCulture));
                }

                if (source.IfGenerationMatch is { } match)
                {
                    writer.WriteStartObject("objectPreconditions");
                    writer.WriteString("ifGenerationMatch", match.ToString(CultureInfo.InvariantCulture));
                    writer.WriteEndObject();
                }

                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteStartObject("destination");
            GcsRecords.WriteAttributes(writer, attributes, sha256: null);
            writer.WriteEndObject();
        });
        using var document = await SendJsonAsync(HttpMethod.Post, $"{ObjectPath(bucket, name)}/compose{Query(preconditions, "?")}", body, cancellationToken);
        return GcsRecords.Object(document!.RootElement);
    }

    public async Task<ObjectRecord> RenameObjectAsync(string bucket, string from, string to, CancellationToken cancellationToken, Preconditions? source = null, Preconditions? destination = null)
    {
        // objects.move renames in place: no byte is written again, however large the weights. It holds to the
        // generation found here, so a source replaced meanwhile is not moved under its old name's checks.
        var original = await GetObjectAsync(bucket, from, cancellationToken) ?? throw GcsException.ObjectNotFound(bucket, from);
        source?.Check(original);
        var sourceChecks = new Preconditions(IfGenerationMatch: original.Generation);
        int unsupported;
        try
        {
            using var document = await SendJsonAsync(HttpMethod.Post, $"{ObjectPath(bucket, from)}/moveTo/o/{Escape(to)}{Query(sourceChecks, "?ifSource")}{Query(destination ?? Preconditions.None, "&")}", null, cancellationToken);
            return GcsRecords.Object(document!.RootElement);
        }
        catch (GcsException ex) when (ex.StatusCode is 404 or 405 or 501)
        {
            unsupported = ex.StatusCode;
        }

        if (await GetObjectAsync(bucket, from, cancellationToken) is null)
        {
            throw GcsException.ObjectNotFound(bucket, from);
        }

        // A Cloud Storage (or compatible server) without objects.move: a server-side copy, then the source goes, only
        // if it is still the copied one. GCS writes the bytes twice that way; the registry still sends none.
        LogNoMove(_logger, bucket, unsupported);
        var copied = await CopyObjectAsync(bucket, from, sourceChecks, bucket, to, null, destination ?? Preconditions.None, cancellationToken);
        await DeleteObjectAsync(bucket, from, sourceChecks, cancellationToken);
        return copied;
    }

    /// <summary>
    /// Streams <paramref name="content"/> to GCS as a resumable upload in <see cref="StreamChunkBytes"/> chunks, with no
    /// local copy: only the chunk in flight is held, so a broken chunk is sent again from where GCS confirms it. MD5,
    /// CRC-32C and SHA-256 are computed on the way; GCS's own MD5 and CRC-32C must match before the SHA-256 is recorded.
    /// </summary>
    public async Task<ObjectRecord> WriteObjectAsync(string bucket, string name, Stream content, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        await RequireBucketAsync(bucket, cancellationToken);
        Uri session;
        using (var start = new HttpRequestMessage(HttpMethod.Post, new Uri(_options.Endpoint, $"upload/storage/v1/b/{Escape(bucket)}/o?uploadType=resumable&name={Uri.EscapeDataString(name)}"))
        {
            Content = Json(writer => writer.WriteString("name", name)),
        })
        {
            start.Headers.Add("X-Upload-Content-Type", "application/octet-stream");
            using var started = await SendAsync(JsonClient, start, cancellationToken);
            await ThrowIfFailedAsync(started, cancellationToken);
            session = started.Headers.Location ?? throw new GcsException(502, "backendError", "Cloud Storage started no upload session.");
        }

        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(StreamChunkBytes);
        try
        {
            using var md5 = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.MD5);
            using var sha256 = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
            var crc = new Crc32C();
            long offset = 0;
            ObjectRecord? finished = null;
            while (finished is null)
            {
                var filled = await content.ReadAtLeastAsync(buffer.AsMemory(0, StreamChunkBytes), StreamChunkBytes, throwOnEndOfStream: false, cancellationToken);
                var chunk = buffer.AsMemory(0, filled);
                md5.AppendData(chunk.Span);
                sha256.AppendData(chunk.Span);
                crc.Append(chunk.Span);
                // A short read is the end; a full chunk may be followed by nothing, which the next round's empty
                // final chunk (bytes */size) settles.
                long? total = filled < StreamChunkBytes ? offset + filled : null;
                finished = await SendChunkAsync(session, chunk, offset, total, cancellationToken);
                offset += filled;
            }

            var md5Base64 = Convert.ToBase64String(md5.GetHashAndReset());
            var crcBase64 = Crc32C.ToBase64(crc.Value);
            if (finished.Md5 != md5Base64 || finished.Crc32C != crcBase64 || finished.Size != offset)
            {
                await DeleteObjectAsync(bucket, name, new Preconditions(IfGenerationMatch: finished.Generation), CancellationToken.None);
                throw GcsException.DataLoss(bucket, name);
            }

            // The SHA-256 is known only at the end: recorded on the object the upload made, not a newer one.
            using var patched = await SendJsonAsync(
                HttpMethod.Patch,
                ObjectPath(bucket, name) + Query(new Preconditions(IfGenerationMatch: finished.Generation), "?"),
                Json(writer => GcsRecords.WriteAttributes(writer, new ObjectAttributes(), Convert.ToHexStringLower(sha256.GetHashAndReset()))),
                cancellationToken);
            return GcsRecords.Object(patched!.RootElement);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Sends one chunk from <paramref name="offset"/>; the object when it was the last, else null.</summary>
    private async Task<ObjectRecord?> SendChunkAsync(Uri session, ReadOnlyMemory<byte> chunk, long offset, long? total, CancellationToken cancellationToken)
    {
        var sent = 0L;
        var resumes = 0;
        while (true)
        {
            try
            {
                var remaining = chunk[(int)sent..];
                using var request = new HttpRequestMessage(HttpMethod.Put, session) { Content = new ReadOnlyMemoryContent(remaining) };
                var size = total is { } t ? t.ToString(CultureInfo.InvariantCulture) : "*";
                request.Content.Headers.TryAddWithoutValidation("Content-Range", remaining.Length == 0 ? $"bytes */{size}" : $"bytes {offset + sent}-{offset + chunk.Length - 1}/{size}");
                using var response = await SendAsync(MediaClient, request, cancellationToken);
                if (response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Created)
                {
                    return await ReadObjectAsync(response, cancellationToken);
                }

                if ((int)response.StatusCode != 308)
                {
                    await ThrowIfFailedAsync(response, cancellationToken);
                }

                var confirmed = Confirmed(response);
                if (total is null && confirmed == offset + chunk.Length)
                {
                    return null;
                }

                // GCS kept less than was sent: send the rest of this chunk from where it stopped.
                sent = Math.Clamp(confirmed - offset, 0, chunk.Length);
                if (++resumes > _options.UploadResumes)
                {
                    throw new GcsException(503, "backendError", "Cloud Storage did not take the whole upload; try again.");
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
            {
                if (++resumes > _options.UploadResumes)
                {
                    throw new GcsException(503, "backendError", "The upload to Cloud Storage kept breaking off; try again.");
                }

                await Task.Delay(TimeSpan.FromMilliseconds(100 << Math.Min(resumes, 6)), _time, cancellationToken);
                var (confirmed, finished) = await StatusAsync(session, total, cancellationToken);
                if (finished is not null)
                {
                    return finished;
                }

                sent = Math.Clamp(confirmed - offset, 0, chunk.Length);
            }
        }
    }

    private static long Confirmed(HttpResponseMessage response) =>
        response.Headers.TryGetValues("Range", out var ranges) && ranges.FirstOrDefault() is { } range
        && range.StartsWith("bytes=0-", StringComparison.Ordinal)
        && long.TryParse(range.AsSpan(8), NumberStyles.None, CultureInfo.InvariantCulture, out var last)
            ? last + 1
            : 0;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cloud Storage answered {Status} to objects.move in bucket {Bucket}: renaming by copy and delete instead, which writes the bytes again on its side.")]
    private static partial void LogNoMove(ILogger logger, string bucket, int status);

    private async Task<HttpResponseMessage> PutFromAsync(Uri session, PendingObject pending, long size, long offset, CancellationToken cancellationToken)
    {
        // The staged frames are read back, and so verified, as they are sent: a disk fault cannot reach GCS unnoticed.
        var file = new FileStream(pending.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using var plaintext = new FrameReadStream(file, size, masterKey: null, encrypted: false, offset, size - offset);
        using var request = new HttpRequestMessage(HttpMethod.Put, session) { Content = new StreamContent(plaintext, 256 * 1024) };
        request.Content.Headers.ContentLength = size - offset;
        request.Content.Headers.TryAddWithoutValidation("Content-Range", size == 0 ? "bytes */0" : $"bytes {offset}-{size - 1}/{size}");
        return await SendAsync(MediaClient, request, cancellationToken);
    }

    /// <summary>How many bytes GCS holds of an interrupted upload, or the object when it was finished after all.</summary>
    private async Task<(long Confirmed, ObjectRecord? Finished)> StatusAsync(Uri session, long? size, CancellationToken cancellationToken)
    {
        using var query = new HttpRequestMessage(HttpMethod.Put, session) { Content = new ByteArrayContent([]) };
        query.Content.Headers.TryAddWithoutValidation("Content-Range", $"bytes */{(size is { } known ? known.ToString(CultureInfo.InvariantCulture) : "*")}");
        using var response = await SendAsync(MediaClient, query, cancellationToken);
        if ((int)response.StatusCode != 308)
        {
            await ThrowIfFailedAsync(response, cancellationToken);
            var finished = await ReadObjectAsync(response, cancellationToken);
            return (finished.Size, finished);
        }

        // No Range header: GCS holds nothing yet.
        return (Confirmed(response), null);
    }

    private static async Task<ObjectRecord> ReadObjectAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using var document = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken), default, cancellationToken);
        return GcsRecords.Object(document.RootElement);
    }

    private async Task RequireBucketAsync(string bucket, CancellationToken cancellationToken)
    {
        if (await GetBucketAsync(bucket, cancellationToken) is null)
        {
            throw GcsException.BucketNotFound(bucket);
        }
    }

    private async Task<JsonDocument?> SendJsonAsync(HttpMethod method, string path, HttpContent? body, CancellationToken cancellationToken, bool notFoundIsNull = false, bool emptyIsDocument = false)
    {
        using var request = new HttpRequestMessage(method, new Uri(_options.Endpoint, path)) { Content = body };
        using var response = await SendAsync(JsonClient, request, cancellationToken);
        if (notFoundIsNull && response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        await ThrowIfFailedAsync(response, cancellationToken);
        if (response.StatusCode == HttpStatusCode.NoContent || response.Content.Headers.ContentLength == 0)
        {
            return emptyIsDocument ? JsonDocument.Parse("{}") : null;
        }

        return await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken), default, cancellationToken);
    }

    private async Task<HttpResponseMessage> SendAsync(string client, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (await _tokens.GetAsync(cancellationToken) is { } token)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        try
        {
            return await _http.CreateClient(client).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (HttpRequestException ex) when (request.Method != HttpMethod.Put)
        {
            throw new GcsException(503, "backendError", $"Cloud Storage could not be reached ({ex.HttpRequestError}).");
        }
    }

    /// <summary>
    /// GCS's own error, passed on as it was given (its status, reason and message: 404, 409, 412, 500 dataLoss, …); but a
    /// refusal of the registry's credentials is the registry's fault, not its client's, so that becomes a 503.
    /// </summary>
    private static async Task ThrowIfFailedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var status = (int)response.StatusCode;
        if (status is 401 or 403)
        {
            throw new GcsException(503, "backendError", $"Cloud Storage refused the registry's credentials ({status}).");
        }

        string? reason = null;
        string? message = null;
        try
        {
            using var document = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken), default, cancellationToken);
            var error = document.RootElement.GetProperty("error");
            message = error.GetProperty("message").GetString();
            reason = error.TryGetProperty("errors", out var errors) && errors.GetArrayLength() > 0 && errors[0].TryGetProperty("reason", out var r) ? r.GetString() : null;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            // Not GCS's error shape (a proxy's page, say): answered below from the status alone.
        }

        throw new GcsException(status, reason ?? (status >= 500 ? "backendError" : "invalid"), message ?? $"Cloud Storage answered {status}.");
    }

    private static void RefuseReservedMetadata(Dictionary<string, string?>? metadata)
    {
        if (metadata?.ContainsKey(Sha256MetadataKey) == true)
        {
            throw GcsException.Invalid($"The metadata key '{Sha256MetadataKey}' is reserved.");
        }
    }

    private static string Query(Preconditions preconditions, string lead)
    {
        // lead is "?" or "&" for destination preconditions ("if…"), or "?ifSource"/"&ifSource" for a copy's source.
        var separator = lead[0];
        var prefix = lead.Length > 1 ? lead[1..] : "if";
        var parts = new List<string>();
        void Add(string name, long? value)
        {
            if (value is { } v)
            {
                parts.Add($"{prefix}{name}={v.ToString(CultureInfo.InvariantCulture)}");
            }
        }

        Add("GenerationMatch", preconditions.IfGenerationMatch);
        Add("GenerationNotMatch", preconditions.IfGenerationNotMatch);
        Add("MetagenerationMatch", preconditions.IfMetagenerationMatch);
        Add("MetagenerationNotMatch", preconditions.IfMetagenerationNotMatch);
        return parts.Count == 0 ? "" : separator + string.Join('&', parts);
    }

    private static string ObjectPath(string bucket, string name) => $"storage/v1/b/{Escape(bucket)}/o/{Escape(name)}";

    // Object names travel as one path segment: slashes become %2F, as GCS requires.
    private static string Escape(string segment) => Uri.EscapeDataString(segment);

    private static ByteArrayContent Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        var content = new ByteArrayContent(buffer.WrittenSpan.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "UTF-8" };
        return content;
    }
}
