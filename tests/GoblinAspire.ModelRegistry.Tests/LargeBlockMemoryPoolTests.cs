using GoblinAspire.ModelRegistry.Hosting;
using GoblinAspire.Testing;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;

namespace GoblinAspire.ModelRegistry.Tests;

[Collection(PlatformServers.Collection)]
public sealed class LargeBlockMemoryPoolTests(PlatformServers servers)
{
    [Fact]
    public void Blocks_are_64_KiB_reused_after_return_and_bounded_in_number_kept()
    {
        using var pool = new LargeBlockMemoryPoolFactory().Create();
        Assert.Equal(LargeBlockMemoryPoolFactory.BlockSize, pool.MaxBufferSize);
        var first = pool.Rent(4096);
        Assert.Equal(64 * 1024, first.Memory.Length);
        var memory = first.Memory;
        first.Dispose();
        first.Dispose();
        using (var again = pool.Rent())
        {
            Assert.True(again.Memory.Span == memory.Span, "a returned block is handed out again");
            using var other = pool.Rent();
            Assert.False(other.Memory.Span == memory.Span, "a block returned twice is handed out once");
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent((64 * 1024) + 1));

        var many = Enumerable.Range(0, LargeBlockMemoryPoolFactory.MaxRetained + 50).Select(_ => pool.Rent()).ToList();
        many.ForEach(b => b.Dispose());
        var kept = Enumerable.Range(0, LargeBlockMemoryPoolFactory.MaxRetained + 50).Select(_ => pool.Rent()).ToList();
        var reused = kept.Count(k => many.Any(m => m.Memory.Span == k.Memory.Span));
        Assert.Equal(LargeBlockMemoryPoolFactory.MaxRetained, reused);
    }

    [Fact]
    public async Task The_registry_gives_kestrel_the_large_block_pool()
    {
        await using var registry = await RegistryHost.StartAsync(servers);
        Assert.IsType<LargeBlockMemoryPoolFactory>(registry.Host.Services.GetRequiredService<IMemoryPoolFactory<byte>>());
    }
}
