using System.CommandLine;
using Turbine.Cli.Hosting;
using Turbine.Server.Hosting;
using Turbine.Server.Models;
using Turbine.Server.Repository;

namespace Turbine.Cli.Commands;

/// <summary><c>turbine serve</c>: tritonserver's role: KServe v2 HTTP, the OpenAI API and Prometheus metrics over a model repository.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var repository = new Option<string?>("--model-repository") { Description = "Triton model repository directory (config.pbtxt per model)" };
        var model = new Option<string?>("--model") { Description = "HF or engine directory served as the standard five-model repository (default: the bundled demo model)" };
        var host = new Option<string>("--host") { Description = "Address to listen on", DefaultValueFactory = _ => "0.0.0.0" };
        var httpPort = new Option<int>("--http-port") { Description = "KServe v2 HTTP and OpenAI port", DefaultValueFactory = _ => 8000 };
        var grpcPort = new Option<int>("--grpc-port") { Description = "KServe v2 gRPC port", DefaultValueFactory = _ => 8001 };
        var metricsPort = new Option<int>("--metrics-port") { Description = "Prometheus metrics port", DefaultValueFactory = _ => 8002 };
        var verbose = new Option<bool>("--log-verbose") { Description = "Log every request" };
        var controlMode = new Option<string>("--model-control-mode") { Description = "none, poll or explicit", DefaultValueFactory = _ => "none" };
        controlMode.AcceptOnlyFromAmong("none", "poll", "explicit");
        var loadModel = new Option<string[]>("--load-model") { Description = "Model to load at startup in explicit mode (repeatable; * for all)", AllowMultipleArgumentsPerToken = false };
        var pollSecs = new Option<int>("--repository-poll-secs") { Description = "Seconds between repository scans in poll mode", DefaultValueFactory = _ => 15 };
        var exitTimeout = new Option<int>("--exit-timeout-secs") { Description = "Seconds shutdown waits for in-flight requests", DefaultValueFactory = _ => 30 };
        var apiKey = new Option<string?>("--api-key") { Description = "Bearer token the OpenAI API (/v1) requires" };
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: one per core)" };
        var backend = new BackendOptions();
        var command = new Command("serve", "Serve models over HTTP (KServe v2, generate, OpenAI) with Prometheus metrics, like tritonserver")
        {
            repository, model, host, httpPort, grpcPort, metricsPort, verbose, controlMode, loadModel, pollSecs, exitTimeout, apiKey, threads,
            backend.Device, backend.KvCacheDtype, backend.GemmPrecision,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var mode = parse.GetValue(controlMode) switch { "poll" => ModelControlMode.Poll, "explicit" => ModelControlMode.Explicit, _ => ModelControlMode.None };
            var options = new ServerOptions
            {
                Host = parse.GetValue(host)!, HttpPort = parse.GetValue(httpPort), GrpcPort = parse.GetValue(grpcPort),
                MetricsPort = parse.GetValue(metricsPort), LogVerbose = parse.GetValue(verbose), ModelControlMode = mode,
                ExitTimeout = TimeSpan.FromSeconds(Math.Max(0, parse.GetValue(exitTimeout))), ApiKey = parse.GetValue(apiKey),
            };
            int threadCount = parse.GetValue(threads);
            BackendSettings backendSettings;
            try
            {
                // Resolved once, before any model loads: a repository in explicit mode may create no backend at startup.
                backendSettings = BackendFactory.Resolve(backend.Read(parse, threadCount));
            }
            catch (ArgumentException e)
            {
                return Fail(e.Message);
            }
            return await Execute(options, parse.GetValue(repository), parse.GetValue(model), parse.GetValue(loadModel) ?? [],
                () => BackendFactory.Create(backendSettings), threadCount,
                TimeSpan.FromSeconds(Math.Max(1, parse.GetValue(pollSecs))), cancellationToken);
        });
        return command;
    }

    private static async Task<int> Execute(ServerOptions options, string? repositoryDir, string? modelDir, string[] load,
        Func<Turbine.Engine.Backends.IComputeBackend> createBackend, int threads, TimeSpan pollInterval,
        CancellationToken cancellationToken)
    {
        if (repositoryDir is not null && modelDir is not null)
            return Fail("give --model-repository or --model, not both");
        ModelRegistry registry;
        ModelRepository? repository = null;
        try
        {
            if (repositoryDir is not null)
            {
                repository = ModelRepository.Open(repositoryDir);
                registry = ConsoleProgress.Run($"loading {repositoryDir}", _ => RepositoryModels.Build(repository, options.ModelControlMode, load, threads, createBackend));
            }
            else
            {
                modelDir ??= ModelLocator.DefaultModel();
                var llm = ConsoleProgress.Run($"loading {Path.GetFileName(Path.GetFullPath(modelDir))}", _ => LlmService.Load(modelDir, threads: threads, createBackend: createBackend));
                registry = ModelRegistry.Standard(llm, options.ModelControlMode, load);
            }
        }
        catch (Exception e) when (e is IOException or Turbine.Core.Checkpoints.CheckpointException or Turbine.Tokenizers.TokenizerFormatException
            or Turbine.Backends.Cuda.CudaException
            or ArgumentException or ModelRepositoryException)
        {
            return Fail(e.Message);
        }
        await using var _ = registry;
        await using var poller = repository is not null && options.ModelControlMode == ModelControlMode.Poll
            ? new RepositoryPoller(repository, registry, pollInterval, message => Console.WriteLine($"poll: {message}"))
            : null;
        TurbineServer server;
        try
        {
            server = await TurbineServer.StartAsync(options, registry, cancellationToken);
        }
        catch (IOException e)
        {
            return Fail($"cannot listen: {e.Message}");
        }
        await using (server)
        {
            PrintTable(registry);
            Console.WriteLine($"Started HTTPService at {server.HttpAddress} (KServe v2, generate, OpenAI /v1)");
            if (server.MetricsAddress.Length > 0)
                Console.WriteLine($"Started Metrics Service at {server.MetricsAddress}/metrics");
            var stop = new TaskCompletionSource();
            using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
            using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); });
            using var registration = cancellationToken.Register(() => stop.TrySetResult());
            await stop.Task;
            Console.WriteLine($"Signal received, waiting up to {options.ExitTimeout.TotalSeconds:F0} s for in-flight requests");
            await server.StopAsync();
        }
        return 0;
    }

    private static void PrintTable(ModelRegistry registry)
    {
        var rows = registry.All.Select(m => (m.Name, m.Version, Status: m.State == ModelState.Ready ? "READY" : "UNAVAILABLE")).ToList();
        int w1 = Math.Max(5, rows.Max(r => r.Name.Length)), w2 = 7, w3 = Math.Max(6, rows.Max(r => r.Status.Length));
        string line = $"+{new string('-', w1 + 2)}+{new string('-', w2 + 2)}+{new string('-', w3 + 2)}+";
        Console.WriteLine(line);
        Console.WriteLine($"| {"Model".PadRight(w1)} | {"Version".PadRight(w2)} | {"Status".PadRight(w3)} |");
        Console.WriteLine(line);
        foreach (var (name, version, status) in rows)
            Console.WriteLine($"| {name.PadRight(w1)} | {version.PadRight(w2)} | {status.PadRight(w3)} |");
        Console.WriteLine(line);
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        return 1;
    }
}
