using System.Text.Json;

namespace GoblinAspire.ModelRegistry.Mlflow;

/// <summary>MLflow's error codes and the HTTP status its server maps each to.</summary>
public static class ErrorCodes
{
    public const string InvalidParameterValue = "INVALID_PARAMETER_VALUE";
    public const string ResourceAlreadyExists = "RESOURCE_ALREADY_EXISTS";
    public const string ResourceDoesNotExist = "RESOURCE_DOES_NOT_EXIST";
    public const string BadRequest = "BAD_REQUEST";
    public const string InvalidState = "INVALID_STATE";
    public const string EndpointNotFound = "ENDPOINT_NOT_FOUND";
    public const string InternalError = "INTERNAL_ERROR";
    public const string FailedPrecondition = "FAILED_PRECONDITION";
    public const string Unauthenticated = "UNAUTHENTICATED";
    public const string PermissionDenied = "PERMISSION_DENIED";

    public static int StatusOf(string code) => code switch
    {
        ResourceDoesNotExist or EndpointNotFound => StatusCodes.Status404NotFound,
        InternalError => StatusCodes.Status500InternalServerError,
        FailedPrecondition => StatusCodes.Status409Conflict,
        Unauthenticated => StatusCodes.Status401Unauthorized,
        PermissionDenied => StatusCodes.Status403Forbidden,
        _ => StatusCodes.Status400BadRequest,
    };
}

/// <summary>An error answered in MLflow's shape: <c>{"error_code":"…","message":"…"}</c>.</summary>
public sealed class MlflowException : Exception
{
    public MlflowException(string errorCode, string message)
        : base(message)
    {
        ErrorCode = errorCode;
    }

    public MlflowException()
        : this(ErrorCodes.InternalError, "internal error")
    {
    }

    public MlflowException(string message)
        : this(ErrorCodes.InvalidParameterValue, message)
    {
    }

    public MlflowException(string message, Exception innerException)
        : base(message, innerException)
    {
        ErrorCode = ErrorCodes.InternalError;
    }

    public string ErrorCode { get; } = ErrorCodes.InternalError;

    public int StatusCode => ErrorCodes.StatusOf(ErrorCode);

    /// <summary>What MLflow's handlers append to every message of a request field that fails its schema.</summary>
    public const string ApiDocsHint = " See the API docs for more information about request parameters.";

    public static MlflowException Invalid(string message) => new(ErrorCodes.InvalidParameterValue, message);

    public static MlflowException Missing(string parameter) =>
        Invalid($"Missing value for required parameter '{parameter}'.{ApiDocsHint}");

    public static MlflowException NotFound(string message) => new(ErrorCodes.ResourceDoesNotExist, message);

    public static MlflowException Exists(string message) => new(ErrorCodes.ResourceAlreadyExists, message);

    public async Task WriteAsync(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.StatusCode = StatusCode;
        response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteString("error_code", ErrorCode);
        writer.WriteString("message", Message);
        writer.WriteEndObject();
    }
}
