using Turbine.Core.Checkpoints;
using Turbine.Core.Models;
using Turbine.Core.Tensors;
using Turbine.Engine.Backends;

namespace Turbine.Engine.Models;

/// <summary>One decoder layer's weights on the backend.</summary>
public sealed record LayerWeights(
    DeviceWeight InputNorm, DeviceWeight Query, DeviceWeight? QueryBias, DeviceWeight Key, DeviceWeight? KeyBias,
    DeviceWeight Value, DeviceWeight? ValueBias, DeviceWeight Output, DeviceWeight? OutputBias,
    DeviceWeight PostAttentionNorm, DeviceWeight Gate, DeviceWeight? GateBias, DeviceWeight Up, DeviceWeight? UpBias,
    DeviceWeight Down, DeviceWeight? DownBias);

/// <summary>
/// Every weight of a decoder, checked against the config (shape and dtype) as it is loaded, so that a checkpoint
/// that disagrees with its config.json fails at load with the file and tensor named, never mid-generation.
/// </summary>
public sealed class DecoderWeights
{
    private static readonly DType[] ComputeTypes = [DType.F32, DType.F16, DType.BF16];

    private DecoderWeights(DeviceWeight embedding, DeviceWeight finalNorm, DeviceWeight lmHead, LayerWeights[] layers)
    {
        Embedding = embedding;
        FinalNorm = finalNorm;
        LmHead = lmHead;
        Layers = layers;
    }

    /// <summary>Token embedding table [vocab × hidden].</summary>
    public DeviceWeight Embedding { get; }
    /// <summary>The norm before the LM head.</summary>
    public DeviceWeight FinalNorm { get; }
    /// <summary>The LM head [vocab × hidden] (the embedding table when tied).</summary>
    public DeviceWeight LmHead { get; }
    /// <summary>Per-layer weights.</summary>
    public LayerWeights[] Layers { get; }

    /// <summary>Loads and validates every weight named by <paramref name="family"/> for <paramref name="config"/>.</summary>
    public static DecoderWeights Load(Checkpoint checkpoint, HfModelConfig config, ModelFamily family, IComputeBackend backend,
        IProgress<(int Done, int Total)>? progress = null)
    {
        var n = family.Names;
        var loader = new Loader(checkpoint, config, backend);
        long hidden = config.HiddenSize, inter = config.IntermediateSize, vocab = config.VocabSize;
        long qDim = (long)config.NumHeads * config.HeadDim, kvDim = (long)config.NumKvHeads * config.HeadDim;
        var embedding = loader.Matrix(n.Embedding, vocab, hidden);
        var finalNorm = loader.Vector(n.FinalNorm, hidden);
        // Tied checkpoints usually omit lm_head; some keep a copy, which is then used as stored.
        var lmHead = checkpoint.Contains(n.LmHead) || !config.TieWordEmbeddings ? loader.Matrix(n.LmHead, vocab, hidden) : embedding;
        var layers = new LayerWeights[config.NumLayers];
        for (int i = 0; i < layers.Length; i++)
        {
            string L(string name) => n.Layer(i, name);
            DeviceWeight? Bias(string proj, bool present, long size) => present ? loader.Vector(L(proj + ".bias"), size) : null;
            layers[i] = new LayerWeights(
                InputNorm: loader.Vector(L(n.InputNorm), hidden),
                Query: loader.Linear(L(n.Query + ".weight"), qDim, hidden), QueryBias: Bias(n.Query, config.QkvBias, qDim),
                Key: loader.Linear(L(n.Key + ".weight"), kvDim, hidden), KeyBias: Bias(n.Key, config.QkvBias, kvDim),
                Value: loader.Linear(L(n.Value + ".weight"), kvDim, hidden), ValueBias: Bias(n.Value, config.QkvBias, kvDim),
                Output: loader.Linear(L(n.Output + ".weight"), hidden, qDim), OutputBias: Bias(n.Output, config.OutputBias, hidden),
                PostAttentionNorm: loader.Vector(L(n.PostAttentionNorm), hidden),
                Gate: loader.Linear(L(n.Gate + ".weight"), inter, hidden), GateBias: Bias(n.Gate, config.MlpBias, inter),
                Up: loader.Linear(L(n.Up + ".weight"), inter, hidden), UpBias: Bias(n.Up, config.MlpBias, inter),
                Down: loader.Linear(L(n.Down + ".weight"), hidden, inter), DownBias: Bias(n.Down, config.MlpBias, hidden));
            progress?.Report((i + 1, layers.Length));
        }
        return new DecoderWeights(embedding, finalNorm, lmHead, layers);
    }

    private readonly struct Loader(Checkpoint checkpoint, HfModelConfig config, IComputeBackend backend)
    {
        public DeviceWeight Matrix(string name, long rows, long cols) => Load(name, [rows, cols], linear: false);

        // A layer's linear weight: read only by Linear, which lets the backend keep a form of it for that.
        public DeviceWeight Linear(string name, long rows, long cols) => Load(name, [rows, cols], linear: true);

        public DeviceWeight Vector(string name, long size) => Load(name, [size], linear: false);

        private DeviceWeight Load(string name, long[] expected, bool linear)
        {
            var t = checkpoint.Get(name);
            if (Array.IndexOf(ComputeTypes, t.DType) < 0)
                throw new CheckpointException(t.File, name, $"dtype {t.DType.Name()} cannot be computed with yet (F32, F16 and BF16 can)");
            if (!t.Shape.AsSpan().SequenceEqual(expected))
                throw new CheckpointException(t.File, name,
                    $"shape {t.ShapeText} disagrees with {Path.GetFileName(config.Path)}, which implies [{string.Join(", ", expected)}]");
            return linear ? backend.UploadLinear(t) : backend.Upload(t);
        }
    }
}
