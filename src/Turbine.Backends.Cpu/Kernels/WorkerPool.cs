using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Turbine.Backends.Cpu.Kernels;

/// <summary>A unit of parallel work: <see cref="Execute"/> is called once for every index of a
/// <see cref="WorkerPool.For{TJob}(int, in TJob)"/> range, concurrently from several threads.</summary>
public interface IParallelJob
{
    /// <summary>Runs item <paramref name="index"/>; must not depend on other items of the same call.</summary>
    void Execute(int index);
}

/// <summary>
/// Persistent worker threads with a low-latency parallel-for. Decode issues about a hundred small
/// kernels per token, so dispatch must cost microseconds: workers spin on a generation counter for a
/// while after each job before they block, and the calling thread takes part in the work.
/// </summary>
/// <remarks>One caller at a time; a <c>For</c> issued from inside a job runs inline on that thread.</remarks>
public sealed unsafe class WorkerPool : IDisposable
{
    // Spin iterations before a worker blocks: long enough to cover the gap between kernels of one
    // decode step, short enough not to burn a core between requests.
    private const int SpinIterations = 20_000;

    [ThreadStatic] private static bool insideJob;

    private readonly Thread[] threads;
    private readonly object gate = new();

    // Job state, written by the caller before the generation is published.
    private delegate*<void*, int, void> body;
    private void* context;
    private int count;
    private int next;

    private int generation;
    // High 32 bits: generation; bit 31: door closed; low 31 bits: workers that joined the job.
    // Joining is a CAS on this word so that a late worker never touches a finished job.
    private long entered;
    private int exited;
    private int sleepers;
    private int busy;
    private volatile bool disposed;
    private Exception? failure;
    private float* scratch;
    private int scratchFloats;

    /// <summary>Starts <paramref name="threads"/> - 1 background workers (the caller is the last).</summary>
    /// <param name="threads">Threads that run a job, caller included; default <see cref="Environment.ProcessorCount"/>.</param>
    public WorkerPool(int threads = 0)
    {
        if (threads <= 0)
            threads = Environment.ProcessorCount;
        ThreadCount = threads;
        this.threads = new Thread[threads - 1];
        for (int i = 0; i < this.threads.Length; i++)
        {
            this.threads[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"Turbine CPU worker {i + 1}" };
            this.threads[i].Start();
        }
    }

    /// <summary>Threads that run a job, the calling thread included.</summary>
    public int ThreadCount { get; }

    /// <summary>Runs <c>job.Execute(i)</c> for every i in [0, <paramref name="count"/>) and returns when all are done.</summary>
    /// <remarks>The job is copied to the caller's stack and shared by all threads, so it must be read-only.</remarks>
    public void For<TJob>(int count, in TJob job) where TJob : unmanaged, IParallelJob
    {
        TJob copy = job;
        For(count, &Trampoline<TJob>, &copy);
    }

    /// <summary>Runs <c>body(context, i)</c> for every i in [0, <paramref name="count"/>) and returns when all are done.</summary>
    public void For(int count, delegate*<void*, int, void> body, void* context)
    {
        if (count <= 0)
            return;
        if (count == 1 || threads.Length == 0 || insideJob)
        {
            for (int i = 0; i < count; i++)
                body(context, i);
            return;
        }
        ObjectDisposedException.ThrowIf(disposed, this);
        if (Interlocked.Exchange(ref busy, 1) != 0)
            throw new InvalidOperationException("WorkerPool.For is not reentrant across threads.");
        try
        {
            this.body = body;
            this.context = context;
            this.count = count;
            next = 0;
            exited = 0;
            int gen = generation + 1;
            Volatile.Write(ref entered, (long)gen << 32);
            // Interlocked is a full fence: the sleeper check below cannot be reordered before it.
            Interlocked.Exchange(ref generation, gen);
            if (Volatile.Read(ref sleepers) > 0)
            {
                lock (gate)
                    Monitor.PulseAll(gate);
            }

            insideJob = true;
            try
            {
                RunItems();
            }
            finally
            {
                insideJob = false;
            }

            // Close the door, then wait for the workers that got in.
            long word = Interlocked.Or(ref entered, 1L << 31);
            int joined = (int)(word & 0x7FFF_FFFF);
            var spinner = new SpinWait();
            while (Volatile.Read(ref exited) != joined)
                spinner.SpinOnce(sleep1Threshold: -1);

            if (failure is { } e)
            {
                failure = null;
                throw new AggregateException("A WorkerPool job failed.", e);
            }
        }
        finally
        {
            Volatile.Write(ref busy, 0);
        }
    }

    private static void Trampoline<TJob>(void* context, int index) where TJob : unmanaged, IParallelJob
        => ((TJob*)context)->Execute(index);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void RunItems()
    {
        var f = body;
        var ctx = context;
        int n = count;
        try
        {
            int i;
            while ((i = Interlocked.Increment(ref next) - 1) < n)
                f(ctx, i);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref failure, e, null);
            // Skip the remaining items so that every thread finishes promptly.
            Volatile.Write(ref next, n);
        }
    }

    private bool TryJoin(int gen)
    {
        while (true)
        {
            long word = Volatile.Read(ref entered);
            if ((int)(word >> 32) != gen || (word & (1L << 31)) != 0)
                return false;
            if (Interlocked.CompareExchange(ref entered, word + 1, word) == word)
                return true;
        }
    }

    private void WorkerLoop()
    {
        insideJob = true;
        int seen = 0;
        while (true)
        {
            int gen = WaitForGeneration(seen);
            if (disposed)
                return;
            seen = gen;
            if (!TryJoin(gen))
                continue;
            RunItems();
            Interlocked.Increment(ref exited);
        }
    }

    private int WaitForGeneration(int seen)
    {
        for (int spin = 0; spin < SpinIterations; spin++)
        {
            int g = Volatile.Read(ref generation);
            if (g != seen || disposed)
                return g;
            if ((spin & 1023) == 1023)
                Thread.Yield();
            else
                Thread.SpinWait(8);
        }
        lock (gate)
        {
            // Interlocked is a full fence: the generation check below cannot move before it (see For).
            Interlocked.Increment(ref sleepers);
            try
            {
                while (Volatile.Read(ref generation) == seen && !disposed)
                    Monitor.Wait(gate);
            }
            finally
            {
                Interlocked.Decrement(ref sleepers);
            }
        }
        return Volatile.Read(ref generation);
    }

    /// <summary>
    /// A 64-byte aligned buffer of at least <paramref name="floats"/> floats owned by the pool, for a
    /// kernel to prepare shared inputs on the calling thread before it calls <c>For</c>. Valid until
    /// the next call; grows, never shrinks, so steady-state decode allocates nothing.
    /// </summary>
    internal float* Scratch(int floats)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (floats > scratchFloats)
        {
            NativeMemory.AlignedFree(scratch);
            scratchFloats = Math.Max(floats, 4096);
            scratch = (float*)NativeMemory.AlignedAlloc((nuint)scratchFloats * sizeof(float), 64);
        }
        return scratch;
    }

    /// <summary>Stops the workers.</summary>
    public void Dispose()
    {
        if (disposed)
            return;
        disposed = true;
        lock (gate)
            Monitor.PulseAll(gate);
        foreach (var t in threads)
            t.Join();
        NativeMemory.AlignedFree(scratch);
        scratch = null;
    }
}
