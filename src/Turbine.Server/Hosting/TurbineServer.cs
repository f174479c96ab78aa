using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Turbine.Server.Http;
using Turbine.Server.Metrics;
using Turbine.Server.Models;
using Turbine.Server.OpenAi;

namespace Turbine.Server.Hosting;

/// <summary>
/// A running server: the HTTP frontends (KServe v2 and OpenAI) on one Kestrel listener and Prometheus metrics on
/// another, over one <see cref="ModelRegistry"/>.
/// </summary>
public sealed class TurbineServer : IAsyncDisposable
{
    private readonly WebApplication _http;
    private readonly WebApplication? _metrics;
    private readonly ServerLifetime _lifetime = new();

    private TurbineServer(ServerOptions options, ModelRegistry registry)
    {
        Options = options;
        Registry = registry;
        _http = BuildHttp(options, registry, _lifetime);
        _metrics = options.MetricsPort >= 0 ? BuildMetrics(options, registry) : null;
    }

    /// <summary>The options the server runs with.</summary>
    public ServerOptions Options { get; }
    /// <summary>The served models.</summary>
    public ModelRegistry Registry { get; }
    /// <summary>The HTTP frontend's base address once started (http://host:port).</summary>
    public string HttpAddress { get; private set; } = "";
    /// <summary>The metrics endpoint's base address once started, or empty when disabled.</summary>
    public string MetricsAddress { get; private set; } = "";

    /// <summary>Starts listening; ports of 0 are resolved into <see cref="HttpAddress"/> and <see cref="MetricsAddress"/>.</summary>
    public static async Task<TurbineServer> StartAsync(ServerOptions options, ModelRegistry registry, CancellationToken cancellationToken = default)
    {
        var server = new TurbineServer(options, registry);
        await server._http.StartAsync(cancellationToken).ConfigureAwait(false);
        server.HttpAddress = Address(server._http);
        if (server._metrics is not null)
        {
            await server._metrics.StartAsync(cancellationToken).ConfigureAwait(false);
            server.MetricsAddress = Address(server._metrics);
        }
        return server;
    }

    private static string Address(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    private static WebApplicationBuilder Builder(ServerOptions options, int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (options.LogVerbose)
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Information);
        else
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            k.Listen(System.Net.IPAddress.Parse(options.Host == "localhost" ? "127.0.0.1" : options.Host), port);
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ExitTimeout);
        return builder;
    }

    private static WebApplication BuildHttp(ServerOptions options, ModelRegistry registry, ServerLifetime lifetime)
    {
        var builder = Builder(options, options.HttpPort);
        builder.Services.AddSingleton(options).AddSingleton(registry).AddSingleton(lifetime).AddTritonHandlers().AddOpenAiHandlers();
        var app = builder.Build();
        app.UseMiddleware<ErrorMiddleware>();
        app.UseMiddleware<ApiKeyMiddleware>();
        app.MapTriton();
        app.MapOpenAi();
        return app;
    }

    private static WebApplication BuildMetrics(ServerOptions options, ModelRegistry registry)
    {
        var builder = Builder(options, options.MetricsPort);
        var app = builder.Build();
        app.MapGet("/metrics", () => Results.Text(PrometheusWriter.Render(registry), PrometheusWriter.ContentType));
        return app;
    }

    /// <summary>
    /// Graceful shutdown: readiness turns false and new inference gets 503 at once, then the listeners stop accepting
    /// and in-flight requests get up to <see cref="ServerOptions.ExitTimeout"/> to finish.
    /// </summary>
    public async Task StopAsync()
    {
        _lifetime.BeginStopping();
        using var timeout = new CancellationTokenSource(Options.ExitTimeout);
        await _http.StopAsync(timeout.Token).ConfigureAwait(false);
        if (_metrics is not null)
            await _metrics.StopAsync(CancellationToken.None).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _http.DisposeAsync().ConfigureAwait(false);
        if (_metrics is not null)
            await _metrics.DisposeAsync().ConfigureAwait(false);
    }
}
