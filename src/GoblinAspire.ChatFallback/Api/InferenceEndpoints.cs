using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using GoblinAspire.ChatFallback.Chat;
using GoblinAspire.ChatFallback.Inference;
using GoblinAspire.ChatFallback.Serving;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ChatFallback.Api;

/// <summary>OpenAI's <c>/v1/chat/completions</c>, <c>/v1/completions</c> and <c>/v1/models</c>, answered from the loaded model.</summary>
public static class InferenceEndpoints
{
    public const string UpstreamClient = "chat-upstream";

    public static IEndpointRouteBuilder MapInference(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/chat/completions", (HttpContext http) => CompleteAsync(http, chat: true));
        app.MapPost("/v1/completions", (HttpContext http) => CompleteAsync(http, chat: false));
        app.MapGet("/v1/models", async (HttpContext http) =>
        {
            var slot = http.RequestServices.GetRequiredService<ModelSlot>();
            var options = http.RequestServices.GetRequiredService<IOptions<ChatFallbackOptions>>().Value;
            var name = slot.Model?.Name ?? options.Upstream.Model;
            http.Response.ContentType = "application/json";
            await using var writer = new Utf8JsonWriter(http.Response.BodyWriter);
            writer.WriteStartObject();
            writer.WriteString("object", "list");
            writer.WriteStartArray("data");
            if (name is not null)
            {
                writer.WriteStartObject();
                writer.WriteString("id", name);
                writer.WriteString("object", "model");
                writer.WriteNumber("created", 0);
                writer.WriteString("owned_by", slot.Model is null ? "upstream" : "goblin");
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        });
        return app;
    }

    private static async Task CompleteAsync(HttpContext http, bool chat)
    {
        try
        {
            var services = http.RequestServices;
            var options = services.GetRequiredService<IOptions<ChatFallbackOptions>>().Value;
            var body = await ReadBodyAsync(http.Request, options.MaxRequestBodyBytes, http.RequestAborted);
            using var document = Parse(body);
            var request = ParseRequest(document.RootElement, chat);
            var slot = services.GetRequiredService<ModelSlot>();
            var model = slot.Model;
            if (!Serves(request.Model, model?.Name ?? options.Upstream.Model, options))
            {
                throw new OpenAiException(404, $"The model `{request.Model}` does not exist or you do not have access to it.", param: "model", code: "model_not_found");
            }

            if (model is null)
            {
                if (options.Upstream.BaseUrl is not null)
                {
                    await ForwardAsync(http, options.Upstream, chat, body);
                    return;
                }

                throw new OpenAiException(503, $"No model is loaded: {slot.Status}.", "service_unavailable", code: "model_not_loaded");
            }

            var (prompt, stops) = Prompt(model, request, options);
            var context = Math.Min(options.ContextLength, model.Config.ContextLength);
            if (prompt.Count >= context)
            {
                throw new OpenAiException(400, $"This model's maximum context length is {context} tokens; the prompt has {prompt.Count}.", param: chat ? "messages" : "prompt", code: "context_length_exceeded");
            }

            using var slotHeld = await services.GetRequiredService<GenerationGate>().EnterAsync(http.RequestAborted);
            if (slotHeld is null)
            {
                http.Response.Headers.RetryAfter = "2";
                throw new OpenAiException(429, "The CPU fallback is busy and its queue is full; retry shortly.", "rate_limit_error", code: "queue_full");
            }

            var maxTokens = Math.Min(request.MaxTokens ?? options.DefaultMaxTokens, context - prompt.Count);
            var generation = new GenerationRequest(prompt, maxTokens, request.Sampling, stops);
            await RespondAsync(http, model, generation, request, chat, context, options.EffectiveThreads);
        }
        catch (OpenAiException ex) when (!http.Response.HasStarted)
        {
            await ex.WriteAsync(http.Response);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its generation has stopped.
        }
    }

    /// <summary>A string that cannot become text (an escaped lone surrogate, <c>"\ud800"</c>) is the client's error.</summary>
    private static CompletionRequest ParseRequest(JsonElement root, bool chat)
    {
        try
        {
            return CompletionRequest.Parse(root, chat);
        }
        catch (InvalidOperationException ex)
        {
            throw new OpenAiException(400, $"The request body holds a string that is not valid Unicode: {ex.Message}", code: "invalid_encoding");
        }
    }

    /// <summary>
    /// Whether <paramref name="requested"/> names what this service serves: the model itself, the registered model it
    /// is the production version of, or a configured alias. Nothing loaded yet: any name waits for the 503 below.
    /// </summary>
    private static bool Serves(string? requested, string? served, ChatFallbackOptions options) =>
        requested is null
        || served is null
        || string.Equals(requested, served, StringComparison.Ordinal)
        || string.Equals(requested, options.RegisteredModel, StringComparison.Ordinal)
        || options.ModelAliases.Contains(requested, StringComparer.Ordinal);

    private static (List<int> Prompt, List<string> Stops) Prompt(LlamaModel model, CompletionRequest request, ChatFallbackOptions options)
    {
        var tokenizer = model.Tokenizer;
        var stops = new List<string>(request.Stop);
        if (request.Messages is { } messages)
        {
            var kind = ChatTemplates.Detect(model.ChatTemplate, options.ChatTemplate);
            var text = ChatTemplates.Render(kind, messages, tokenizer.Piece(tokenizer.Eos));
            stops.AddRange(ChatTemplates.TurnEnds(kind));
            return (tokenizer.Encode(text, tokenizer.AddBos && !ChatTemplates.IncludesBos(kind), parseSpecial: true), stops);
        }

        return (tokenizer.Encode(request.Prompt!, tokenizer.AddBos, parseSpecial: false), stops);
    }

    private static async Task RespondAsync(HttpContext http, LlamaModel model, GenerationRequest generation, CompletionRequest request, bool chat, int context, int threads)
    {
        var id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var pieces = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var cancellation = http.RequestAborted;
        // The forward pass is CPU-bound: it runs on its own thread and hands text over as it is produced.
        var running = Task.Run(() =>
        {
            try
            {
                return TextGenerator.Generate(model, generation, context, threads, piece => pieces.Writer.TryWrite(piece), cancellation);
            }
            finally
            {
                pieces.Writer.TryComplete();
            }
        }, cancellation);

        if (!request.Stream)
        {
            var text = new StringBuilder();
            await foreach (var piece in pieces.Reader.ReadAllAsync(cancellation))
            {
                text.Append(piece);
            }

            var result = await running;
            http.Response.ContentType = "application/json";
            await using var writer = new Utf8JsonWriter(http.Response.BodyWriter);
            writer.WriteStartObject();
            Header(writer, id, chat ? "chat.completion" : "text_completion", created, model.Name);
            writer.WriteStartArray("choices");
            writer.WriteStartObject();
            writer.WriteNumber("index", 0);
            if (chat)
            {
                writer.WriteStartObject("message");
                writer.WriteString("role", "assistant");
                writer.WriteString("content", text.ToString());
                writer.WriteEndObject();
            }
            else
            {
                writer.WriteString("text", text.ToString());
                writer.WriteNull("logprobs");
            }

            writer.WriteString("finish_reason", result.FinishReason);
            writer.WriteEndObject();
            writer.WriteEndArray();
            Usage(writer, result);
            writer.WriteEndObject();
            return;
        }

        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        var kind = chat ? "chat.completion.chunk" : "text_completion";
        await WriteEventAsync(http, w => Chunk(w, id, kind, created, model.Name, chat, chat ? "" : null, role: chat, finish: null), cancellation);
        await foreach (var piece in pieces.Reader.ReadAllAsync(cancellation))
        {
            await WriteEventAsync(http, w => Chunk(w, id, kind, created, model.Name, chat, piece, role: false, finish: null), cancellation);
        }

        var done = await running;
        await WriteEventAsync(http, w => Chunk(w, id, kind, created, model.Name, chat, null, role: false, finish: done.FinishReason), cancellation);
        if (request.IncludeUsage)
        {
            await WriteEventAsync(http, w =>
            {
                w.WriteStartObject();
                Header(w, id, kind, created, model.Name);
                w.WriteStartArray("choices");
                w.WriteEndArray();
                Usage(w, done);
                w.WriteEndObject();
            }, cancellation);
        }

        await http.Response.WriteAsync("data: [DONE]\n\n", cancellation);
        await http.Response.Body.FlushAsync(cancellation);
    }

    private static void Chunk(Utf8JsonWriter w, string id, string kind, long created, string model, bool chat, string? content, bool role, string? finish)
    {
        w.WriteStartObject();
        Header(w, id, kind, created, model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (chat)
        {
            w.WriteStartObject("delta");
            if (role)
            {
                w.WriteString("role", "assistant");
            }

            if (content is not null)
            {
                w.WriteString("content", content);
            }

            w.WriteEndObject();
        }
        else
        {
            w.WriteString("text", content ?? "");
        }

        w.WriteString("finish_reason", finish);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void Header(Utf8JsonWriter w, string id, string kind, long created, string model)
    {
        w.WriteString("id", id);
        w.WriteString("object", kind);
        w.WriteNumber("created", created);
        w.WriteString("model", model);
    }

    private static void Usage(Utf8JsonWriter w, GenerationResult result)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", result.PromptTokens);
        w.WriteNumber("completion_tokens", result.CompletionTokens);
        w.WriteNumber("total_tokens", result.PromptTokens + result.CompletionTokens);
        w.WriteEndObject();
    }

    private static async Task WriteEventAsync(HttpContext http, Action<Utf8JsonWriter> write, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        buffer.Write("data: "u8);
        await using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        buffer.Write("\n\n"u8);
        await http.Response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), cancellationToken);
        await http.Response.Body.FlushAsync(cancellationToken);
    }

    /// <summary>Sends the request on to the configured OpenAI-compatible upstream and streams its answer back as is.</summary>
    private static async Task ForwardAsync(HttpContext http, UpstreamOptions upstream, bool chat, byte[] body)
    {
        var json = JsonNode.Parse(body)!.AsObject();
        if (upstream.Model is { } model)
        {
            json["model"] = model;
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(upstream.BaseUrl!.AbsoluteUri.TrimEnd('/') + (chat ? "/chat/completions" : "/completions")))
        {
            Content = new StringContent(json.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        if (upstream.ApiKey is { Length: > 0 } key)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        }

        HttpResponseMessage response;
        try
        {
            response = await http.RequestServices.GetRequiredService<IHttpClientFactory>().CreateClient(UpstreamClient).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, http.RequestAborted);
        }
        catch (HttpRequestException)
        {
            throw new OpenAiException(502, "No local model is loaded and the upstream fallback did not answer.", "upstream_error", code: "upstream_unreachable");
        }

        using (response)
        {
            http.Response.StatusCode = (int)response.StatusCode;
            http.Response.ContentType = response.Content.Headers.ContentType?.ToString() ?? "application/json";
            http.Response.Headers["x-goblin-chatfallback"] = "upstream";
            await using var stream = await response.Content.ReadAsStreamAsync(http.RequestAborted);
            var buffer = new byte[8192];
            int read;
            while ((read = await stream.ReadAsync(buffer, http.RequestAborted)) > 0)
            {
                await http.Response.Body.WriteAsync(buffer.AsMemory(0, read), http.RequestAborted);
                await http.Response.Body.FlushAsync(http.RequestAborted);
            }
        }
    }

    private static async Task<byte[]> ReadBodyAsync(HttpRequest request, int limit, CancellationToken cancellationToken)
    {
        if (request.ContentLength > limit)
        {
            throw new OpenAiException(413, $"The request body is larger than {limit} bytes.", code: "request_too_large");
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                throw new OpenAiException(413, $"The request body is larger than {limit} bytes.", code: "request_too_large");
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }

    private static JsonDocument Parse(byte[] body)
    {
        if (!System.Text.Unicode.Utf8.IsValid(body))
        {
            throw new OpenAiException(400, "The request body is not valid UTF-8.", code: "invalid_encoding");
        }

        try
        {
            return JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException)
        {
            throw new OpenAiException(400, "The request body is not valid JSON.");
        }
    }
}
