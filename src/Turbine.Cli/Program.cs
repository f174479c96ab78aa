using System.CommandLine;
using Turbine.Cli.Commands;

var root = new RootCommand("Turbine: a large-language-model inference server and engine for CPUs and NVIDIA GPUs.");
foreach (var command in CommandCatalog.All())
    root.Subcommands.Add(command);
return await root.Parse(args).InvokeAsync();
