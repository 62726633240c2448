using System.Globalization;
using System.Text.Json;
using GoblinAspire.ModelRegistry.Artifacts;
using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Operations;
using GoblinAspire.ModelRegistry.Storage;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace GoblinAspire.ModelRegistry.Api;

/// <summary>
/// The platform's model operations beside MLflow's API, on the same storage and in the same error shape. A model name
/// containing '/' travels percent-encoded (<c>%2F</c>) in these paths.
/// </summary>
public static class ModelOperationEndpoints
{
    public const string Prefix = "/api/v1/models";

    public static IEndpointRouteBuilder MapModelOperations(this IEndpointRouteBuilder app)
    {
        var models = app.MapGroup(Prefix);
        models.MapPost("/{name}/versions", Register);
        models.MapPut("/{name}/gates", MlflowEndpoint.Of(async (args, http, ct) =>
        {
            var name = Name(http);
            await Operations(http).SetGatesAsync(name, args.Strings("conditions"), ct);
            var gates = await Operations(http).GatesAsync(name, ct);
            return w => WriteGates(w, gates);
        }));
        models.MapGet("/{name}/gates", MlflowEndpoint.Of(async (_, http, ct) =>
        {
            var gates = await Operations(http).GatesAsync(Name(http), ct);
            return w => WriteGates(w, gates);
        }));
        models.MapPost("/{name}/versions/{version}/promote", async (HttpContext http) =>
        {
            try
            {
                var version = await Operations(http).PromoteAsync(Name(http), Versions.Parse((string?)http.GetRouteValue("version")), MlflowEndpoint.Actor(http), http.RequestAborted);
                await WriteAsync(http, StatusCodes.Status200OK, w => WriteVersion(w, version));
            }
            catch (PromotionRefusedException refused)
            {
                await WriteAsync(http, StatusCodes.Status409Conflict, w =>
                {
                    w.WriteString("error_code", ErrorCodes.FailedPrecondition);
                    w.WriteString("message", refused.Message);
                    w.WriteStartArray("failed_conditions");
                    foreach (var failure in refused.Failed)
                    {
                        w.WriteStartObject();
                        w.WriteString("condition", failure.Condition);
                        if (failure.Actual is { } actual && double.IsFinite(actual))
                        {
                            w.WriteNumber("actual", actual);
                        }
                        else
                        {
                            w.WriteNull("actual");
                        }

                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                });
            }
            catch (MlflowException ex)
            {
                await ex.WriteAsync(http.Response);
            }
        });
        models.MapPost("/{name}/rollback", MlflowEndpoint.Of(async (args, http, ct) =>
        {
            var version = await Operations(http).RollbackAsync(Name(http), Versions.Parse(args.String("version")), MlflowEndpoint.Actor(http), ct);
            return w => WriteVersion(w, version);
        }));
        models.MapGet("/{name}/production", MlflowEndpoint.Of(async (_, http, ct) =>
        {
            var production = await Operations(http).GetProductionAsync(Name(http), ct);
            var url = await http.RequestServices.GetRequiredService<ArtifactUrls>().SignedDownloadAsync(http, production.ArtifactPath, ct)
                ?? throw new MlflowException(ErrorCodes.InvalidState, $"The production version's artifact '{production.ArtifactPath}' is missing from the store.");
            return w =>
            {
                WriteVersion(w, production.Version);
                w.WriteString("artifact_path", production.ArtifactPath);
                w.WriteString("download_url", url.AbsoluteUri);
                if (production.Sha256 is { } sha256)
                {
                    w.WriteString("sha256", sha256);
                }

                if (production.Size is { } size)
                {
                    w.WriteNumber("size_bytes", size);
                }

                w.WriteStartObject("metrics");
                foreach (var metric in production.Metrics)
                {
                    if (double.IsFinite(metric.Value))
                    {
                        w.WriteNumber(metric.Key, metric.Value);
                    }
                }

                w.WriteEndObject();
            };
        }));
        return app;
    }

    /// <summary>
    /// <c>multipart/form-data</c>: an optional <c>metadata</c> part (JSON: <c>metrics</c>, <c>params</c>,
    /// <c>description</c>) first, then one <c>artifact</c> file part, streamed to the store without buffering.
    /// </summary>
    private static async Task Register(HttpContext http)
    {
        try
        {
            if (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            {
                limit.MaxRequestBodySize = null;
            }

            var boundary = MediaTypeHeaderValue.TryParse(http.Request.ContentType, out var contentType) && contentType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
                ? HeaderUtilities.RemoveQuotes(contentType.Boundary).Value
                : null;
            if (string.IsNullOrEmpty(boundary))
            {
                throw new MlflowException(ErrorCodes.BadRequest, "Registering a version takes multipart/form-data with a 'metadata' part and an 'artifact' file part.");
            }

            var reader = new MultipartReader(boundary, http.Request.Body) { HeadersLengthLimit = 16 * 1024 };
            var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
            var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
            string? description = null;
            while (await reader.ReadNextSectionAsync(http.RequestAborted) is { } section)
            {
                var disposition = ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var parsed) ? parsed : null;
                var partName = (disposition is null ? null : HeaderUtilities.RemoveQuotes(disposition.Name).Value);
                if (partName == "metadata")
                {
                    description = await ReadMetadataAsync(section.Body, metrics, parameters, http.RequestAborted);
                }
                else if (partName == "artifact")
                {
                    var fileName = (disposition is null ? null : HeaderUtilities.RemoveQuotes(disposition.FileName).Value) ?? throw MlflowException.Invalid("The artifact part needs a filename.");
                    var registered = await Operations(http).RegisterAsync(Name(http), fileName, section.Body, metrics, parameters, description, MlflowEndpoint.Actor(http), http.RequestAborted);
                    await WriteAsync(http, StatusCodes.Status201Created, w =>
                    {
                        WriteVersion(w, registered.Version);
                        w.WriteString("run_id", registered.RunId);
                        w.WriteString("artifact_path", registered.ArtifactPath);
                        w.WriteNumber("size_bytes", registered.Size);
                        w.WriteString("sha256", registered.Sha256);
                    });
                    return;
                }
            }

            throw MlflowException.Invalid("The request has no 'artifact' file part.");
        }
        catch (MlflowException ex)
        {
            await ex.WriteAsync(http.Response);
        }
        catch (InvalidDataException ex)
        {
            await new MlflowException(ErrorCodes.BadRequest, $"The multipart body is malformed: {ex.Message}").WriteAsync(http.Response);
        }
        catch (BadHttpRequestException ex) when (!http.Response.HasStarted)
        {
            // The body ended before its declared length or broke off: the client's fault, and nothing was kept.
            await new MlflowException(ErrorCodes.BadRequest, $"The request body could not be read whole: {ex.Message}").WriteAsync(http.Response);
        }
    }

    private static async Task<string?> ReadMetadataAsync(Stream body, Dictionary<string, double> metrics, Dictionary<string, string> parameters, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        await body.CopyToAsync(buffer, cancellationToken);
        if (buffer.Length > 1024 * 1024)
        {
            throw MlflowException.Invalid("The metadata part is larger than 1 MB.");
        }

        try
        {
            using var document = JsonDocument.Parse(buffer.ToArray());
            var root = document.RootElement;
            if (root.TryGetProperty("metrics", out var m) && m.ValueKind == JsonValueKind.Object)
            {
                foreach (var metric in m.EnumerateObject())
                {
                    metrics[metric.Name] = metric.Value.ValueKind == JsonValueKind.Number ? metric.Value.GetDouble() : throw MlflowException.Invalid($"Metric '{metric.Name}' must be a number.");
                }
            }

            if (root.TryGetProperty("params", out var p) && p.ValueKind == JsonValueKind.Object)
            {
                foreach (var parameter in p.EnumerateObject())
                {
                    parameters[parameter.Name] = parameter.Value.ValueKind == JsonValueKind.String ? parameter.Value.GetString()! : parameter.Value.GetRawText();
                }
            }

            return root.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? Validation.Description(d.GetString()) : null;
        }
        catch (JsonException)
        {
            throw new MlflowException(ErrorCodes.BadRequest, "The metadata part is not valid JSON.");
        }
    }

    private static async Task WriteAsync(HttpContext http, int status, Action<Utf8JsonWriter> write)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(http.Response.BodyWriter);
        writer.WriteStartObject();
        write(writer);
        writer.WriteEndObject();
    }

    private static void WriteVersion(Utf8JsonWriter writer, ModelVersion version)
    {
        writer.WritePropertyName("model_version");
        MlflowJson.Version(writer, version);
    }

    private static void WriteGates(Utf8JsonWriter writer, IReadOnlyList<PromotionGate> gates)
    {
        writer.WriteStartArray("conditions");
        foreach (var gate in gates)
        {
            writer.WriteStringValue(gate.ToString());
        }

        writer.WriteEndArray();
    }

    private static string Name(HttpContext http) => Validation.Name(Uri.UnescapeDataString((string?)http.GetRouteValue("name") ?? ""), "name");

    private static ModelOperations Operations(HttpContext http) => http.RequestServices.GetRequiredService<ModelOperations>();
}
