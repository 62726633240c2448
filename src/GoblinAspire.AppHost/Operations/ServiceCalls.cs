using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using GoblinAspire.ServiceDefaults;

namespace GoblinAspire.AppHost.Operations;

/// <summary>
/// The AppHost calling a service's own API, as a platform engineer would with curl: through the resource's HTTP
/// endpoint, with the service's own credential where it needs one. Failures come back as the service's message.
/// </summary>
internal static class ServiceCalls
{
    public static HttpClient Client(IResourceWithEndpoints resource, string? bearer = null)
    {
        var url = resource.GetEndpoint(PlatformResources.HttpEndpoint).Url;
        var client = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(30) };
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return client;
    }

    public static StringContent Json(object body) =>
        new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    /// <summary>The response's JSON, or a failure naming the status and the service's own error text.</summary>
    public static async Task<(JsonElement Body, string? Error)> ReadAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        JsonElement body = default;
        try
        {
            body = JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (JsonException)
        {
        }

        return response.IsSuccessStatusCode
            ? (body, null)
            : (body, $"{(int)response.StatusCode} {response.ReasonPhrase}: {(text.Length > 500 ? text[..500] : text)}");
    }
}
