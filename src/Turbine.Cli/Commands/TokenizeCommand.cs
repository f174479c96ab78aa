using System.CommandLine;
using System.Text.Json;
using Turbine.Tokenizers;

namespace Turbine.Cli.Commands;

/// <summary><c>turbine tokenize</c>: encode a JSON array of strings to id arrays, or decode id arrays back to strings.</summary>
internal static class TokenizeCommand
{
    // Chinese text stays readable in the output.
    private static readonly JsonSerializerOptions JsonOutput = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var tokenizerDir = new Option<string>("--tokenizer") { Description = "Directory holding tokenizer.json (and tokenizer_config.json)", Required = true };
        var input = new Option<string>("--input") { Description = "JSON file: an array of strings, or with --decode an array of id arrays", Required = true };
        var addSpecial = new Option<bool>("--add-special-tokens") { Description = "Add the post-processor's special tokens (e.g. BOS) when encoding" };
        var decode = new Option<bool>("--decode") { Description = "Decode id arrays to strings instead of encoding" };
        var skipSpecial = new Option<bool>("--skip-special-tokens") { Description = "Leave special tokens out of decoded text" };
        var command = new Command("tokenize", "Encode strings to token ids, or decode ids to strings, with a Hugging Face tokenizer.json")
        {
            tokenizerDir, input, addSpecial, decode, skipSpecial,
        };
        command.SetAction(parseResult =>
        {
            try
            {
                var tokenizer = Tokenizer.FromDirectory(parseResult.GetValue(tokenizerDir)!);
                var path = parseResult.GetValue(input)!;
                var json = File.ReadAllText(path);
                string output;
                if (parseResult.GetValue(decode))
                {
                    var idLists = Deserialize<int[][]>(json, path, "an array of arrays of token ids");
                    var skip = parseResult.GetValue(skipSpecial);
                    output = JsonSerializer.Serialize(Array.ConvertAll(idLists, ids => tokenizer.Decode(ids ?? [], skip)), JsonOutput);
                }
                else
                {
                    var texts = Deserialize<string[]>(json, path, "an array of strings");
                    var add = parseResult.GetValue(addSpecial);
                    output = JsonSerializer.Serialize(Array.ConvertAll(texts, text => tokenizer.Encode(text ?? "", add)), JsonOutput);
                }
                Console.WriteLine(output);
                return 0;
            }
            catch (Exception e) when (e is TokenizerFormatException or IOException or UnauthorizedAccessException or InvalidDataException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    private static T Deserialize<T>(string json, string path, string expected)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(json) ?? throw new InvalidDataException($"{path}: expected {expected}, found null");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: expected {expected} ({e.Message})", e);
        }
    }
}
