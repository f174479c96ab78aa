using System.CommandLine;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Turbine.Cli.Commands;

/// <summary>
/// <c>turbine client</c>: one generation against a running server through Triton's generate extension, like the
/// seeds' end_to_end client; with --stream, text is printed as each event arrives.
/// </summary>
internal static class ClientCommand
{
    public static Command Create()
    {
        var url = new Option<string>("--url") { Description = "Server address", DefaultValueFactory = _ => "http://localhost:8000" };
        var model = new Option<string>("--model") { Description = "Model to call", DefaultValueFactory = _ => "ensemble" };
        var text = new Option<string>("--text") { Description = "The prompt", DefaultValueFactory = _ => "In the beginning" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens to generate at most", DefaultValueFactory = _ => 64 };
        var stream = new Option<bool>("--stream") { Description = "Stream tokens as they are generated (generate_stream)" };
        var temperature = new Option<float?>("--temperature") { Description = "Sampling temperature (default: greedy)" };
        var command = new Command("client", "Send a prompt to a running turbine (or tritonserver) and print the generated text")
        {
            url, model, text, maxTokens, stream, temperature,
        };
        command.SetAction((parse, cancellationToken) => Execute(parse.GetValue(url)!, parse.GetValue(model)!, parse.GetValue(text)!,
            parse.GetValue(maxTokens), parse.GetValue(stream), parse.GetValue(temperature), cancellationToken));
        return command;
    }

    private static async Task<int> Execute(string url, string model, string text, int maxTokens, bool stream, float? temperature, CancellationToken cancellationToken)
    {
        var body = new Dictionary<string, object> { ["text_input"] = text, ["max_tokens"] = maxTokens, ["bad_words"] = "", ["stop_words"] = "" };
        if (stream)
            body["stream"] = true;
        if (temperature is float t)
            body["temperature"] = t;
        if (!url.Contains("://", StringComparison.Ordinal))
            url = "http://" + url;
        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{url.TrimEnd('/')}/v2/models/{model}/{(stream ? "generate_stream" : "generate")}")
        {
            Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
        };
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
                return Fail($"{(int)response.StatusCode} {Error(await response.Content.ReadAsStringAsync(cancellationToken))}");
            if (!stream)
            {
                using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
                Console.WriteLine(document.RootElement.GetProperty("text_output").GetString());
                return 0;
            }
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken), Encoding.UTF8);
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal))
                    continue;
                using var document = JsonDocument.Parse(line.AsMemory(6));
                if (document.RootElement.TryGetProperty("error", out var error))
                    return Fail(error.ToString());
                Console.Write(document.RootElement.GetProperty("text_output").GetString());
                Console.Out.Flush();
            }
            Console.WriteLine();
            return 0;
        }
        catch (HttpRequestException e)
        {
            return Fail($"cannot reach {url}: {e.Message}");
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException)
        {
            return Fail($"unexpected response: {e.Message}");
        }
    }

    private static string Error(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.TryGetProperty("error", out var e) ? e.ToString() : body;
        }
        catch (JsonException)
        {
            return body;
        }
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        return 1;
    }
}
