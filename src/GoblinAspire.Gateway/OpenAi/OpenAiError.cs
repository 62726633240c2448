using System.Text.Json;

namespace GoblinAspire.Gateway.OpenAi;

/// <summary>An error in OpenAI's shape: <c>{"error":{"message","type","param","code"}}</c>.</summary>
public sealed record OpenAiError(int StatusCode, string Message, string Type, string? Param = null, string? Code = null) : IResult
{
    public const string InvalidRequest = "invalid_request_error";
    public const string ServerError = "server_error";
    public const string RateLimit = "rate_limit_exceeded";

    public static OpenAiError InvalidJson() => new(
        StatusCodes.Status400BadRequest,
        "We could not parse the JSON body of your request. The API expects a JSON object in the request body.",
        InvalidRequest);

    public static OpenAiError MissingParameter(string param) => new(
        StatusCodes.Status400BadRequest, $"Missing required parameter: '{param}'.", InvalidRequest, param, "missing_required_parameter");

    public static OpenAiError InvalidParameter(string param, string message) => new(
        StatusCodes.Status400BadRequest, message, InvalidRequest, param, "invalid_value");

    public static OpenAiError ModelNotFound(string model) => new(
        StatusCodes.Status404NotFound, $"The model `{model}` does not exist or you do not have access to it.", InvalidRequest, "model", "model_not_found");

    public static OpenAiError TooLarge(long limit) => new(
        StatusCodes.Status413PayloadTooLarge, $"The request body is larger than the limit of {limit} bytes.", InvalidRequest, null, "request_too_large");

    /// <summary>The error for a status the framework set without a body: no route, wrong method, a refused request.</summary>
    public static OpenAiError ForStatus(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var request = http.Request;
        // The path is echoed as the server decoded it, so control characters are removed first.
        var path = string.Concat(request.Path.Value?.Where(c => !char.IsControl(c) && !char.IsSurrogate(c)) ?? []);
        path = path.Length > 200 ? path[..200] + "…" : path;
        var status = http.Response.StatusCode;
        return status switch
        {
            StatusCodes.Status404NotFound => new(status, $"Invalid URL ({request.Method} {path})", InvalidRequest, null, "unknown_url"),
            StatusCodes.Status405MethodNotAllowed => new(status, $"Method {request.Method} is not allowed for {path}.", InvalidRequest, null, "method_not_allowed"),
            StatusCodes.Status413PayloadTooLarge => new(status, "The request body is too large.", InvalidRequest, null, "request_too_large"),
            StatusCodes.Status415UnsupportedMediaType => new(status, "The request's content type is not supported; send application/json.", InvalidRequest, null, "unsupported_media_type"),
            >= 500 => new(status, "The server could not answer this request.", ServerError),
            _ => new(status, $"The request could not be served (HTTP {status}).", InvalidRequest, null, null),
        };
    }

    /// <summary>As an endpoint's result, so handlers can return it among TypedResults.</summary>
    public Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        return WriteAsync(httpContext.Response);
    }

    public void WriteTo(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteStartObject("error");
        writer.WriteString("message", Message);
        writer.WriteString("type", Type);
        WriteNullable(writer, "param", Param);
        WriteNullable(writer, "code", Code);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    public byte[] ToJsonBytes()
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteTo(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>When the client may try again (<c>Retry-After</c>), for errors that pass.</summary>
    public TimeSpan? RetryAfter { get; init; }

    public async Task WriteAsync(HttpResponse response, TimeSpan? retryAfter = null)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.StatusCode = StatusCode;
        response.ContentType = "application/json";
        if ((retryAfter ?? RetryAfter) is { } delay)
        {
            response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(delay.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        await response.Body.WriteAsync(ToJsonBytes());
    }

    private static void WriteNullable(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }
}
