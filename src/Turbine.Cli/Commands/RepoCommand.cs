using System.CommandLine;
using Turbine.Server.Repository;

namespace Turbine.Cli.Commands;

/// <summary>
/// <c>turbine repo init</c>: writes TensorRT-LLM's inflight_batcher_llm model repository (ensemble, preprocessing,
/// tensorrt_llm, postprocessing, tensorrt_llm_bls) fully filled, replacing the copy-templates-then-fill_template.py
/// routine; <c>key:value</c> arguments set template keys as fill_template.py does.
/// </summary>
internal static class RepoCommand
{
    public static Command Create()
    {
        var engineDir = new Option<string>("--engine_dir") { Description = "Hugging Face model directory the LLM loads", Required = true };
        var tokenizerDir = new Option<string?>("--tokenizer_dir") { Description = "Tokenizer directory (default: the engine directory)" };
        var output = new Option<string>("--output") { Description = "Model repository directory to write", Required = true };
        var decoupled = new Option<bool>("--decoupled") { Description = "Stream responses (decoupled_mode:true for tensorrt_llm and tensorrt_llm_bls)" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace config.pbtxt files that already exist" };
        var pairs = new Argument<string[]>("key:value")
        {
            Description = "Template keys to set, as fill_template.py takes them (several may be joined with commas): "
                + string.Join(", ", StandardRepository.Defaults.Keys),
            Arity = ArgumentArity.ZeroOrMore,
        };
        var init = new Command("init", "Write the ensemble/preprocessing/tensorrt_llm/postprocessing/tensorrt_llm_bls model repository")
        {
            engineDir, tokenizerDir, output, decoupled, overwrite, pairs,
        };
        init.SetAction(parseResult =>
        {
            try
            {
                var overrides = StandardRepository.ParseOverrides(parseResult.GetValue(pairs) ?? []);
                var files = StandardRepository.Write(parseResult.GetValue(output)!, parseResult.GetValue(engineDir)!,
                    parseResult.GetValue(tokenizerDir), parseResult.GetValue(decoupled), overrides, parseResult.GetValue(overwrite));
                foreach (var file in files) Console.WriteLine($"wrote {file}");
                return 0;
            }
            catch (Exception e) when (e is ModelRepositoryException or ArgumentException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
        });
        return new Command("repo", "Triton model repository tools") { init };
    }
}
