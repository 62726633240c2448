// Kestrel's own pool hands out 4 KiB blocks and cannot be told otherwise; its socket transport receives into whole
// blocks, so a 1 GiB upload costs about 262,000 receive calls. Nothing on the feed offers a larger-block pool for
// .NET 10's IMemoryPoolFactory<byte>, so this one is written here.
using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;

namespace GoblinAspire.ModelRegistry.Hosting;

/// <summary>
/// Pools of 64 KiB pinned blocks for Kestrel, the registry's transport: uploads and downloads of model weights are
/// gigabytes, so the socket reads and writes whole 64 KiB at a time. A pool keeps at most <see cref="MaxRetained"/>
/// free blocks; the rest go back to the garbage collector.
/// </summary>
public sealed class LargeBlockMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    public const int BlockSize = 64 * 1024;
    public const int MaxRetained = 64;

    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new Pool();

    private sealed class Pool : MemoryPool<byte>
    {
        private readonly ConcurrentQueue<Block> _free = new();
        private int _retained;
        private bool _disposed;

        public override int MaxBufferSize => BlockSize;

        public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_free.TryDequeue(out var block))
            {
                Interlocked.Decrement(ref _retained);
                block.Rented = true;
                return block;
            }

            return new Block(this) { Rented = true };
        }

        internal void Return(Block block)
        {
            if (!block.Rented)
            {
                return;
            }

            block.Rented = false;
            if (!_disposed && Interlocked.Increment(ref _retained) <= MaxRetained)
            {
                _free.Enqueue(block);
            }
            else
            {
                Interlocked.Decrement(ref _retained);
            }
        }

        protected override void Dispose(bool disposing)
        {
            _disposed = true;
            _free.Clear();
        }
    }

    private sealed class Block(Pool pool) : IMemoryOwner<byte>
    {
        public Memory<byte> Memory { get; } = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);

        public bool Rented { get; set; }

        public void Dispose() => pool.Return(this);
    }
}
