using System.Security.Cryptography;
using System.Text;
using GoblinAspire.ModelRegistry.Objects;

namespace GoblinAspire.ModelRegistry.Tests;

public sealed class ObjectFramesTests
{
    [Fact]
    public void Crc32c_matches_the_castagnoli_check_value_and_gcs_encoding()
    {
        // The standard check value of CRC-32C over "123456789".
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        Assert.Equal("AAAAAA==", Crc32C.ToBase64(Crc32C.Compute([])));
        var incremental = new Crc32C();
        incremental.Append("12345"u8);
        incremental.Append("6789"u8);
        Assert.Equal(0xE3069283u, incremental.Value);
        Assert.Equal("4waSgw==", Crc32C.ToBase64(incremental.Value));
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    [InlineData(ObjectFrames.FrameSize, false)]
    [InlineData(ObjectFrames.FrameSize, true)]
    [InlineData((3 * ObjectFrames.FrameSize) + 17, false)]
    [InlineData((3 * ObjectFrames.FrameSize) + 17, true)]
    public async Task Any_range_reads_back_exactly_what_was_written(int size, bool encrypted)
    {
        var plaintext = RandomNumberGenerator.GetBytes(size);
        var key = encrypted ? RandomNumberGenerator.GetBytes(32) : null;
        var stored = await WriteAsync(plaintext, key);
        Assert.Equal(ObjectFrames.StoredLength(size, encrypted), stored.Length);
        if (encrypted && size >= 64)
        {
            Assert.Equal(-1, IndexOf(stored, plaintext[..64]));
        }

        var random = new Random(size);
        for (var i = 0; i < 20; i++)
        {
            var offset = size == 0 ? 0 : random.Next(size);
            var length = size == 0 ? 0 : random.Next(size - offset + 1);
            Assert.Equal(plaintext.AsSpan(offset, length).ToArray(), await ReadAsync(stored, size, key, encrypted, offset, length));
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4095)]
    [InlineData(StagingFile.BlockSize - ObjectFrames.HeaderSize - 4)]
    [InlineData(StagingFile.BlockSize)]
    [InlineData((3 * StagingFile.BlockSize) + 17)]
    public async Task Direct_and_page_cache_staging_store_the_same_bytes_from_writes_or_a_stream(int size)
    {
        // Sizes around the staging blocks' edges: the direct tail is padded to a sector, then cut back.
        var plaintext = RandomNumberGenerator.GetBytes(size);
        foreach (var key in new[] { null, RandomNumberGenerator.GetBytes(32) })
        {
            var direct = await WriteAsync(plaintext, key, fromStream: true, direct: true);
            var buffered = await WriteAsync(plaintext, key, fromStream: false, direct: false);
            Assert.Equal(ObjectFrames.StoredLength(size, key is not null), direct.Length);
            Assert.Equal(plaintext, await ReadAsync(direct, size, key, key is not null, 0, size));
            Assert.Equal(plaintext, await ReadAsync(buffered, size, key, key is not null, 0, size));
            if (key is null)
            {
                // Plain frames carry no random per-file state past the header, so the two files match byte for byte.
                Assert.Equal(buffered.AsSpan(ObjectFrames.HeaderSize).ToArray(), direct.AsSpan(ObjectFrames.HeaderSize).ToArray());
            }
        }
    }

    [Fact]
    public async Task A_stream_longer_than_its_limit_is_refused_and_adds_nothing_past_it()
    {
        var path = Path.Combine(Path.GetTempPath(), $"goblin-frames-{Guid.NewGuid():N}");
        try
        {
            await using var file = StagingFile.Create(path, FileShare.None, direct: true);
            using var writer = new FrameWriter(file, null);
            await writer.WriteFromAsync(new MemoryStream(new byte[100]), 100, CancellationToken.None);
            Assert.Equal(400, (await Assert.ThrowsAsync<GcsException>(() => writer.WriteFromAsync(new MemoryStream(new byte[ObjectFrames.FrameSize + 10]), ObjectFrames.FrameSize, CancellationToken.None))).StatusCode);
            Assert.InRange(writer.Length, 100, 100 + ObjectFrames.FrameSize);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task A_writer_disposed_twice_gives_its_pooled_buffers_back_once()
    {
        var path = Path.Combine(Path.GetTempPath(), $"goblin-frames-{Guid.NewGuid():N}");
        try
        {
            await using var file = StagingFile.Create(path, FileShare.None, direct: false);
            var writer = new FrameWriter(file, null);
            await writer.WriteAsync(new byte[(2 * ObjectFrames.FrameSize) + 5], CancellationToken.None);
            writer.Dispose();
            writer.Dispose();

            // A buffer returned twice would be handed to two renters at once.
            var rented = Enumerable.Range(0, 16).Select(_ => System.Buffers.ArrayPool<byte>.Shared.Rent(ObjectFrames.FrameSize)).ToList();
            Assert.Equal(rented.Count, rented.Distinct().Count());
            rented.ForEach(buffer => System.Buffers.ArrayPool<byte>.Shared.Return(buffer));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 0)]
    [InlineData(0, 1)]
    [InlineData(17, 5)]
    [InlineData(ObjectFrames.FrameSize, ObjectFrames.FrameSize)]
    [InlineData((2 * ObjectFrames.FrameSize) + 3, ObjectFrames.FrameSize - 1)]
    public void Crc32c_of_two_parts_combines_into_the_crc_of_the_whole(int first, int second)
    {
        var data = RandomNumberGenerator.GetBytes(first + second);
        var combined = Crc32C.Combine(Crc32C.Compute(data.AsSpan(0, first)), Crc32C.Compute(data.AsSpan(first)), second);
        Assert.Equal(Crc32C.Compute(data), combined);
    }

    [Fact]
    public async Task Encrypted_frames_hide_the_plaintext()
    {
        var plaintext = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("model-weights ", 10_000)));
        var stored = await WriteAsync(plaintext, RandomNumberGenerator.GetBytes(32));
        Assert.Equal(-1, IndexOf(stored, "model-weights"u8.ToArray()));
        var plain = await WriteAsync(plaintext, null);
        Assert.NotEqual(-1, IndexOf(plain, "model-weights"u8.ToArray()));
    }

    [Theory]
    [InlineData(false, 10)]
    [InlineData(true, 10)]
    [InlineData(false, 2 * ObjectFrames.FrameSize)]
    [InlineData(true, 2 * ObjectFrames.FrameSize)]
    public async Task A_changed_stored_byte_fails_the_read_of_its_frame(bool encrypted, int at)
    {
        var plaintext = RandomNumberGenerator.GetBytes(3 * ObjectFrames.FrameSize);
        var key = encrypted ? RandomNumberGenerator.GetBytes(32) : null;
        var stored = await WriteAsync(plaintext, key);
        stored[ObjectFrames.HeaderSize + at] ^= 0x01;
        await Assert.ThrowsAsync<ObjectCorruptedException>(() => ReadAsync(stored, plaintext.Length, key, encrypted, 0, plaintext.Length));
        if (at >= ObjectFrames.FrameSize)
        {
            // A range before the damaged frame is still served, verified.
            Assert.Equal(plaintext.AsSpan(0, 100).ToArray(), await ReadAsync(stored, plaintext.Length, key, encrypted, 0, 100));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Truncated_or_swapped_frames_and_a_wrong_key_are_detected(bool encrypted)
    {
        var plaintext = RandomNumberGenerator.GetBytes(3 * ObjectFrames.FrameSize);
        var key = encrypted ? RandomNumberGenerator.GetBytes(32) : null;
        var stored = await WriteAsync(plaintext, key);
        await Assert.ThrowsAsync<ObjectCorruptedException>(() => ReadAsync(stored[..^10], plaintext.Length, key, encrypted, 0, plaintext.Length));

        var frame = ObjectFrames.FrameSize + ObjectFrames.Overhead(encrypted);
        var swapped = (byte[])stored.Clone();
        stored.AsSpan(ObjectFrames.HeaderSize, frame).CopyTo(swapped.AsSpan(ObjectFrames.HeaderSize + frame));
        stored.AsSpan(ObjectFrames.HeaderSize + frame, frame).CopyTo(swapped.AsSpan(ObjectFrames.HeaderSize));
        await Assert.ThrowsAsync<ObjectCorruptedException>(() => ReadAsync(swapped, plaintext.Length, key, encrypted, 0, plaintext.Length));

        if (encrypted)
        {
            await Assert.ThrowsAsync<ObjectCorruptedException>(() => ReadAsync(stored, plaintext.Length, RandomNumberGenerator.GetBytes(32), true, 0, 10));
        }
    }

    [Theory]
    [InlineData("bytes 0-9/*", 10L, 0L, 9L, null)]
    [InlineData("bytes 10-19/20", 10L, 10L, 19L, 20L)]
    [InlineData("bytes */*", 0L, null, null, null)]
    [InlineData("bytes */42", 0L, null, null, 42L)]
    public void Content_ranges_parse(string header, long? body, long? first, long? last, long? total)
    {
        var range = ChunkRange.Parse(header, body);
        Assert.Equal((first, last, total), (range.First, range.Last, range.Total));
    }

    [Theory]
    [InlineData("bytes 9-0/*", 10L)]
    [InlineData("bytes 0-9/5", 10L)]
    [InlineData("bytes 0-9/*", 11L)]
    [InlineData("bytes a-b/*", 2L)]
    [InlineData("items 0-9/*", 10L)]
    [InlineData("bytes 0-9", 10L)]
    [InlineData("bytes -1-9/*", 10L)]
    public void Lying_or_malformed_content_ranges_are_refused(string header, long? body)
    {
        Assert.Equal(400, Assert.Throws<GcsException>(() => ChunkRange.Parse(header, body)).StatusCode);
    }

    [Fact]
    public void Listing_pages_through_prefixes_and_items_without_repeats()
    {
        var names = new[] { "a.txt", "dir/1", "dir/2", "dir/sub/3", "other/x", "z" };
        var objects = new SortedDictionary<string, ObjectRecord>(names.ToDictionary(n => n, Record), StringComparer.Ordinal);
        var seen = new List<string>();
        string? token = null;
        do
        {
            var page = ObjectListings.Page(objects, new ObjectListQuery(null, "/", null, null, token, 2));
            Assert.True(page.Items.Count + page.Prefixes.Count <= 2);
            seen.AddRange(page.Prefixes);
            seen.AddRange(page.Items.Select(i => i.Name));
            token = page.NextPageToken;
        }
        while (token is not null);
        Assert.Equal(["a.txt", "dir/", "other/", "z"], seen.Order(StringComparer.Ordinal));

        var inside = ObjectListings.Page(objects, new ObjectListQuery("dir/", "/", null, null, null, 100));
        Assert.Equal(["dir/1", "dir/2"], inside.Items.Select(i => i.Name));
        Assert.Equal(["dir/sub/"], inside.Prefixes);
        var window = ObjectListings.Page(objects, new ObjectListQuery(null, null, "dir/2", "other/x", null, 100));
        Assert.Equal(["dir/2", "dir/sub/3"], window.Items.Select(i => i.Name));
        Assert.Throws<GcsException>(() => ObjectListings.Page(objects, new ObjectListQuery(null, null, null, null, "!!not-base64!!", 10)));
    }

    private static ObjectRecord Record(string name) => new()
    {
        Bucket = "b1", Name = name, Generation = 1, Size = 0, Md5 = "", Crc32C = "", Sha256 = "", Created = DateTimeOffset.UnixEpoch, Updated = DateTimeOffset.UnixEpoch, DataFile = name,
    };

    private static async Task<byte[]> WriteAsync(byte[] plaintext, byte[]? key, bool fromStream = false, bool direct = true)
    {
        var path = Path.Combine(Path.GetTempPath(), $"goblin-frames-{Guid.NewGuid():N}");
        try
        {
            await using (var file = StagingFile.Create(path, FileShare.None, direct))
            {
                using var writer = new FrameWriter(file, key);
                if (fromStream)
                {
                    await writer.WriteFromAsync(new MemoryStream(plaintext), plaintext.Length, CancellationToken.None);
                }
                else
                {
                    // Uneven pieces, so frame boundaries fall inside writes.
                    for (var offset = 0; offset < plaintext.Length; offset += 7919)
                    {
                        await writer.WriteAsync(plaintext.AsMemory(offset, Math.Min(7919, plaintext.Length - offset)), CancellationToken.None);
                    }
                }

                var digests = await writer.CompleteAsync(CancellationToken.None);
                Assert.Equal(plaintext.Length, digests.Size);
                Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(plaintext)), digests.Sha256Hex);
                Assert.Equal(Convert.ToBase64String(MD5.HashData(plaintext)), digests.Md5Base64);
                Assert.Equal(Crc32C.ToBase64(Crc32C.Compute(plaintext)), digests.Crc32CBase64);
            }

            return await File.ReadAllBytesAsync(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static async Task<byte[]> ReadAsync(byte[] stored, long size, byte[]? key, bool encrypted, long offset, long length)
    {
        await using var stream = new FrameReadStream(new MemoryStream(stored), size, key, encrypted, offset, length);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return copy.ToArray();
    }

    private static int IndexOf(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle);
}
