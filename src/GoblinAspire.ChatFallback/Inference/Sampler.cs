using System.Numerics.Tensors;

namespace GoblinAspire.ChatFallback.Inference;

/// <summary>Sampling settings, with OpenAI's defaults (temperature 1, top_p 1) and llama.cpp's top_k 40.</summary>
public sealed record SamplingOptions(float Temperature = 1f, float TopP = 1f, int TopK = 40, float RepetitionPenalty = 1f, int RepetitionWindow = 64, int? Seed = null);

/// <summary>
/// Picks the next token: repetition penalty over the recent window, then greedy at temperature 0, else temperature,
/// top-k, softmax, top-p and a draw from a generator seeded from <see cref="SamplingOptions.Seed"/> (same seed, same
/// choices).
/// </summary>
public sealed class Sampler(SamplingOptions options)
{
    private readonly Random _random = options.Seed is { } seed ? new Random(seed) : new Random();

    public int Next(float[] logits, IReadOnlyList<int> history)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(history);
        if (options.RepetitionPenalty != 1f)
        {
            var seen = new HashSet<int>();
            for (var i = Math.Max(0, history.Count - options.RepetitionWindow); i < history.Count; i++)
            {
                var token = history[i];
                if (seen.Add(token))
                {
                    logits[token] = logits[token] > 0 ? logits[token] / options.RepetitionPenalty : logits[token] * options.RepetitionPenalty;
                }
            }
        }

        if (options.Temperature <= 0)
        {
            return TensorPrimitives.IndexOfMax(logits);
        }

        var k = options.TopK <= 0 ? logits.Length : Math.Min(options.TopK, logits.Length);
        var candidates = TopK(logits, k);
        var probabilities = new float[candidates.Length];
        for (var i = 0; i < candidates.Length; i++)
        {
            probabilities[i] = logits[candidates[i]] / options.Temperature;
        }

        TensorPrimitives.SoftMax(probabilities, probabilities);
        var keep = probabilities.Length;
        if (options.TopP < 1f)
        {
            var cumulative = 0f;
            for (var i = 0; i < probabilities.Length; i++)
            {
                cumulative += probabilities[i];
                if (cumulative >= options.TopP)
                {
                    keep = i + 1;
                    break;
                }
            }
        }

        var total = TensorPrimitives.Sum(probabilities.AsSpan(0, keep));
        var draw = (float)_random.NextDouble() * total;
        for (var i = 0; i < keep; i++)
        {
            draw -= probabilities[i];
            if (draw <= 0)
            {
                return candidates[i];
            }
        }

        return candidates[keep - 1];
    }

    /// <summary>The ids of the <paramref name="k"/> largest logits, largest first (ties by lower id).</summary>
    private static int[] TopK(float[] logits, int k)
    {
        var heap = new PriorityQueue<int, (float Logit, int Id)>(k + 1, Comparer<(float Logit, int Id)>.Create((a, b) => a.Logit != b.Logit ? a.Logit.CompareTo(b.Logit) : b.Id.CompareTo(a.Id)));
        for (var i = 0; i < logits.Length; i++)
        {
            heap.Enqueue(i, (logits[i], i));
            if (heap.Count > k)
            {
                heap.Dequeue();
            }
        }

        var result = new int[heap.Count];
        for (var i = result.Length - 1; i >= 0; i--)
        {
            result[i] = heap.Dequeue();
        }

        return result;
    }
}
