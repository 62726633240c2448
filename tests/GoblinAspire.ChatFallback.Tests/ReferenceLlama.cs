using GoblinAspire.ChatFallback.Inference;

namespace GoblinAspire.ChatFallback.Tests;

/// <summary>
/// The plain reference the engine is checked against: every weight dequantised to floats up front, then the Llama
/// forward pass in straightforward loops (no SIMD, no threads, double-precision sums).
/// </summary>
public sealed class ReferenceLlama
{
    private readonly LlamaModel _model;
    private readonly Dictionary<WeightMatrix, float[][]> _weights = [];
    private readonly List<float[][]> _keys = [];
    private readonly List<float[][]> _values = [];
    private int _position;

    public ReferenceLlama(LlamaModel model)
    {
        _model = model;
        for (var l = 0; l < model.Config.Layers; l++)
        {
            _keys.Add(new float[model.Config.ContextLength][]);
            _values.Add(new float[model.Config.ContextLength][]);
        }
    }

    public float[] Forward(int token)
    {
        var c = _model.Config;
        var x = Row(_model.Embedding, token);
        var headDim = c.HeadDimension;
        for (var l = 0; l < c.Layers; l++)
        {
            var layer = _model.Layers[l];
            var xn = Norm(x, layer.AttentionNorm, c.NormEpsilon);
            var q = MatVec(layer.Query, xn);
            var k = MatVec(layer.Key, xn);
            var v = MatVec(layer.Value, xn);
            Rotate(q, _position, headDim, c.RopeFrequencyBase);
            Rotate(k, _position, headDim, c.RopeFrequencyBase);
            _keys[l][_position] = k;
            _values[l][_position] = v;
            var attention = new float[c.Dimension];
            for (var h = 0; h < c.Heads; h++)
            {
                var kvHead = h / (c.Heads / c.KvHeads);
                var scores = new double[_position + 1];
                for (var t = 0; t <= _position; t++)
                {
                    double dot = 0;
                    for (var i = 0; i < headDim; i++)
                    {
                        dot += q[(h * headDim) + i] * _keys[l][t][(kvHead * headDim) + i];
                    }

                    scores[t] = dot / Math.Sqrt(headDim);
                }

                var max = scores.Max();
                var sum = scores.Sum(s => Math.Exp(s - max));
                for (var t = 0; t <= _position; t++)
                {
                    var weight = Math.Exp(scores[t] - max) / sum;
                    for (var i = 0; i < headDim; i++)
                    {
                        attention[(h * headDim) + i] += (float)(weight * _values[l][t][(kvHead * headDim) + i]);
                    }
                }
            }

            Add(x, MatVec(layer.Output, attention));
            xn = Norm(x, layer.FeedForwardNorm, c.NormEpsilon);
            var gate = MatVec(layer.Gate, xn);
            var up = MatVec(layer.Up, xn);
            var hidden = new float[gate.Length];
            for (var i = 0; i < hidden.Length; i++)
            {
                hidden[i] = (float)(gate[i] / (1 + Math.Exp(-gate[i])) * up[i]);
            }

            Add(x, MatVec(layer.Down, hidden));
        }

        _position++;
        return MatVec(_model.Output, Norm(x, _model.OutputNorm, c.NormEpsilon));
    }

    private float[] Row(WeightMatrix matrix, int row) => (float[])Dense(matrix)[row].Clone();

    private float[][] Dense(WeightMatrix matrix)
    {
        if (!_weights.TryGetValue(matrix, out var dense))
        {
            dense = new float[matrix.Rows][];
            for (var r = 0; r < matrix.Rows; r++)
            {
                dense[r] = new float[matrix.Columns];
                matrix.DequantizeRow(r, dense[r]);
            }

            _weights[matrix] = dense;
        }

        return dense;
    }

    private float[] MatVec(WeightMatrix matrix, float[] x)
    {
        var dense = Dense(matrix);
        if (matrix.UsesQuantizedInput)
        {
            // ggml multiplies Q8_0 and Q4_0 weights from activations rounded to Q8_0 (per 32 values, a scale of
            // max|x|/127 and integers), and K-quant weights from activations rounded per 256 values (Q8_K); the
            // reference rounds as the engine's kernel for the matrix does, in plain loops, then multiplies in floats.
            var run = (matrix.InputForms & ActivationForms.SuperBlocks) != 0 ? 256 : 32;
            x = (float[])x.Clone();
            for (var start = 0; start < x.Length; start += run)
            {
                var amax = 0f;
                for (var i = start; i < start + run; i++)
                {
                    amax = Math.Max(amax, Math.Abs(x[i]));
                }

                var d = amax / 127f;
                for (var i = start; i < start + run; i++)
                {
                    x[i] = d == 0 ? 0 : d * (float)Math.Round(x[i] / d, MidpointRounding.AwayFromZero);
                }
            }
        }

        var y = new float[matrix.Rows];
        for (var r = 0; r < y.Length; r++)
        {
            double sum = 0;
            for (var i = 0; i < x.Length; i++)
            {
                sum += dense[r][i] * x[i];
            }

            y[r] = (float)sum;
        }

        return y;
    }

    private static float[] Norm(float[] x, float[] weight, float epsilon)
    {
        double squares = 0;
        foreach (var v in x)
        {
            squares += v * v;
        }

        var scale = 1 / Math.Sqrt((squares / x.Length) + epsilon);
        return x.Select((v, i) => (float)(v * scale * weight[i])).ToArray();
    }

    private static void Rotate(float[] v, int position, int headDim, float theta)
    {
        for (var start = 0; start < v.Length; start += headDim)
        {
            for (var i = 0; i < headDim; i += 2)
            {
                var angle = position * Math.Pow(theta, -(double)i / headDim);
                var (a, b) = (v[start + i], v[start + i + 1]);
                v[start + i] = (float)((a * Math.Cos(angle)) - (b * Math.Sin(angle)));
                v[start + i + 1] = (float)((a * Math.Sin(angle)) + (b * Math.Cos(angle)));
            }
        }
    }

    private static void Add(float[] x, float[] y)
    {
        for (var i = 0; i < x.Length; i++)
        {
            x[i] += y[i];
        }
    }
}
