using System.Buffers;
using System.Numerics.Tensors;
using GoblinAspire.ChatFallback.Gguf;

namespace GoblinAspire.ChatFallback.Inference;

/// <summary>
/// A weight matrix as GGUF stores it: <see cref="Rows"/> rows of <see cref="Columns"/> values, each row a run of
/// blocks of <see cref="Type"/>. <c>y = W·x</c> takes one dot product per row, rows split across threads.
/// </summary>
public sealed class WeightMatrix
{
    private readonly byte[] _data;
    private readonly int _rowBytes;

    public WeightMatrix(string name, GgmlType type, int rows, int columns, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        Name = name;
        Type = type;
        Rows = rows;
        Columns = columns;
        _rowBytes = (int)GgmlTypes.RowBytes(type, columns);
        if ((long)_rowBytes * rows != data.Length)
        {
            throw new GgufException($"tensor {name}: {data.Length} bytes for {rows}×{columns} {type}");
        }

        _data = data;
    }

    public string Name { get; }

    public GgmlType Type { get; }

    public int Rows { get; }

    public int Columns { get; }

    /// <summary>Whether this matrix multiplies from Q8_0-quantised activations (integer dots) rather than floats.</summary>
    public bool UsesQuantizedInput => InputForms != ActivationForms.None;

    /// <summary>Whether the AVX-512 kernels (<see cref="TiledKernels"/>) take this matrix.</summary>
    public bool Tiled => TiledKernels.Handles(Type, Columns);

    /// <summary>The 8-bit forms of its input that this matrix's kernel reads.</summary>
    public ActivationForms InputForms => Tiled
        ? TiledKernels.FormsFor(Type)
        : Type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_K ? ActivationForms.Blocks : ActivationForms.None;

    /// <summary>Whether batches of at least <see cref="PanelKernels.MinimumTokens"/> tokens go through <see cref="PanelKernels"/>.</summary>
    public bool Paneled => PanelKernels.Handles(Type, Columns) && Rows >= PanelKernels.PanelRows;

    /// <summary>The 8-bit forms <see cref="MultiplyBatch"/> reads for a batch of <paramref name="tokens"/>.</summary>
    public ActivationForms BatchInputForms(int tokens) => Paneled && tokens >= PanelKernels.MinimumTokens
        ? PanelKernels.FormsFor(Type) | (Rows % PanelKernels.PanelRows == 0 ? ActivationForms.None : InputForms)
        : InputForms;

    public ReadOnlySpan<byte> Row(int row) => _data.AsSpan(row * _rowBytes, _rowBytes);

    public void DequantizeRow(int row, Span<float> destination) => Quants.Dequantize(Type, Row(row), destination);

    /// <summary><c>y = W·x</c>: <paramref name="input"/> holds x as floats and in the 8-bit forms this matrix reads.</summary>
    public void Multiply(ActivationInput input, float[] y, int threads)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(y);
        var parts = PartsFor(threads);
        if (parts == 1)
        {
            MultiplyPart(input, y, 0, 1);
            return;
        }

        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = threads }, part => MultiplyPart(input, y, part, parts));
    }

    /// <summary>
    /// <c>y = W·x</c> for two or three matrices that read the same input (query/key/value, gate/up) in one parallel
    /// pass: a token's decode waits for the threads once per group instead of once per matrix.
    /// </summary>
    public static void Multiply(ActivationInput input, int threads, WeightMatrix first, float[] firstY, WeightMatrix second, float[] secondY, WeightMatrix? third = null, float[]? thirdY = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        var parts = Math.Max(first.PartsFor(threads), Math.Max(second.PartsFor(threads), third?.PartsFor(threads) ?? 1));
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = threads }, part =>
        {
            first.MultiplyPart(input, firstY, part, parts);
            second.MultiplyPart(input, secondY, part, parts);
            third?.MultiplyPart(input, thirdY!, part, parts);
        });
    }

    /// <summary>One part per thread, but no part under 64 rows: smaller ones cost more to hand out than to compute.</summary>
    private int PartsFor(int threads) => Math.Min(threads, MaxParts);

    private int MaxParts => Math.Max(1, Rows / 64);

    /// <summary>Part <paramref name="part"/> of <paramref name="parts"/> of the rows; none when this matrix has fewer parts.</summary>
    private void MultiplyPart(ActivationInput input, float[] y, int part, int parts)
    {
        var own = Math.Min(parts, MaxParts);
        if (part >= own)
        {
            return;
        }

        var share = (Rows + own - 1) / own;
        var from = part * share;
        var to = Math.Min(Rows, from + share);
        if (Tiled)
        {
            TiledKernels.Multiply(Type, _data, _rowBytes, Rows, Columns, input.Batch, 1, y, from, to);
        }
        else
        {
            MultiplyRows(input, y, from, to);
        }
    }

    /// <summary>
    /// <c>Y = X·Wᵀ</c> for the first <paramref name="tokens"/> rows of <paramref name="input"/>: <paramref name="y"/>
    /// gets one row of <see cref="Rows"/> outputs per token. Each weight row is decoded once and dotted with every
    /// token while it is in cache; rows are split across threads.
    /// </summary>
    public void MultiplyBatch(ActivationBatch input, int tokens, float[] y, int threads)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(y);
        if (Paneled && tokens >= PanelKernels.MinimumTokens)
        {
            // Whole panels split across threads, several per thread; the rows after the last whole panel go tiled.
            var panels = Rows / PanelKernels.PanelRows;
            var paneled = panels * PanelKernels.PanelRows;
            var pieces = Math.Max(1, Math.Min(threads * 4, panels));
            var panelsPer = (panels + pieces - 1) / pieces;
            Parallel.For(0, pieces + (paneled < Rows ? 1 : 0), new ParallelOptions { MaxDegreeOfParallelism = threads }, c =>
            {
                if (c == pieces)
                {
                    if (Tiled)
                    {
                        TiledKernels.Multiply(Type, _data, _rowBytes, Rows, Columns, input, tokens, y, paneled, Rows);
                    }
                    else
                    {
                        MultiplyBatchRows(input, tokens, y, paneled, Rows);
                    }

                    return;
                }

                var from = Math.Min(paneled, c * panelsPer * PanelKernels.PanelRows);
                var to = Math.Min(paneled, (c + 1) * panelsPer * PanelKernels.PanelRows);
                PanelKernels.Multiply(Type, _data, _rowBytes, Rows, Columns, input, tokens, y, from, to);
            });
            return;
        }

        if (Tiled)
        {
            // Chunks of whole four-row tiles, several per thread so a thread that starts late still finds work.
            var tiles = (Rows + 3) / 4;
            var parts = Math.Max(1, Math.Min(threads * 4, tiles));
            var tilesPer = (tiles + parts - 1) / parts;
            Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = threads }, c => TiledKernels.Multiply(Type, _data, _rowBytes, Rows, Columns, input, tokens, y, Math.Min(Rows, c * tilesPer * 4), Math.Min(Rows, (c + 1) * tilesPer * 4)));
            return;
        }

        var chunks = Math.Max(1, Math.Min(threads * 4, Rows / 16));
        var per = (Rows + chunks - 1) / chunks;
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, c => MultiplyBatchRows(input, tokens, y, c * per, Math.Min(Rows, (c + 1) * per)));
    }

    private void MultiplyBatchRows(ActivationBatch input, int tokens, float[] y, int from, int to)
    {
        // Tokens in tiles, so a tile's activations stay in cache while a run of weight rows passes over them.
        const int TokenTile = 16;
        const int RowTile = 8;
        var rows = Rows;
        float[]? buffer = null;
        Span<float> four = stackalloc float[4];
        try
        {
            for (var t0 = 0; t0 < tokens; t0 += TokenTile)
            {
                var t1 = Math.Min(tokens, t0 + TokenTile);
                for (var r0 = from; r0 < to; r0 += RowTile)
                {
                    var r1 = Math.Min(to, r0 + RowTile);
                    switch (Type)
                    {
                        case GgmlType.Q8_0 or GgmlType.Q4_0:
                            var q4 = Type == GgmlType.Q4_0;
                            for (var r = r0; r < r1; r++)
                            {
                                var t = t0;
                                for (; t + 4 <= t1; t += 4)
                                {
                                    Quants.DotTokens4(q4, Row(r), input.Quantized, input.Scales, Columns, t, four);
                                    y[(t * rows) + r] = four[0];
                                    y[((t + 1) * rows) + r] = four[1];
                                    y[((t + 2) * rows) + r] = four[2];
                                    y[((t + 3) * rows) + r] = four[3];
                                }

                                for (; t < t1; t++)
                                {
                                    y[(t * rows) + r] = q4 ? Quants.DotQ4(Row(r), input.QuantizedRow(t), input.ScaleRow(t)) : Quants.DotQ8(Row(r), input.QuantizedRow(t), input.ScaleRow(t));
                                }
                            }

                            break;
                        case GgmlType.Q4_K:
                            for (var r = r0; r < r1; r++)
                            {
                                for (var t = t0; t < t1; t++)
                                {
                                    y[(t * rows) + r] = Quants.DotQ4K(Row(r), input.QuantizedRow(t), input.ScaleRow(t), input.SumRow(t));
                                }
                            }

                            break;
                        case GgmlType.F32:
                            for (var r = r0; r < r1; r++)
                            {
                                var row = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Row(r));
                                for (var t = t0; t < t1; t++)
                                {
                                    y[(t * rows) + r] = TensorPrimitives.Dot(row, input.Row(t));
                                }
                            }

                            break;
                        default:
                            // Decoded once per tile of tokens, then plain float dots.
                            buffer ??= ArrayPool<float>.Shared.Rent(RowTile * Columns);
                            for (var r = r0; r < r1; r++)
                            {
                                Quants.Dequantize(Type, Row(r), buffer.AsSpan((r - r0) * Columns, Columns));
                            }

                            for (var t = t0; t < t1; t++)
                            {
                                var x = input.Row(t);
                                for (var r = r0; r < r1; r++)
                                {
                                    y[(t * rows) + r] = TensorPrimitives.Dot(buffer.AsSpan((r - r0) * Columns, Columns), x);
                                }
                            }

                            break;
                    }
                }
            }
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<float>.Shared.Return(buffer);
            }
        }
    }

    private void MultiplyRows(ActivationInput input, float[] y, int from, int to)
    {
        switch (Type)
        {
            case GgmlType.Q8_0:
                for (var r = from; r < to; r++)
                {
                    y[r] = Quants.DotQ8(Row(r), input.Quantized, input.Scales);
                }

                break;
            case GgmlType.Q4_0:
                for (var r = from; r < to; r++)
                {
                    y[r] = Quants.DotQ4(Row(r), input.Quantized, input.Scales);
                }

                break;
            case GgmlType.Q4_K:
                for (var r = from; r < to; r++)
                {
                    y[r] = Quants.DotQ4K(Row(r), input.Quantized, input.Scales, input.Sums);
                }

                break;
            case GgmlType.F32:
                for (var r = from; r < to; r++)
                {
                    y[r] = TensorPrimitives.Dot(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Row(r)), input.Values);
                }

                break;
            case GgmlType.F16:
                for (var r = from; r < to; r++)
                {
                    y[r] = Quants.DotF16(Row(r), input.Values);
                }

                break;
            case GgmlType.BF16:
                for (var r = from; r < to; r++)
                {
                    y[r] = Quants.DotBF16(Row(r), input.Values);
                }

                break;
            default:
                var row = ArrayPool<float>.Shared.Rent(Columns);
                try
                {
                    var span = row.AsSpan(0, Columns);
                    for (var r = from; r < to; r++)
                    {
                        Quants.Dequantize(Type, Row(r), span);
                        y[r] = TensorPrimitives.Dot(span, input.Values);
                    }
                }
                finally
                {
                    ArrayPool<float>.Shared.Return(row);
                }

                break;
        }
    }
}
