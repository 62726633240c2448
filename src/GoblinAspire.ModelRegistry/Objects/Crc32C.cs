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
        const uint Polynomial = 0x82F63B78; // Castagnoli, reflected
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
