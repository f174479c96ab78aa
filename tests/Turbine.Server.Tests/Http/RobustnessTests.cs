using System.Diagnostics;
using System.Net;
using System.Text;
using Turbine.Engine.Executor;

namespace Turbine.Server.Tests.Http;

/// <summary>A server whose executor runs one request at a time and queues at most one more.</summary>
public sealed class TinyQueueFixture : ServerFixture
{
    public override ExecutorOptions ExecutorOptions => new() { MaxBatchSize = 1, MaxNumTokens = 256, KvCacheMemoryBytes = 16L << 20, MaxQueueSize = 1 };
}

/// <summary>Overload, client disconnects and graceful shutdown.</summary>
[Collection(TimingSensitiveCollection.Name)]
public sealed class RobustnessTests
{
    private static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task Overload_is_refused_at_once_with_503()
    {
        var fx = new TinyQueueFixture();
        await fx.InitializeAsync();
        try
        {
            var requests = Enumerable.Range(0, 6).Select(async _ =>
            {
                var clock = Stopwatch.StartNew();
                using var response = await fx.Client.PostAsync(fx.Url + "/v2/models/ensemble/generate",
                    Body("""{"text_input": "In the beginning", "max_tokens": 300, "end_id": -1}"""));
                return (response.StatusCode, Text: await response.Content.ReadAsStringAsync(), clock.Elapsed);
            }).ToList();
            var results = await Task.WhenAll(requests);
            var refused = results.Where(r => r.StatusCode == HttpStatusCode.ServiceUnavailable).ToList();
            Assert.NotEmpty(refused);
            Assert.All(refused, r => Assert.Contains("queue is full", r.Text));
            Assert.All(results, r => Assert.True(r.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, r.Text));
            Assert.Contains(results, r => r.StatusCode == HttpStatusCode.OK);
            // A refusal does not wait for the running request.
            Assert.True(refused.Min(r => r.Elapsed) < results.Where(r => r.StatusCode == HttpStatusCode.OK).Max(r => r.Elapsed));
        }
        finally
        {
            await fx.DisposeAsync();
        }
    }

    [Fact]
    public async Task Client_disconnecting_mid_stream_cancels_and_frees_kv_blocks()
    {
        var fx = new ServerFixture();
        await fx.InitializeAsync();
        try
        {
            // A client that really drops the connection: by default SocketsHttpHandler would drain up to 1 MB of the
            // unread response on dispose (to reuse the connection), reading the whole stream instead of leaving.
            using var leaving = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 });
            using (var request = new HttpRequestMessage(HttpMethod.Post, fx.Url + "/v2/models/ensemble/generate_stream")
                   { Content = Body("""{"text_input": "In the beginning", "max_tokens": 1000, "end_id": -1, "stream": true}""") })
            using (var response = await leaving.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var stream = await response.Content.ReadAsStreamAsync();
                var reader = new StreamReader(stream);
                Assert.StartsWith("data: ", await reader.ReadLineAsync());
                Assert.True(fx.Llm.Executor.GetStatistics().UsedKvBlocks > 0);
            }
            var clock = Stopwatch.StartNew();
            ExecutorStatistics stats;
            while ((stats = fx.Llm.Executor.GetStatistics()) is not { ActiveRequests: 0, UsedKvBlocks: 0, QueuedRequests: 0 } && clock.Elapsed < TimeSpan.FromSeconds(20))
                await Task.Delay(10);
            Assert.Equal(0, stats.ActiveRequests);
            Assert.Equal(0, stats.UsedKvBlocks);
            Assert.Equal(stats.MaxKvBlocks, stats.FreeKvBlocks);
            // Cancelled long before its 1000 tokens.
            Assert.True(stats.Iterations < 900, $"{stats.Iterations} steps ran");
        }
        finally
        {
            await fx.DisposeAsync();
        }
    }

    [Fact]
    public async Task Graceful_shutdown_lets_in_flight_requests_finish_and_refuses_new_ones()
    {
        var fx = new ServerFixture();
        await fx.InitializeAsync();
        var inFlight = fx.Client.PostAsync(fx.Url + "/v2/models/ensemble/generate", Body("""{"text_input": "In the beginning", "max_tokens": 400, "end_id": -1}"""));
        var clock = Stopwatch.StartNew();
        while (fx.Llm.Executor.GetStatistics().ActiveRequests == 0 && clock.Elapsed < TimeSpan.FromSeconds(10))
            await Task.Delay(5);
        var stopping = fx.Server.StopAsync();
        await Task.Delay(20);
        await Assert.ThrowsAnyAsync<HttpRequestException>(async () =>
        {
            using var late = await fx.Client.PostAsync(fx.Url + "/v2/models/ensemble/generate", Body("""{"text_input": "a", "max_tokens": 2}"""));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, late.StatusCode);
            throw new HttpRequestException("refused with 503");
        });
        using var response = await inFlight;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("text_output", await response.Content.ReadAsStringAsync());
        await stopping;
        await fx.Server.DisposeAsync();
        await fx.Server.Registry.DisposeAsync();
    }
}

/// <summary>
/// Tests that watch the executor race a client (disconnects, overload, shutdown) run alone, after the parallel ones:
/// a thread pool busy with other tests would let the executor finish before the server sees the client leave.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimingSensitiveCollection
{
    public const string Name = "timing-sensitive";
}
