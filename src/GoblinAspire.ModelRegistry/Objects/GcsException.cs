using System.Text.Json;

namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>
/// An error answered in the GCS JSON API's shape:
/// <c>{"error":{"code":404,"message":"…","errors":[{"domain":"global","reason":"notFound","message":"…"}]}}</c>.
/// </summary>
public sealed class GcsException : Exception
{
    public GcsException(int statusCode, string reason, string message)
        : base(message)
    {
        StatusCode = statusCode;
        Reason = reason;
    }

    public GcsException()
        : this(500, "backendError", "internal error")
    {
    }

    public GcsException(string message)
        : this(400, "invalid", message)
    {
    }

    public GcsException(int statusCode, string reason, string message, Exception innerException)
        : base(message, innerException)
    {
        StatusCode = statusCode;
        Reason = reason;
    }

    public GcsException(string message, Exception innerException)
        : base(message, innerException)
    {
        StatusCode = 500;
        Reason = "backendError";
    }

    public int StatusCode { get; }

    public string Reason { get; } = "backendError";

    public static GcsException Invalid(string message) => new(400, "invalid", message);

    public static GcsException Required(string what) => new(400, "required", $"Required {what}.");

    public static GcsException BucketNotFound(string bucket) => new(404, "notFound", $"The specified bucket does not exist: {bucket}");

    public static GcsException ObjectNotFound(string bucket, string name) => new(404, "notFound", $"No such object: {bucket}/{name}");

    public static GcsException ConditionNotMet() => new(412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.");

    public static GcsException Conflict(string message) => new(409, "conflict", message);

    public static GcsException DataLoss(string bucket, string name) =>
        new(500, "dataLoss", $"The stored data of {bucket}/{name} failed its integrity check; it is not served.");

    public async Task WriteAsync(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        // Drops what a failed download had already set (Content-Length, hashes) before the error replaces it.
        response.Clear();
        response.StatusCode = StatusCode;
        response.ContentType = "application/json; charset=UTF-8";
        await using var writer = new Utf8JsonWriter(response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteStartObject("error");
        writer.WriteNumber("code", StatusCode);
        writer.WriteString("message", Message);
        writer.WriteStartArray("errors");
        writer.WriteStartObject();
        writer.WriteString("domain", "global");
        writer.WriteString("reason", Reason);
        writer.WriteString("message", Message);
        writer.WriteEndObject();
        writer.WriteEndArray();
        writer.WriteEndObject();
        writer.WriteEndObject();
    }
}
