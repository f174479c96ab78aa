namespace Turbine.Tokenizers.AddedTokens;

/// <summary>A token matched in the text before the model runs (tokenizer.json "added_tokens").</summary>
/// <param name="Id">Its id.</param>
/// <param name="Content">The text it matches.</param>
/// <param name="Special">Whether decoding with skipSpecialTokens drops it.</param>
/// <param name="LStrip">Whether it swallows whitespace on its left.</param>
/// <param name="RStrip">Whether it swallows whitespace on its right.</param>
/// <param name="Normalized">Whether it is matched in the normalized text rather than the raw text.</param>
/// <param name="SingleWord">Whether it only matches as a whole word.</param>
public sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip, bool Normalized, bool SingleWord);
