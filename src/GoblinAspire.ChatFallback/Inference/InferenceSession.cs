using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace GoblinAspire.ChatFallback.Inference;

/// <summary>
/// One sequence being generated: its key/value cache and scratch buffers. <see cref="Forward"/> feeds one token at
/// the next position and returns the logits for the one after it.
/// </summary>
public sealed class InferenceSession
{
    private readonly LlamaModel _model;
    private readonly int _threads;
    private readonly float[][] _keys;
    private readonly float[][] _values;
    private readonly float[] _x;
    private readonly ActivationInput _normed;
    private readonly ActivationInput _attention;
    private readonly ActivationInput _hidden;
    private readonly float[] _q;
    private readonly float[] _k;
    private readonly float[] _v;
    private readonly float[] _projected;
    private readonly float[] _gate;
    private readonly float[] _up;
    private readonly float[] _scores;
    private readonly float[] _logits;
    private readonly float[] _embedding;
    private readonly float[] _cos;
    private readonly float[] _sin;

    public InferenceSession(LlamaModel model, int contextLength, int threads)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _threads = Math.Max(1, threads);
        var config = model.Config;
        ContextLength = Math.Min(contextLength, config.ContextLength);
        // The cache grows as the sequence does, so a short chat does not hold a full context's worth of memory.
        _keys = new float[config.Layers][];
        _values = new float[config.Layers][];
        for (var l = 0; l < config.Layers; l++)
        {
            _keys[l] = [];
            _values[l] = [];
        }

        _x = new float[config.Dimension];
        _normed = new ActivationInput(config.Dimension);
        _attention = new ActivationInput(config.QueryDimension);
        _hidden = new ActivationInput(config.FeedForward);
        _q = new float[config.QueryDimension];
        _k = new float[config.KvDimension];
        _v = new float[config.KvDimension];
        _projected = new float[config.Dimension];
        _gate = new float[config.FeedForward];
        _up = new float[config.FeedForward];
        _scores = new float[_threads * ContextLength];
        _logits = new float[config.Vocabulary];
        _embedding = new float[config.Dimension];
        _cos = new float[config.RopeDimensions / 2];
        _sin = new float[config.RopeDimensions / 2];
    }

    /// <summary>Prompt tokens per batch in <see cref="Prefill"/>: enough to reuse each weight row many times, few enough that a batch's activations stay small.</summary>
    public const int PrefillChunk = 128;

    private Batch? _batch;

    public int ContextLength { get; }

    /// <summary>
    /// Runs a short prompt and one generated token through a throwaway session. The engine's kernels are compiled at
    /// first use (AVX-512 code cannot be compiled ahead of time for an unknown CPU), which costs a fresh process about
    /// half a second of its first prompt; done at load, as llama.cpp's server warms up at start, no request pays it.
    /// </summary>
    public static void WarmUp(LlamaModel model, int threads)
    {
        ArgumentNullException.ThrowIfNull(model);
        var session = new InferenceSession(model, 4 * PanelKernels.MinimumTokens, threads);
        var length = Math.Min(2 * PanelKernels.MinimumTokens, session.ContextLength - 1);
        if (length < 1)
        {
            return;
        }

        var prompt = Enumerable.Range(0, length).Select(i => i % model.Config.Vocabulary).ToArray();
        session.Prefill(prompt);
        session.Forward(prompt[0]);
    }

    /// <summary>Tokens fed so far.</summary>
    public int Position { get; private set; }

    /// <summary>Feeds <paramref name="token"/>; the logits it returns are overwritten by the next call.</summary>
    public float[] Forward(int token)
    {
        var config = _model.Config;
        if (Position >= ContextLength)
        {
            throw new InvalidOperationException($"the context of {ContextLength} tokens is full");
        }

        if ((uint)token >= (uint)config.Vocabulary)
        {
            throw new ArgumentOutOfRangeException(nameof(token));
        }

        var pos = Position;
        _model.Embedding.DequantizeRow(token, _embedding);
        _embedding.CopyTo(_x, 0);
        var headDim = config.HeadDimension;
        var kvDim = config.KvDimension;
        var group = config.Heads / config.KvHeads;
        var scale = 1f / MathF.Sqrt(headDim);
        RotationAngles(pos);
        for (var l = 0; l < config.Layers; l++)
        {
            var layer = _model.Layers[l];
            RmsNorm(_x, layer.AttentionNorm, _normed.Values, config.NormEpsilon);
            _normed.Quantize(layer.Query.InputForms | layer.Key.InputForms | layer.Value.InputForms);
            WeightMatrix.Multiply(_normed, _threads, layer.Query, _q, layer.Key, _k, layer.Value, _v);
            AddBias(_q, layer.QueryBias);
            AddBias(_k, layer.KeyBias);
            AddBias(_v, layer.ValueBias);
            HeadNorm(_q, layer.QueryNorm, headDim, config.NormEpsilon);
            HeadNorm(_k, layer.KeyNorm, headDim, config.NormEpsilon);
            Rotate(_q, headDim, config.RopeLayout);
            Rotate(_k, headDim, config.RopeLayout);
            EnsureCache(l, pos + 1, kvDim);
            _k.CopyTo(_keys[l], pos * kvDim);
            _v.CopyTo(_values[l], pos * kvDim);

            // Heads split across the threads, each with its own scores.
            var output = _attention.Values;
            var keys = _keys[l];
            var values = _values[l];
            var parts = Math.Min(_threads, config.Heads);
            Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = _threads }, part =>
            {
                var scores = _scores.AsSpan(part * ContextLength, ContextLength);
                for (var h = part * config.Heads / parts; h < (part + 1) * config.Heads / parts; h++)
                {
                    Attend(_q.AsSpan(h * headDim, headDim), keys, values, kvDim, h / group * headDim, pos + 1, scale, scores, output.AsSpan(h * headDim, headDim));
                }
            });

            _attention.Quantize(layer.Output.InputForms);
            layer.Output.Multiply(_attention, _projected, _threads);
            TensorPrimitives.Add(_x, _projected, _x);

            RmsNorm(_x, layer.FeedForwardNorm, _normed.Values, config.NormEpsilon);
            _normed.Quantize(layer.Gate.InputForms | layer.Up.InputForms);
            WeightMatrix.Multiply(_normed, _threads, layer.Gate, _gate, layer.Up, _up);
            // SwiGLU: silu(gate) · up.
            SwiGlu(_gate, _up, _hidden.Values);

            _hidden.Quantize(layer.Down.InputForms);
            layer.Down.Multiply(_hidden, _projected, _threads);
            TensorPrimitives.Add(_x, _projected, _x);
        }

        RmsNorm(_x, _model.OutputNorm, _normed.Values, config.NormEpsilon);
        _normed.Quantize(_model.Output.InputForms);
        _model.Output.Multiply(_normed, _logits, _threads);
        Position++;
        return _logits;
    }

    /// <summary>
    /// Feeds a whole prompt (or any run of tokens) as matrix-matrix products over the batch, with causal attention
    /// over the cache and the batch, and returns the logits after the last token only.
    /// </summary>
    public float[] Prefill(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (tokens.Count == 0)
        {
            throw new ArgumentException("no tokens to feed", nameof(tokens));
        }

        if (Position + tokens.Count > ContextLength)
        {
            throw new InvalidOperationException($"the context of {ContextLength} tokens is full");
        }

        // Room for a reply as well (a quarter of the prompt, at least 64 tokens): otherwise the cache, grown chunk by
        // chunk to the prompt's length, is reallocated and copied, every layer, at the first generated token.
        var reserve = Math.Min(ContextLength, Position + tokens.Count + Math.Max(64, tokens.Count / 4));
        for (var l = 0; l < _model.Config.Layers; l++)
        {
            EnsureCache(l, reserve, _model.Config.KvDimension);
        }

        for (var start = 0; start < tokens.Count; start += PrefillChunk)
        {
            var count = Math.Min(PrefillChunk, tokens.Count - start);
            if (count == 1)
            {
                Forward(tokens[start]);
                continue;
            }

            ForwardBatch(tokens, start, count, start + count == tokens.Count, cancellationToken);
        }

        return _logits;
    }

    private void ForwardBatch(IReadOnlyList<int> tokens, int start, int count, bool last, CancellationToken cancellationToken)
    {
        var config = _model.Config;
        var dim = config.Dimension;
        var queryDim = config.QueryDimension;
        var kvDim = config.KvDimension;
        var headDim = config.HeadDimension;
        var group = config.Heads / config.KvHeads;
        var scale = 1f / MathF.Sqrt(headDim);
        var b = _batch ??= new Batch(config, Math.Min(PrefillChunk, ContextLength));
        var pos0 = Position;
        for (var t = 0; t < count; t++)
        {
            var token = tokens[start + t];
            if ((uint)token >= (uint)config.Vocabulary)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens));
            }

            _model.Embedding.DequantizeRow(token, b.X.AsSpan(t * dim, dim));
        }

        // The rotation angles depend only on the position: once per chunk, not once per layer.
        var pairs = config.RopeDimensions / 2;
        for (var t = 0; t < count; t++)
        {
            RotationAngles(pos0 + t, b.Cos.AsSpan(t * pairs, pairs), b.Sin.AsSpan(t * pairs, pairs));
        }

        for (var l = 0; l < config.Layers; l++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var layer = _model.Layers[l];
            ForEachToken(count, t => RmsNorm(b.X.AsSpan(t * dim, dim), layer.AttentionNorm, b.Normed.Row(t), config.NormEpsilon));

            b.Normed.Quantize(count, layer.Query.BatchInputForms(count) | layer.Key.BatchInputForms(count) | layer.Value.BatchInputForms(count), _threads);
            layer.Query.MultiplyBatch(b.Normed, count, b.Q, _threads);
            layer.Key.MultiplyBatch(b.Normed, count, b.K, _threads);
            layer.Value.MultiplyBatch(b.Normed, count, b.V, _threads);
            EnsureCache(l, pos0 + count, kvDim);
            var keys = _keys[l];
            var values = _values[l];
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = _threads }, t =>
            {
                var q = b.Q.AsSpan(t * queryDim, queryDim);
                var k = b.K.AsSpan(t * kvDim, kvDim);
                var v = b.V.AsSpan(t * kvDim, kvDim);
                AddBias(q, layer.QueryBias);
                AddBias(k, layer.KeyBias);
                AddBias(v, layer.ValueBias);
                HeadNorm(q, layer.QueryNorm, headDim, config.NormEpsilon);
                HeadNorm(k, layer.KeyNorm, headDim, config.NormEpsilon);
                var cos = b.Cos.AsSpan(t * pairs, pairs);
                var sin = b.Sin.AsSpan(t * pairs, pairs);
                Rotate(q, headDim, config.RopeLayout, cos, sin);
                Rotate(k, headDim, config.RopeLayout, cos, sin);
                k.CopyTo(keys.AsSpan((pos0 + t) * kvDim));
                v.CopyTo(values.AsSpan((pos0 + t) * kvDim));
            });

            // Causal attention: token t of the batch sees the cache up to its own position.
            if (ChunkAttention.Handles(headDim))
            {
                // (token, key/value head) pairs in parallel, each with the query heads that read that key/value head.
                var attention = b.ChunkAttention;
                attention.Prepare(keys, kvDim, pos0 + count);
                Parallel.For(
                    0,
                    count * config.KvHeads,
                    new ParallelOptions { MaxDegreeOfParallelism = _threads },
                    attention.Scratch,
                    (item, _, scratch) =>
                    {
                        var t = item / config.KvHeads;
                        var g = item % config.KvHeads;
                        attention.Attend(b.Q.AsSpan(t * queryDim, queryDim), values, kvDim, g, g * group, group, pos0 + t + 1, scale, scratch, b.Attention.Row(t));
                        return scratch;
                    },
                    _ => { });
            }
            else
            {
                Parallel.For(
                    0,
                    count * config.Heads,
                    new ParallelOptions { MaxDegreeOfParallelism = _threads },
                    () => new float[ContextLength],
                    (item, _, scores) =>
                    {
                        var t = item / config.Heads;
                        var h = item % config.Heads;
                        var query = b.Q.AsSpan((t * queryDim) + (h * headDim), headDim);
                        var head = b.Attention.Row(t).Slice(h * headDim, headDim);
                        Attend(query, keys, values, kvDim, h / group * headDim, pos0 + t + 1, scale, scores, head);

                        return scores;
                    },
                    _ => { });
            }

            b.Attention.Quantize(count, layer.Output.BatchInputForms(count), _threads);
            layer.Output.MultiplyBatch(b.Attention, count, b.Projected, _threads);
            ForEachToken(count, t =>
            {
                var x = b.X.AsSpan(t * dim, dim);
                TensorPrimitives.Add(x, b.Projected.AsSpan(t * dim, dim), x);
                RmsNorm(x, layer.FeedForwardNorm, b.Normed.Row(t), config.NormEpsilon);
            });

            b.Normed.Quantize(count, layer.Gate.BatchInputForms(count) | layer.Up.BatchInputForms(count), _threads);
            layer.Gate.MultiplyBatch(b.Normed, count, b.Gate, _threads);
            // The up projection goes straight into the hidden activations, which SwiGLU then scales in place.
            layer.Up.MultiplyBatch(b.Normed, count, b.Hidden.Values, _threads);
            var ffn = config.FeedForward;
            ForEachToken(count, t => SwiGlu(b.Gate.AsSpan(t * ffn, ffn), b.Hidden.Values.AsSpan(t * ffn, ffn), b.Hidden.Values.AsSpan(t * ffn, ffn)));

            b.Hidden.Quantize(count, layer.Down.BatchInputForms(count), _threads);
            layer.Down.MultiplyBatch(b.Hidden, count, b.Projected, _threads);
            TensorPrimitives.Add(b.X.AsSpan(0, count * dim), b.Projected.AsSpan(0, count * dim), b.X.AsSpan(0, count * dim));
        }

        Position = pos0 + count;
        if (last)
        {
            // Only the last token's logits are wanted: the vocabulary projection runs once, not once per token.
            b.X.AsSpan((count - 1) * dim, dim).CopyTo(_x);
            RmsNorm(_x, _model.OutputNorm, _normed.Values, config.NormEpsilon);
            _normed.Quantize(_model.Output.InputForms);
            _model.Output.Multiply(_normed, _logits, _threads);
        }
    }

    /// <summary>The per-token steps between the matrix products, tokens split across the threads.</summary>
    private void ForEachToken(int count, Action<int> step) => Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = _threads }, step);

    /// <summary>
    /// SwiGLU: silu(gate) · up = up · gate · sigmoid(gate), vectorised (sigmoid through TensorPrimitives' exp).
    /// <paramref name="hidden"/> may be <paramref name="up"/>; <paramref name="gate"/> is used as scratch.
    /// </summary>
    private static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up, Span<float> hidden)
    {
        TensorPrimitives.Multiply(up, gate, hidden);
        TensorPrimitives.Sigmoid(gate, gate);
        TensorPrimitives.Multiply(hidden, gate, hidden);
    }

    /// <summary>
    /// One head's causal attention over the first <paramref name="length"/> cached positions: scores, softmax, the
    /// weighted sum of values into <paramref name="head"/>. With 64-wide heads (TinyLlama, Qwen2.5, Llama 3.2) the
    /// query and the output stay in four registers; the per-position calls of TensorPrimitives cost more than the
    /// arithmetic at that width.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void Attend(ReadOnlySpan<float> query, float[] keys, float[] values, int kvDim, int kvOffset, int length, float scale, Span<float> scores, Span<float> head)
    {
        var span = scores[..length];
        var headDim = query.Length;
        if (Vector512.IsHardwareAccelerated && headDim == 64)
        {
            ref var q = ref MemoryMarshal.GetReference(query);
            var q0 = Vector512.LoadUnsafe(ref q);
            var q1 = Vector512.LoadUnsafe(ref q, 16);
            var q2 = Vector512.LoadUnsafe(ref q, 32);
            var q3 = Vector512.LoadUnsafe(ref q, 48);
            ref var k = ref MemoryMarshal.GetArrayDataReference(keys);
            for (var s = 0; s < length; s++)
            {
                var o = (nuint)((s * kvDim) + kvOffset);
                var a = Vector512.FusedMultiplyAdd(q1, Vector512.LoadUnsafe(ref k, o + 16), q0 * Vector512.LoadUnsafe(ref k, o));
                var c = Vector512.FusedMultiplyAdd(q3, Vector512.LoadUnsafe(ref k, o + 48), q2 * Vector512.LoadUnsafe(ref k, o + 32));
                span[s] = Vector512.Sum(a + c) * scale;
            }

            TensorPrimitives.SoftMax(span, span);
            ref var v = ref MemoryMarshal.GetArrayDataReference(values);
            Vector512<float> h0 = default, h1 = default, h2 = default, h3 = default;
            for (var s = 0; s < length; s++)
            {
                var o = (nuint)((s * kvDim) + kvOffset);
                var p = Vector512.Create(span[s]);
                h0 = Vector512.FusedMultiplyAdd(p, Vector512.LoadUnsafe(ref v, o), h0);
                h1 = Vector512.FusedMultiplyAdd(p, Vector512.LoadUnsafe(ref v, o + 16), h1);
                h2 = Vector512.FusedMultiplyAdd(p, Vector512.LoadUnsafe(ref v, o + 32), h2);
                h3 = Vector512.FusedMultiplyAdd(p, Vector512.LoadUnsafe(ref v, o + 48), h3);
            }

            ref var d = ref MemoryMarshal.GetReference(head);
            h0.StoreUnsafe(ref d);
            h1.StoreUnsafe(ref d, 16);
            h2.StoreUnsafe(ref d, 32);
            h3.StoreUnsafe(ref d, 48);
            return;
        }

        for (var s = 0; s < length; s++)
        {
            span[s] = TensorPrimitives.Dot(query, keys.AsSpan((s * kvDim) + kvOffset, headDim)) * scale;
        }

        TensorPrimitives.SoftMax(span, span);
        head.Clear();
        for (var s = 0; s < length; s++)
        {
            TensorPrimitives.MultiplyAdd(values.AsSpan((s * kvDim) + kvOffset, headDim), span[s], head, head);
        }
    }

    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> destination, float epsilon)
    {
        var meanSquare = TensorPrimitives.SumOfSquares(x) / x.Length;
        var inverse = 1f / MathF.Sqrt(meanSquare + epsilon);
        TensorPrimitives.Multiply(x, inverse, destination);
        TensorPrimitives.Multiply(destination, weight, destination);
    }

    /// <summary>
    /// The rotation of each pair at <paramref name="position"/>, computed as ggml does (so results match llama.cpp's to
    /// the last bits): the angle starts at the position and is multiplied by base^(-2/n) per pair, then divided by
    /// the pair's Llama 3 factor and scaled linearly.
    /// </summary>
    private void RotationAngles(int position) => RotationAngles(position, _cos, _sin);

    private void RotationAngles(int position, Span<float> cos, Span<float> sin)
    {
        var config = _model.Config;
        var step = MathF.Pow(config.RopeFrequencyBase, -2f / config.RopeDimensions);
        var factors = _model.RopeFactors;
        float theta = position;
        for (var i = 0; i < cos.Length; i++)
        {
            var angle = config.RopeFrequencyScale * (factors is null ? theta : theta / factors[i]);
            (sin[i], cos[i]) = MathF.SinCos(angle);
            theta *= step;
        }
    }

    /// <summary>Rotates every head of <paramref name="vector"/>: adjacent pairs (2i, 2i+1), or pairs (i, i + n/2) across the halves.</summary>
    private void Rotate(Span<float> vector, int headDimension, RopeLayout layout) => Rotate(vector, headDimension, layout, _cos, _sin);

    private static void Rotate(Span<float> vector, int headDimension, RopeLayout layout, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        var pairs = cos.Length;
        for (var head = 0; head < vector.Length; head += headDimension)
        {
            for (var i = 0; i < pairs; i++)
            {
                var (ia, ib) = layout == RopeLayout.Adjacent ? (head + (2 * i), head + (2 * i) + 1) : (head + i, head + i + pairs);
                var a = vector[ia];
                var b = vector[ib];
                vector[ia] = (a * cos[i]) - (b * sin[i]);
                vector[ib] = (a * sin[i]) + (b * cos[i]);
            }
        }
    }

    private static void AddBias(Span<float> vector, float[]? bias)
    {
        if (bias is not null)
        {
            TensorPrimitives.Add(vector, bias, vector);
        }
    }

    /// <summary>Qwen3's RMS norm of each head on its own.</summary>
    private static void HeadNorm(Span<float> vector, float[]? weight, int headDimension, float epsilon)
    {
        if (weight is null)
        {
            return;
        }

        for (var head = 0; head < vector.Length; head += headDimension)
        {
            var span = vector.Slice(head, headDimension);
            RmsNorm(span, weight, span, epsilon);
        }
    }

    private void EnsureCache(int layer, int tokens, int kvDim)
    {
        if (_keys[layer].Length >= tokens * kvDim)
        {
            return;
        }

        var capacity = Math.Min(ContextLength, Math.Max(tokens, Math.Max(64, _keys[layer].Length / kvDim * 2))) * kvDim;
        Array.Resize(ref _keys[layer], capacity);
        Array.Resize(ref _values[layer], capacity);
    }

    /// <summary>The scratch of <see cref="Prefill"/>, one row per token of a chunk; made on first use.</summary>
    private sealed class Batch(LlamaConfig config, int capacity)
    {
        public float[] Cos { get; } = new float[capacity * (config.RopeDimensions / 2)];

        public float[] Sin { get; } = new float[capacity * (config.RopeDimensions / 2)];

        public float[] X { get; } = new float[capacity * config.Dimension];

        public ActivationBatch Normed { get; } = new(capacity, config.Dimension);

        public float[] Q { get; } = new float[capacity * config.QueryDimension];

        public float[] K { get; } = new float[capacity * config.KvDimension];

        public float[] V { get; } = new float[capacity * config.KvDimension];

        public ActivationBatch Attention { get; } = new(capacity, config.QueryDimension);

        public float[] Projected { get; } = new float[capacity * config.Dimension];

        public float[] Gate { get; } = new float[capacity * config.FeedForward];

        public ActivationBatch Hidden { get; } = new(capacity, config.FeedForward);

        public ChunkAttention ChunkAttention { get; } = new();
    }
}
