using System.Numerics.Tensors;

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
        _scores = new float[ContextLength];
        _logits = new float[config.Vocabulary];
        _embedding = new float[config.Dimension];
        _cos = new float[config.RopeDimensions / 2];
        _sin = new float[config.RopeDimensions / 2];
    }

    public int ContextLength { get; }

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
            _normed.Quantize();
            layer.Query.Multiply(_normed, _q, _threads);
            layer.Key.Multiply(_normed, _k, _threads);
            layer.Value.Multiply(_normed, _v, _threads);
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

            var output = _attention.Values;
            for (var h = 0; h < config.Heads; h++)
            {
                var query = _q.AsSpan(h * headDim, headDim);
                var kvOffset = h / group * headDim;
                var scores = _scores.AsSpan(0, pos + 1);
                for (var t = 0; t <= pos; t++)
                {
                    scores[t] = TensorPrimitives.Dot(query, _keys[l].AsSpan((t * kvDim) + kvOffset, headDim)) * scale;
                }

                TensorPrimitives.SoftMax(scores, scores);
                var head = output.AsSpan(h * headDim, headDim);
                head.Clear();
                for (var t = 0; t <= pos; t++)
                {
                    TensorPrimitives.MultiplyAdd(_values[l].AsSpan((t * kvDim) + kvOffset, headDim), scores[t], head, head);
                }
            }

            _attention.Quantize();
            layer.Output.Multiply(_attention, _projected, _threads);
            TensorPrimitives.Add(_x, _projected, _x);

            RmsNorm(_x, layer.FeedForwardNorm, _normed.Values, config.NormEpsilon);
            _normed.Quantize();
            layer.Gate.Multiply(_normed, _gate, _threads);
            layer.Up.Multiply(_normed, _up, _threads);
            // SwiGLU: silu(gate) · up.
            var hidden = _hidden.Values;
            for (var i = 0; i < hidden.Length; i++)
            {
                var g = _gate[i];
                hidden[i] = g / (1f + MathF.Exp(-g)) * _up[i];
            }

            _hidden.Quantize();
            layer.Down.Multiply(_hidden, _projected, _threads);
            TensorPrimitives.Add(_x, _projected, _x);
        }

        RmsNorm(_x, _model.OutputNorm, _normed.Values, config.NormEpsilon);
        _normed.Quantize();
        _model.Output.Multiply(_normed, _logits, _threads);
        Position++;
        return _logits;
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
    private void RotationAngles(int position)
    {
        var config = _model.Config;
        var step = MathF.Pow(config.RopeFrequencyBase, -2f / config.RopeDimensions);
        var factors = _model.RopeFactors;
        float theta = position;
        for (var i = 0; i < _cos.Length; i++)
        {
            var angle = config.RopeFrequencyScale * (factors is null ? theta : theta / factors[i]);
            (_sin[i], _cos[i]) = MathF.SinCos(angle);
            theta *= step;
        }
    }

    /// <summary>Rotates every head of <paramref name="vector"/>: adjacent pairs (2i, 2i+1), or pairs (i, i + n/2) across the halves.</summary>
    private void Rotate(Span<float> vector, int headDimension, RopeLayout layout)
    {
        var pairs = _cos.Length;
        for (var head = 0; head < vector.Length; head += headDimension)
        {
            for (var i = 0; i < pairs; i++)
            {
                var (ia, ib) = layout == RopeLayout.Adjacent ? (head + (2 * i), head + (2 * i) + 1) : (head + i, head + i + pairs);
                var a = vector[ia];
                var b = vector[ib];
                vector[ia] = (a * _cos[i]) - (b * _sin[i]);
                vector[ib] = (a * _sin[i]) + (b * _cos[i]);
            }
        }
    }

    private static void AddBias(float[] vector, float[]? bias)
    {
        if (bias is not null)
        {
            TensorPrimitives.Add(vector, bias, vector);
        }
    }

    /// <summary>Qwen3's RMS norm of each head on its own.</summary>
    private static void HeadNorm(float[] vector, float[]? weight, int headDimension, float epsilon)
    {
        if (weight is null)
        {
            return;
        }

        for (var head = 0; head < vector.Length; head += headDimension)
        {
            var span = vector.AsSpan(head, headDimension);
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
}
