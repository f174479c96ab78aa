using Microsoft.AspNetCore.Http;
using Turbine.Server.Hosting;

namespace Turbine.Server.OpenAi;

/// <summary>With --api-key set, /v1 requests need <c>Authorization: Bearer KEY</c>; others are answered 401.</summary>
public sealed class ApiKeyMiddleware(RequestDelegate next, ServerOptions options)
{
    /// <summary>Checks the key on /v1 and passes the request on.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        if (options.ApiKey is { Length: > 0 } key && context.Request.Path.StartsWithSegments("/v1")
            && context.Request.Headers.Authorization.ToString() != "Bearer " + key)
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, "Incorrect API key provided.");
            return;
        }
        await next(context);
    }
}
