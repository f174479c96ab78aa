namespace Turbine.Server.Models;

/// <summary>One input or output of a model as its metadata describes it; -1 dimensions are variable.</summary>
/// <param name="Name">Tensor name.</param>
/// <param name="DataType">KServe v2 datatype name.</param>
/// <param name="Dims">Dimensions without the batch dimension (as config.pbtxt writes them).</param>
/// <param name="Optional">Whether a request may leave it out.</param>
public sealed record TensorSpec(string Name, string DataType, long[] Dims, bool Optional = false);
