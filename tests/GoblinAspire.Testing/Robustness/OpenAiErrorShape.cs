using System.Text.Json;

namespace GoblinAspire.Testing.Robustness;

/// <summary>The rule every OpenAI-compatible answer keeps: an error is a JSON body with OpenAI's <c>error</c> object.</summary>
public static class OpenAiErrorShape
{
    public static string? Check(MutatedRequest request, HttpResponseMessage response, byte[] body)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(body);
        if ((int)response.StatusCode < 400 || request.Method == HttpMethod.Head)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(body);
            if (!document.RootElement.TryGetProperty("error", out var error) || error.ValueKind != JsonValueKind.Object)
            {
                return $"{(int)response.StatusCode} without an error object: {RobustnessRun.Excerpt(body)}";
            }

            if (!error.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(message.GetString()))
            {
                return $"{(int)response.StatusCode} without a message: {RobustnessRun.Excerpt(body)}";
            }

            return error.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String
                ? null
                : $"{(int)response.StatusCode} without a type: {RobustnessRun.Excerpt(body)}";
        }
        catch (JsonException)
        {
            return $"{(int)response.StatusCode} with a body that is not JSON: {RobustnessRun.Excerpt(body)}";
        }
    }
}
