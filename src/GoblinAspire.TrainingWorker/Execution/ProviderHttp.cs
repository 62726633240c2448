using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace GoblinAspire.TrainingWorker.Execution;

/// <summary>JSON calls to a GPU provider with a bearer key. The key is only ever in the Authorization header, never in a message.</summary>
public static class ProviderHttp
{
    public static async Task<JsonDocument?> SendAsync(HttpClient client, HttpMethod method, Uri url, string apiKey, JsonNode? body, string provider, CancellationToken cancellationToken, bool notFoundIsNull = false)
    {
        ArgumentNullException.ThrowIfNull(client);
        using var request = new HttpRequestMessage(method, url);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, new MediaTypeHeaderValue("application/json"));
        }

        HttpResponseMessage response;
        try
        {
            response = await client.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new ProviderException($"{provider} is unreachable: {ex.Message}", transient: true);
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ProviderException($"{provider} did not answer in time", transient: true);
        }

        using (response)
        {
            if (notFoundIsNull && response.StatusCode == HttpStatusCode.NotFound)
            {
                return null;
            }

            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                var transient = (int)response.StatusCode >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests;
                throw new ProviderException($"{provider} answered {(int)response.StatusCode} to {method} {url.AbsolutePath}: {Clip(text)}", transient);
            }

            try
            {
                return text.Length == 0 ? JsonDocument.Parse("{}") : JsonDocument.Parse(text);
            }
            catch (JsonException)
            {
                throw new ProviderException($"{provider} answered {method} {url.AbsolutePath} with a body that is not JSON", transient: true);
            }
        }
    }

    public static decimal? Price(JsonElement element, string property) =>
        element.TryGetProperty(property, out var value) ? value.ValueKind switch
        {
            JsonValueKind.Number => value.GetDecimal(),
            JsonValueKind.String when decimal.TryParse(value.GetString(), System.Globalization.NumberStyles.Number, System.Globalization.CultureInfo.InvariantCulture, out var parsed) => parsed,
            _ => null,
        } : null;

    public static string? Text(JsonElement element, string property) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static string Clip(string text) => text.Length <= 300 ? text : text[..300] + "…";
}
