using System.Buffers;
using System.IO.Pipelines;
using System.Net.Http.Headers;
using System.Text.Json;
using GoblinAspire.Gateway.OpenAi;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Protocols;

/// <summary>
/// Any OpenAI-compatible server (vLLM, llama.cpp server, OpenAI, Groq, ChatFallback). Requests and answers pass
/// through byte for byte; only the model name is swapped for the upstream's name. Usage is read on the way past.
/// </summary>
public class OpenAiProtocol(IOptions<GatewayOptions> options) : IProviderProtocol
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    public virtual string System => "openai";

    protected long MaxResponseBytes { get; } = options.Value.MaxUpstreamResponseBytes;

    public HttpRequestMessage CreateRequest(ProviderOptions provider, string upstreamModel, InferenceRequest request)
    {
        ArgumentNullException.ThrowIfNull(provider);
        ArgumentNullException.ThrowIfNull(request);
        var message = new HttpRequestMessage(HttpMethod.Post, Endpoint(provider, request.Operation switch
        {
            InferenceOperation.Chat => "/chat/completions",
            InferenceOperation.Completions => "/completions",
            InferenceOperation.Responses => "/responses",
            _ => "/embeddings",
        }))
        {
            Content = new ReadOnlyMemoryContent(request.BodyWithModel(upstreamModel)),
        };
        message.Content.Headers.ContentType = Json;
        Authorize(message, provider);
        return message;
    }

    public HttpRequestMessage? CreateProbe(ProviderOptions provider)
    {
        ArgumentNullException.ThrowIfNull(provider);
        var message = new HttpRequestMessage(HttpMethod.Get, ProbeUri(provider));
        Authorize(message, provider);
        return message;
    }

    public async Task RelayAsync(HttpResponseMessage upstream, IClientAnswer relay, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        ArgumentNullException.ThrowIfNull(relay);
        if (!relay.Request.Stream)
        {
            var body = await UpstreamBody.ReadAsync(upstream, MaxResponseBytes, cancellationToken);
            relay.MarkFirstToken();
            ReadUsage(body, relay);
            await relay.CommitAsync(StatusCodes.Status200OK, upstream.Content.Headers.ContentType?.ToString() ?? "application/json", upstream, copyUpstreamHeaders: true, contentLength: body.Length);
            await relay.Body.WriteAsync(body, cancellationToken);
            return;
        }

        var stream = await upstream.Content.ReadAsStreamAsync(cancellationToken);
        var events = new SseReader(PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, leaveOpen: false)));
        while (await UpstreamBody.NextEventAsync(events, cancellationToken) is { } sseEvent)
        {
            if (!relay.Committed)
            {
                await relay.CommitAsync(StatusCodes.Status200OK, "text/event-stream; charset=utf-8", upstream, copyUpstreamHeaders: true);
            }

            ReadStreamUsage(sseEvent, relay);
            await relay.WriteAsync(sseEvent, flush: !events.HasBufferedEvent, cancellationToken);
        }

        if (!relay.Committed)
        {
            throw new UpstreamFault(FailureReasons.Protocol, "the provider ended the stream without any event");
        }
    }

    public async Task RelayClientErrorAsync(HttpResponseMessage upstream, IClientAnswer relay, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        ArgumentNullException.ThrowIfNull(relay);
        var body = await UpstreamBody.ReadAsync(upstream, 1024 * 1024, cancellationToken);
        if (UpstreamBody.IsOpenAiError(body))
        {
            await relay.CommitAsync((int)upstream.StatusCode, "application/json", upstream, copyUpstreamHeaders: true);
            await relay.Body.WriteAsync(body, cancellationToken);
            return;
        }

        var error = new OpenAiError((int)upstream.StatusCode, $"The provider rejected the request with HTTP {(int)upstream.StatusCode}.", OpenAiError.InvalidRequest);
        await relay.CommitAsync(error.StatusCode, "application/json");
        await relay.Body.WriteAsync(error.ToJsonBytes(), cancellationToken);
    }

    protected virtual Uri Endpoint(ProviderOptions provider, string path) => UpstreamUrls.Combine(provider.BaseUrl!, "/v1", path);

    protected virtual Uri ProbeUri(ProviderOptions provider) => Endpoint(provider, "/models");

    protected virtual void Authorize(HttpRequestMessage message, ProviderOptions provider)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(provider);
        if (!string.IsNullOrEmpty(provider.ApiKey))
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", provider.ApiKey);
        }
    }

    /// <summary>Usage and model of a whole OpenAI answer: top-level <c>usage</c> and <c>model</c> only.</summary>
    internal static void ReadUsage(ReadOnlySpan<byte> json, IClientAnswer relay)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return;
            }

            ReadAnswerObject(ref reader, relay);
        }
        catch (JsonException)
        {
            // Usage is for accounting; an odd body still goes to the client as the provider sent it.
        }
    }

    /// <summary>
    /// An answer object's members: <c>usage</c> and <c>model</c>, and the same inside <c>response</c> (a Responses API
    /// stream carries its usage in the <c>response.completed</c> event's response).
    /// </summary>
    private static void ReadAnswerObject(ref Utf8JsonReader reader, IClientAnswer relay)
    {
        {
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("response"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        ReadAnswerObject(ref reader, relay);
                        continue;
                    }
                }
                else if (reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        ReadUsageObject(ref reader, relay);
                        continue;
                    }
                }
                else if (reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        relay.ResponseModel = reader.GetString();
                        continue;
                    }
                }
                else
                {
                    reader.Read();
                }

                reader.Skip();
            }
        }
    }

    private static void ReadStreamUsage(ReadOnlySequence<byte> sseEvent, IClientAnswer relay)
    {
        // Only the usage chunk (and error chunks) carry "usage"; the check is a vectorised search.
        var span = sseEvent.IsSingleSegment ? sseEvent.FirstSpan : sseEvent.ToArray();
        if (span.IndexOf("\"usage\""u8) < 0)
        {
            return;
        }

        var data = SseReader.Data(sseEvent, out _);
        if (data.Length > 0 && data[0] == (byte)'{')
        {
            ReadUsage(data, relay);
        }
    }

    private static void ReadUsageObject(ref Utf8JsonReader reader, IClientAnswer relay)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            // Chat and completions count prompt and completion tokens; the Responses API input and output tokens.
            var isPrompt = reader.ValueTextEquals("prompt_tokens"u8) || reader.ValueTextEquals("input_tokens"u8);
            var isCompletion = reader.ValueTextEquals("completion_tokens"u8) || reader.ValueTextEquals("output_tokens"u8);
            reader.Read();
            if (reader.TokenType == JsonTokenType.Number && (isPrompt || isCompletion))
            {
                if (isPrompt)
                {
                    relay.InputTokens = reader.GetInt64();
                }
                else
                {
                    relay.OutputTokens = reader.GetInt64();
                }
            }
            else
            {
                reader.Skip();
            }
        }
    }
}

/// <summary>RunPod serverless endpoints through their OpenAI-compatible route, with RunPod's API key.</summary>
public sealed class RunPodProtocol(IOptions<GatewayOptions> options) : OpenAiProtocol(options)
{
    public const string DefaultBaseUrl = "https://api.runpod.ai";

    public override string System => "runpod";

    protected override Uri Endpoint(ProviderOptions provider, string path)
    {
        ArgumentNullException.ThrowIfNull(provider);
        var root = (provider.BaseUrl ?? DefaultBaseUrl).TrimEnd('/');
        return new Uri($"{root}/v2/{Uri.EscapeDataString(provider.EndpointId!)}/openai/v1{path}", UriKind.Absolute);
    }

    /// <summary>RunPod's endpoint health: workers and queue, without running a job.</summary>
    protected override Uri ProbeUri(ProviderOptions provider)
    {
        ArgumentNullException.ThrowIfNull(provider);
        var root = (provider.BaseUrl ?? DefaultBaseUrl).TrimEnd('/');
        return new Uri($"{root}/v2/{Uri.EscapeDataString(provider.EndpointId!)}/health", UriKind.Absolute);
    }
}
