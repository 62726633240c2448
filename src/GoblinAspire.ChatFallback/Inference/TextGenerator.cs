using GoblinAspire.ChatFallback.Tokenization;

namespace GoblinAspire.ChatFallback.Inference;

public sealed record GenerationRequest(IReadOnlyList<int> Prompt, int MaxTokens, SamplingOptions Sampling, IReadOnlyList<string> StopSequences);

/// <summary>How a generation ended: <c>stop</c> (EOS, end of turn or a stop sequence) or <c>length</c>.</summary>
public sealed record GenerationResult(string FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>Feeds a prompt, then samples until a stop, handing text out as it becomes final.</summary>
public static class TextGenerator
{
    /// <param name="onText">Receives the answer's text in order; text that might begin a stop sequence is held back until it cannot.</param>
    public static GenerationResult Generate(LlamaModel model, GenerationRequest request, int contextLength, int threads, Action<string> onText, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(onText);
        var session = new InferenceSession(model, contextLength, threads);
        if (request.Prompt.Count == 0 || request.Prompt.Count >= session.ContextLength)
        {
            throw new ArgumentException($"the prompt has {request.Prompt.Count} tokens; the context holds {session.ContextLength}");
        }

        cancellationToken.ThrowIfCancellationRequested();
        var logits = session.Prefill(request.Prompt, cancellationToken);

        var tokenizer = model.Tokenizer;
        var sampler = new Sampler(request.Sampling);
        var history = new List<int>(request.Prompt);
        var decoder = new TokenTextDecoder(tokenizer);
        var stops = request.StopSequences.Where(s => s.Length > 0).ToList();
        var pending = "";
        var generated = 0;
        var finish = "length";
        while (generated < request.MaxTokens && session.Position < session.ContextLength)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var next = sampler.Next(logits, history);
            generated++;
            if (tokenizer.IsEndOfGeneration(next) || tokenizer.IsControl(next) && stops.Contains(tokenizer.Piece(next)))
            {
                finish = "stop";
                break;
            }

            history.Add(next);
            pending += decoder.Add(next);
            if (Release(ref pending, stops, onText))
            {
                finish = "stop";
                pending = "";
                break;
            }

            if (generated < request.MaxTokens && session.Position < session.ContextLength)
            {
                logits = session.Forward(next);
            }
        }

        pending += decoder.Flush();
        if (finish == "length" && !Release(ref pending, stops, onText) && pending.Length > 0)
        {
            onText(pending);
        }

        return new GenerationResult(finish, request.Prompt.Count, generated);
    }

    /// <summary>Emits what can no longer be part of a stop sequence; true when a stop sequence was found (and cut).</summary>
    private static bool Release(ref string pending, List<string> stops, Action<string> onText)
    {
        var cut = -1;
        foreach (var stop in stops)
        {
            var at = pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut))
            {
                cut = at;
            }
        }

        if (cut >= 0)
        {
            if (cut > 0)
            {
                onText(pending[..cut]);
            }

            pending = "";
            return true;
        }

        var hold = 0;
        foreach (var stop in stops)
        {
            for (var length = Math.Min(stop.Length - 1, pending.Length); length > hold; length--)
            {
                if (pending.EndsWith(stop[..length], StringComparison.Ordinal))
                {
                    hold = length;
                    break;
                }
            }
        }

        if (pending.Length > hold)
        {
            onText(pending[..^hold]);
            pending = pending[^hold..];
        }

        return false;
    }
}
