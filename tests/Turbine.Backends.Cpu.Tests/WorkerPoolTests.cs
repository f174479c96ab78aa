using Turbine.Backends.Cpu.Kernels;

namespace Turbine.Backends.Cpu.Tests;

public sealed unsafe class WorkerPoolTests
{
    private struct CountJob : IParallelJob
    {
        public int* Hits;

        public readonly void Execute(int index) => Interlocked.Increment(ref Hits[index]);
    }

    private struct NestedJob : IParallelJob
    {
        public int* Hits;
        public WorkerPoolHandle Pool;

        public readonly void Execute(int index)
        {
            var inner = new CountJob { Hits = Hits + index * 4 };
            Pool.Get().For(4, inner);
        }
    }

    /// <summary>Jobs must be unmanaged, so a test job reaches its pool through a GC handle.</summary>
    private readonly struct WorkerPoolHandle(System.Runtime.InteropServices.GCHandle handle)
    {
        public WorkerPool Get() => (WorkerPool)handle.Target!;
    }

    private struct ThrowingJob : IParallelJob
    {
        public readonly void Execute(int index)
        {
            if (index == 5)
                throw new InvalidOperationException("boom");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    public void EveryIndexRunsExactlyOnce(int threads)
    {
        using var pool = new WorkerPool(threads);
        var hits = new int[1000];
        var rng = new Random(TestData.NewSeed());
        fixed (int* hp = hits)
        {
            for (int round = 0; round < 2000; round++)
            {
                int count = rng.Next(0, 1000);
                new Span<int>(hp, 1000).Clear();
                pool.For(count, new CountJob { Hits = hp });
                for (int i = 0; i < 1000; i++)
                    Assert.Equal(i < count ? 1 : 0, hp[i]);
                if (round % 500 == 499)
                    Thread.Sleep(50); // let workers fall asleep, then wake them
            }
        }
    }

    [Fact]
    public void NestedForRunsInline()
    {
        using var pool = new WorkerPool(2);
        var hits = new int[40];
        var handle = System.Runtime.InteropServices.GCHandle.Alloc(pool);
        try
        {
            fixed (int* hp = hits)
                pool.For(10, new NestedJob { Hits = hp, Pool = new WorkerPoolHandle(handle) });
        }
        finally
        {
            handle.Free();
        }
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void JobExceptionReachesCallerAndPoolStaysUsable()
    {
        using var pool = new WorkerPool(2);
        var e = Assert.Throws<AggregateException>(() => pool.For(20, new ThrowingJob()));
        Assert.IsType<InvalidOperationException>(e.InnerException);
        var hits = new int[64];
        fixed (int* hp = hits)
            pool.For(64, new CountJob { Hits = hp });
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void DefaultsToProcessorCount()
    {
        using var pool = new WorkerPool();
        Assert.Equal(Environment.ProcessorCount, pool.ThreadCount);
    }
}
