namespace Turbine.Engine.Backends;

/// <summary>A backend whose memory is a device of its own (a GPU): the executor sizes the KV cache from what is free.</summary>
public interface IDeviceMemory
{
    /// <summary>Bytes of device memory free now.</summary>
    long FreeBytes { get; }

    /// <summary>Bytes of device memory in all.</summary>
    long TotalBytes { get; }
}
