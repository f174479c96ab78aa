using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Turbine.Cli.Benchmarking;

/// <summary>
/// Sends benchmark samples to a Triton-compatible server through the generate extension's streaming endpoint,
/// <c>POST {url}/v2/models/{model}/generate_stream</c>, as TensorRT-LLM's ensemble model takes them: <c>text_input</c>,
/// <c>max_tokens</c> and <c>min_length</c> both set to output_len so that generation does not stop early, and
/// <c>stream</c>. The reply is server-sent events, one <c>data: {..."text_output": ...}</c> per step, each counted as
/// one token; a <c>data: {"error": ...}</c> event fails the request. Samples need a text <c>prompt</c>.
/// </summary>
public sealed class TritonGenerateStreamTarget(HttpClient http, Uri serverUrl, string modelName) : IGenerationTarget
{
    private readonly Uri _endpoint = new(serverUrl, $"v2/models/{Uri.EscapeDataString(modelName)}/generate_stream");

    /// <inheritdoc/>
    public async Task GenerateAsync(BenchmarkSample sample, RequestRecord record, CancellationToken cancellationToken)
    {
        if (sample.Prompt is null)
            throw new InvalidDataException("the sample has no prompt text; generate the dataset with --model DIR that has a tokenizer");
        var body = JsonSerializer.Serialize(new StreamRequest(sample.Prompt, sample.OutputLen, sample.OutputLen, true));
        using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var detail = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            throw new HttpRequestException($"{(int)response.StatusCode} {response.ReasonPhrase}: {detail}");
        }
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false));
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (!line.StartsWith("data:", StringComparison.Ordinal))
                continue;
            var payload = line.AsSpan(5);
            // A substring test keeps the per-token cost low; only errors are parsed.
            if (payload.Contains("\"error\"", StringComparison.Ordinal))
                throw new HttpRequestException($"the server reported an error: {ErrorMessage(payload.ToString())}");
            if (payload.Contains("\"text_output\"", StringComparison.Ordinal))
                record.RecordTokens(1);
        }
    }

    private static string ErrorMessage(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return document.RootElement.TryGetProperty("error", out var error) ? error.ToString() : json;
        }
        catch (JsonException)
        {
            return json;
        }
    }

    private sealed record StreamRequest(
        [property: JsonPropertyName("text_input")] string TextInput,
        [property: JsonPropertyName("max_tokens")] int MaxTokens,
        [property: JsonPropertyName("min_length")] int MinLength,
        [property: JsonPropertyName("stream")] bool Stream);
}
