using System.Net.Sockets;

namespace GoblinAspire.Gateway.Protocols;

/// <summary>
/// One request to one provider and the relay of its answer, with every way it can fail returned as an
/// <see cref="UpstreamFailure"/>, as YARP's forwarder returns a <c>ForwarderError</c>: what to do about a failure
/// (try the next provider, end a stream, count it against a circuit) is decided by the caller, not here.
/// Cancellation is the one thing that still travels as an exception: it belongs to whoever cancelled.
/// </summary>
public static class UpstreamExchange
{
    /// <returns>Null once the answer (or a client error in OpenAI's shape) has been relayed to the client whole.</returns>
    public static async Task<UpstreamFailure?> SendAsync(
        HttpClient client,
        IProviderProtocol protocol,
        HttpRequestMessage request,
        IClientAnswer answer,
        TimeProvider time,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(protocol);
        ArgumentNullException.ThrowIfNull(answer);
        HttpResponseMessage upstream;
        try
        {
            upstream = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            return new UpstreamFailure(
                ex.InnerException is SocketException or IOException ? FailureReasons.Connect : FailureReasons.Reset,
                ex.HttpRequestError == HttpRequestError.ConnectionError ? "could not connect to the provider" : "the request to the provider failed");
        }

        using (upstream)
        {
            var status = (int)upstream.StatusCode;
            if (status == StatusCodes.Status429TooManyRequests)
            {
                return new UpstreamFailure(FailureReasons.RateLimited, "HTTP 429 from the provider", status, UpstreamBody.RetryAfter(upstream, time));
            }

            if (status >= 500)
            {
                return new UpstreamFailure(FailureReasons.ServerError, $"HTTP {status} from the provider", status, UpstreamBody.RetryAfter(upstream, time));
            }

            try
            {
                await (status >= 400
                    ? protocol.RelayClientErrorAsync(upstream, answer, cancellationToken)
                    : protocol.RelayAsync(upstream, answer, cancellationToken));
                return null;
            }
            catch (UpstreamFault fault)
            {
                return fault.Failure;
            }
            catch (Exception) when (answer.Committed && !cancellationToken.IsCancellationRequested)
            {
                return new UpstreamFailure(FailureReasons.StreamInterrupted, "the answer broke off");
            }
            catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
            {
                // A translated answer missing a field its protocol promises: the provider is at fault.
                return new UpstreamFailure(FailureReasons.Protocol, "the provider's answer is not in its protocol's shape");
            }
        }
    }
}
