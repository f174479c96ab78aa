using System.Text.Json;

namespace Turbine.Bench.Decode;

/// <summary>Writes a Llama-shaped HF checkpoint with random bf16 weights: speed does not depend on weight values.</summary>
internal static class RandomCheckpoint
{
    public sealed record Shape(int Vocab, int Hidden, int Intermediate, int Layers, int Heads, int KvHeads)
    {
        public long Parameters =>
            2L * Vocab * Hidden + Hidden + Layers * (2L * Hidden + (long)Hidden * Hidden * 2 + 2L * Hidden * (Hidden / Heads * KvHeads) + 3L * Hidden * Intermediate);
    }

    public static void Write(string dir, Shape s, int seed = 1)
    {
        Directory.CreateDirectory(dir);
        int headDim = s.Hidden / s.Heads, kvDim = headDim * s.KvHeads;
        var tensors = new List<(string Name, long[] Shape)>
        {
            ("model.embed_tokens.weight", [s.Vocab, s.Hidden]),
            ("model.norm.weight", [s.Hidden]),
            ("lm_head.weight", [s.Vocab, s.Hidden]),
        };
        for (int l = 0; l < s.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            tensors.Add((p + "input_layernorm.weight", [s.Hidden]));
            tensors.Add((p + "post_attention_layernorm.weight", [s.Hidden]));
            tensors.Add((p + "self_attn.q_proj.weight", [s.Hidden, s.Hidden]));
            tensors.Add((p + "self_attn.k_proj.weight", [kvDim, s.Hidden]));
            tensors.Add((p + "self_attn.v_proj.weight", [kvDim, s.Hidden]));
            tensors.Add((p + "self_attn.o_proj.weight", [s.Hidden, s.Hidden]));
            tensors.Add((p + "mlp.gate_proj.weight", [s.Intermediate, s.Hidden]));
            tensors.Add((p + "mlp.up_proj.weight", [s.Intermediate, s.Hidden]));
            tensors.Add((p + "mlp.down_proj.weight", [s.Hidden, s.Intermediate]));
        }
        var header = new Dictionary<string, object>();
        long offset = 0;
        foreach (var (name, shape) in tensors)
        {
            long bytes = 2;
            foreach (var d in shape)
                bytes *= d;
            header[name] = new { dtype = "BF16", shape, data_offsets = new[] { offset, offset + bytes } };
            offset += bytes;
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        var random = new Random(seed);
        using (var f = new FileStream(Path.Combine(dir, "model.safetensors"), FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            f.Write(BitConverter.GetBytes((ulong)json.Length));
            f.Write(json);
            var buffer = new byte[1 << 20];
            foreach (var (name, shape) in tensors)
            {
                long count = 1;
                foreach (var d in shape)
                    count *= d;
                bool norm = shape.Length == 1;
                for (long done = 0; done < count;)
                {
                    int n = (int)Math.Min(buffer.Length / 2, count - done);
                    for (int i = 0; i < n; i++)
                    {
                        // Norm weights near 1, matrices ~N(0, 0.02) like HF's initialiser (uniform of the same spread suffices).
                        float v = norm ? 1f : (float)((random.NextDouble() * 2 - 1) * 0.035);
                        ushort bf = (ushort)(BitConverter.SingleToInt32Bits(v) >> 16);
                        buffer[2 * i] = (byte)bf;
                        buffer[2 * i + 1] = (byte)(bf >> 8);
                    }
                    f.Write(buffer, 0, 2 * n);
                    done += n;
                }
            }
        }
        var config = new Dictionary<string, object>
        {
            ["architectures"] = new[] { "LlamaForCausalLM" },
            ["model_type"] = "llama",
            ["vocab_size"] = s.Vocab,
            ["hidden_size"] = s.Hidden,
            ["intermediate_size"] = s.Intermediate,
            ["num_hidden_layers"] = s.Layers,
            ["num_attention_heads"] = s.Heads,
            ["num_key_value_heads"] = s.KvHeads,
            ["max_position_embeddings"] = 4096,
            ["rms_norm_eps"] = 1e-5,
            ["rope_theta"] = 10000.0,
            ["tie_word_embeddings"] = false,
            ["hidden_act"] = "silu",
            ["torch_dtype"] = "bfloat16",
            ["bos_token_id"] = 1,
            ["eos_token_id"] = 2,
        };
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }));
    }
}
