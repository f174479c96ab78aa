using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Turbine.Cli.Benchmarking;

namespace Turbine.Cli.Tests;

public sealed class TritonGenerateStreamTargetTests : IDisposable
{
    private readonly FakeTritonServer _server = new();

    public void Dispose() => _server.Dispose();

    private static BenchmarkSample Sample(string? prompt, int outputLen) => new() { InputIds = [1, 2, 3], InputLen = 3, OutputLen = outputLen, Prompt = prompt };

    [Fact]
    public async Task StreamedEventsAreCountedAsTokens()
    {
        BenchmarkSample[] samples = [Sample("hello", 5), Sample("world", 1), Sample("again", 12)];
        using var http = new HttpClient();
        var target = new TritonGenerateStreamTarget(http, _server.Url, "ensemble");
        var run = await LoadGenerator.RunAsync(samples, target, new LoadSettings { RequestRate = 500, Concurrency = 2, Seed = 4 });
        var report = BenchmarkReport.From(run);

        Assert.Equal(new[] { 5, 1, 12 }, run.Records.Select(r => r.OutputTokens));
        Assert.Equal((3, 3, 0, 0), (report.Requests, report.Completed, report.Failed, report.LengthMismatches));
        Assert.Equal(18, report.OutputTokens);
        Assert.Equal(9, report.InputTokens);
        Assert.Equal(2, report.InterTokenLatency.Count);
        var bodies = _server.Requests;
        Assert.Equal(3, bodies.Count);
        Assert.All(bodies, r => Assert.Equal("/v2/models/ensemble/generate_stream", r.Path));
        var hello = bodies.Single(r => r.Body.GetProperty("text_input").GetString() == "hello").Body;
        Assert.Equal(5, hello.GetProperty("max_tokens").GetInt32());
        Assert.Equal(5, hello.GetProperty("min_length").GetInt32());
        Assert.True(hello.GetProperty("stream").GetBoolean());
    }

    [Fact]
    public async Task ErrorsAndMissingPromptsFailTheirRequests()
    {
        BenchmarkSample[] samples = [Sample(FakeTritonServer.FailingPrompt, 4), Sample(null, 4), Sample("fine", 2)];
        using var http = new HttpClient();
        var target = new TritonGenerateStreamTarget(http, _server.Url, "my model");
        var run = await LoadGenerator.RunAsync(samples, target, new LoadSettings());
        var report = BenchmarkReport.From(run);

        Assert.Equal((3, 1, 2), (report.Requests, report.Completed, report.Failed));
        Assert.Contains("model exploded", run.Records[0].Error);
        Assert.Contains("no prompt", run.Records[1].Error);
        Assert.Null(run.Records[2].Error);
        Assert.Equal(2, report.OutputTokens);
        Assert.All(_server.Requests, r => Assert.Equal("/v2/models/my%20model/generate_stream", r.RawPath));
    }

    [Fact]
    public async Task HttpErrorStatusesFailTheRequest()
    {
        using var http = new HttpClient();
        var target = new TritonGenerateStreamTarget(http, new Uri(_server.Url, "nowhere/"), "ensemble");
        var run = await LoadGenerator.RunAsync([Sample("x", 3)], target, new LoadSettings());
        Assert.Contains("404", run.Records[0].Error);
    }

    /// <summary>A Triton stand-in on 127.0.0.1: generate_stream answers max_tokens SSE events with text_output.</summary>
    private sealed class FakeTritonServer : IDisposable
    {
        public const string FailingPrompt = "please fail";
        private readonly HttpListener _listener = new();
        private readonly List<(string Path, string RawPath, JsonElement Body)> _requests = [];
        private readonly Task _serving;

        public FakeTritonServer()
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            Url = new Uri($"http://127.0.0.1:{port}/");
            _listener.Prefixes.Add(Url.ToString());
            _listener.Start();
            _serving = Task.Run(Serve);
        }

        public Uri Url { get; }

        public List<(string Path, string RawPath, JsonElement Body)> Requests
        {
            get
            {
                lock (_requests)
                    return [.. _requests];
            }
        }

        private async Task Serve()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }
                _ = Task.Run(() => Answer(context));
            }
        }

        private async Task Answer(HttpListenerContext context)
        {
            var response = context.Response;
            var path = context.Request.Url!.AbsolutePath;
            if (!path.StartsWith("/v2/models/", StringComparison.Ordinal) || !path.EndsWith("/generate_stream", StringComparison.Ordinal))
            {
                response.StatusCode = 404;
                response.Close(Encoding.UTF8.GetBytes("""{"error":"not found"}"""), willBlock: false);
                return;
            }
            using var reader = new StreamReader(context.Request.InputStream);
            var body = JsonDocument.Parse(await reader.ReadToEndAsync()).RootElement.Clone();
            lock (_requests)
                _requests.Add((Uri.UnescapeDataString(path), context.Request.RawUrl!, body));
            response.ContentType = "text/event-stream";
            response.SendChunked = true;
            var output = response.OutputStream;
            if (body.GetProperty("text_input").GetString() == FailingPrompt)
                await Write(output, """data: {"error":"model exploded"}""" + "\n\n");
            else
                for (int i = 0; i < body.GetProperty("max_tokens").GetInt32(); i++)
                {
                    await Write(output, ": keep-alive comments and blank lines are not tokens\n");
                    await Write(output, $$"""data: {"model_name":"ensemble","model_version":"1","sequence_end":false,"sequence_id":0,"text_output":"t{{i}}"}""" + "\n\n");
                }
            response.Close();
        }

        private static async Task Write(Stream output, string text)
        {
            await output.WriteAsync(Encoding.UTF8.GetBytes(text));
            await output.FlushAsync();
        }

        public void Dispose()
        {
            _listener.Stop();
            _listener.Close();
            _serving.Wait(TimeSpan.FromSeconds(5));
        }
    }
}
