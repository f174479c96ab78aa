using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Turbine.Server.Http;

/// <summary>The KServe v2 / Triton HTTP routes; each delegates to its handler class.</summary>
public static class TritonEndpoints
{
    /// <summary>Registers the handlers with <paramref name="services"/>.</summary>
    public static IServiceCollection AddTritonHandlers(this IServiceCollection services) => services
        .AddSingleton<ServerHandlers>().AddSingleton<ModelHandlers>().AddSingleton<InferHandler>().AddSingleton<GenerateHandler>();

    /// <summary>Maps every /v2 route.</summary>
    public static void MapTriton(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v2/health/live", (ServerHandlers h) => h.Live());
        app.MapGet("/v2/health/ready", (ServerHandlers h) => h.Ready());
        app.MapGet("/v2", (ServerHandlers h, HttpContext c) => h.Metadata(c));

        app.MapGet("/v2/models/stats", (ModelHandlers h, HttpContext c) => h.Statistics(c, null, null));
        app.MapPost("/v2/repository/index", (ModelHandlers h, HttpContext c) => h.Index(c));
        app.MapPost("/v2/repository/models/{model}/load", (ModelHandlers h, string model) => h.Load(model, load: true));
        app.MapPost("/v2/repository/models/{model}/unload", (ModelHandlers h, string model) => h.Load(model, load: false));

        foreach (var prefix in new[] { "/v2/models/{model}", "/v2/models/{model}/versions/{version}" })
        {
            app.MapGet(prefix, (ModelHandlers h, HttpContext c, string model, string? version) => h.Metadata(c, model, version));
            app.MapGet(prefix + "/config", (ModelHandlers h, HttpContext c, string model, string? version) => h.Config(c, model, version));
            app.MapGet(prefix + "/ready", (ModelHandlers h, string model, string? version) => h.Ready(model, version));
            app.MapGet(prefix + "/stats", (ModelHandlers h, HttpContext c, string model, string? version) => h.Statistics(c, model, version));
            app.MapPost(prefix + "/infer", (InferHandler h, HttpContext c, string model, string? version) => h.Handle(c, model, version));
            app.MapPost(prefix + "/generate", (GenerateHandler h, HttpContext c, string model, string? version) => h.Handle(c, model, version, stream: false));
            app.MapPost(prefix + "/generate_stream", (GenerateHandler h, HttpContext c, string model, string? version) => h.Handle(c, model, version, stream: true));
        }
    }
}
