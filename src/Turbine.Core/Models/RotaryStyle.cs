namespace Turbine.Core.Models;

/// <summary>
/// Which dimensions of a head rotate together under rotary position embedding. Both styles rotate the first
/// 2 × half dimensions of each head (the rest pass through unchanged, for partial rotary) and give pair i the
/// frequency of index i; they differ only in which dimensions form pair i.
/// </summary>
public enum RotaryStyle
{
    /// <summary>GPT-NeoX / HF "rotate_half" (Llama, Mistral, Qwen2 in transformers): pair i is (i, i + half).</summary>
    Neox,
    /// <summary>GPT-J "rotate every two" (GPT-J, ChatGLM, Meta's original Llama code): pair i is (2i, 2i + 1).</summary>
    Interleaved,
}
