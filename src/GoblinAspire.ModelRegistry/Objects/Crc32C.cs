// Hand-written because no package here computes CRC-32C (Castagnoli): System.IO.Hashing 10 has only the IEEE
// polynomial. GCS requires CRC-32C for every object, so it is the x86 SSE4.2 / Arm CRC instruction where present
// and a slicing table otherwise.
using System.Buffers.Binary;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace GoblinAspire.ModelRegistry.Objects;

/// <summary>Incremental CRC-32C, as GCS reports it: big-endian, base64.</summary>
public sealed class Crc32C
{
    private const uint Polynomial = 0x82F63B78; // Castagnoli, reflected
    private static readonly uint[] Table = BuildTable();
    private uint _state = uint.MaxValue;

    public void Append(ReadOnlySpan<byte> data) => _state = Update(_state, data);

    public uint Value => ~_state;

    public static uint Compute(ReadOnlySpan<byte> data) => ~Update(uint.MaxValue, data);

    public static string ToBase64(uint crc)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, crc);
        return Convert.ToBase64String(bytes);
    }

    /// <summary>
    /// The CRC-32C of A followed by B from the CRCs of A and of B and B's length, without reading either again:
    /// appending B multiplies A's remainder by x^(8·length) modulo the polynomial, then adds B's.
    /// </summary>
    public static uint Combine(uint first, uint second, long secondLength)
    {
        var shift = s_lastShift;
        if (shift.Length != secondLength)
        {
            shift = new Shift(secondLength, PowerOfX(8 * secondLength));
            s_lastShift = shift;
        }

        return Multiply(shift.Operator, first) ^ second;
    }

    // Frames are all one size, so the shift operator of the last length asked for is almost always the next one.
    private sealed record Shift(long Length, uint Operator);

    private static Shift s_lastShift = new(0, 1u << 31);

    // Polynomials over GF(2) in the reflected bit order CRC-32C uses: bit 31 is x^0.
    private static uint Multiply(uint a, uint b)
    {
        uint product = 0;
        for (var bit = 1u << 31; bit != 0; bit >>= 1)
        {
            if ((a & bit) != 0)
            {
                product ^= b;
            }

            b = (b & 1) != 0 ? (b >> 1) ^ Polynomial : b >> 1;
        }

        return product;
    }

    /// <summary>x^<paramref name="exponent"/> modulo the polynomial, by repeated squaring.</summary>
    private static uint PowerOfX(long exponent)
    {
        var result = 1u << 31;
        var square = 1u << 30;
        for (; exponent > 0; exponent >>= 1)
        {
            if ((exponent & 1) != 0)
            {
                result = Multiply(square, result);
            }

            square = Multiply(square, square);
        }

        return result;
    }

    /// <summary>Continues a raw (pre-inverted) CRC state over <paramref name="data"/>.</summary>
    public static uint Update(uint state, ReadOnlySpan<byte> data)
    {
        if (Sse42.X64.IsSupported)
        {
            ulong wide = state;
            while (data.Length >= 8)
            {
                wide = Sse42.X64.Crc32(wide, BinaryPrimitives.ReadUInt64LittleEndian(data));
                data = data[8..];
            }

            state = (uint)wide;
            foreach (var b in data)
            {
                state = Sse42.Crc32(state, b);
            }

            return state;
        }

        if (Crc32.Arm64.IsSupported)
        {
            while (data.Length >= 8)
            {
                state = Crc32.Arm64.ComputeCrc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
                data = data[8..];
            }

            foreach (var b in data)
            {
                state = Crc32.ComputeCrc32C(state, b);
            }

            return state;
        }

        foreach (var b in data)
        {
            state = Table[(state ^ b) & 0xFF] ^ (state >> 8);
        }

        return state;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            var crc = i;
            for (var bit = 0; bit < 8; bit++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ Polynomial : crc >> 1;
            }

            table[i] = crc;
        }

        return table;
    }
}
