using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Turbine.Server.OpenAi;

/// <summary>The OpenAI-compatible routes (/v1) and vLLM's /tokenize and /detokenize; each delegates to its handler.</summary>
public static class OpenAiEndpoints
{
    /// <summary>Registers the handlers with <paramref name="services"/>.</summary>
    public static IServiceCollection AddOpenAiHandlers(this IServiceCollection services) => services
        .AddSingleton<OpenAiModels>().AddSingleton<CompletionsHandler>().AddSingleton<TokenizeHandler>();

    /// <summary>Maps every OpenAI route.</summary>
    public static void MapOpenAi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v1/models", (OpenAiModels h, HttpContext c) => h.List(c));
        app.MapPost("/v1/completions", (CompletionsHandler h, HttpContext c) => h.Handle(c, chat: false));
        app.MapPost("/v1/chat/completions", (CompletionsHandler h, HttpContext c) => h.Handle(c, chat: true));
        app.MapPost("/tokenize", (TokenizeHandler h, HttpContext c) => h.Tokenize(c));
        app.MapPost("/detokenize", (TokenizeHandler h, HttpContext c) => h.Detokenize(c));
    }
}
