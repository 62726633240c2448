using Microsoft.AspNetCore.Http.Features;

namespace GoblinAspire.Gateway.OpenAi;

internal static class RequestBody
{
    /// <summary>
    /// Reads the whole body, or returns null and a 413 when it is over <paramref name="limit"/>: a declared length
    /// is refused before reading, an undeclared one as soon as it passes the limit.
    /// </summary>
    public static async Task<(byte[]? Body, OpenAiError? Error)> ReadAsync(HttpRequest request, long limit, CancellationToken cancellationToken)
    {
        // Kestrel's own limit would answer in its format; this limit answers in OpenAI's.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
        {
            feature.MaxRequestBodySize = null;
        }

        if (request.ContentLength is { } declared)
        {
            if (declared > limit)
            {
                return (null, OpenAiError.TooLarge(limit));
            }

            var exact = new byte[declared];
            try
            {
                await request.Body.ReadExactlyAsync(exact, cancellationToken);
            }
            catch (EndOfStreamException)
            {
                return (null, new OpenAiError(StatusCodes.Status400BadRequest, "The request body is shorter than its Content-Length.", OpenAiError.InvalidRequest));
            }

            return (exact, null);
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                return (null, OpenAiError.TooLarge(limit));
            }

            buffer.Write(chunk, 0, read);
        }

        return (buffer.ToArray(), null);
    }
}
