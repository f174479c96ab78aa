using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Turbine.Server.Models;

namespace Turbine.Server.Http;

/// <summary>
/// Turns failures into the caller's error shape before any byte of a response is sent: Triton's
/// <c>{"error": ...}</c> on /v2, OpenAI's <c>{"error": {message, type, param, code}}</c> on /v1 and the vLLM routes.
/// </summary>
public sealed class ErrorMiddleware(RequestDelegate next, ILogger<ErrorMiddleware> logger)
{
    /// <summary>Runs the rest of the pipeline and maps its exceptions.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (Exception e) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            var (status, message) = e switch
            {
                InferenceException ie => (HttpIo.StatusOf(ie.Error), ie.Message),
                HttpStatusException he => (he.Status, he.Message),
                BadHttpRequestException be => (be.StatusCode, be.Message),
                JsonException je => (StatusCodes.Status400BadRequest, $"failed to parse the request JSON buffer: {je.Message}"),
                _ => (StatusCodes.Status500InternalServerError, "internal error: " + e.Message),
            };
            if (status >= 500 && e is not InferenceException)
                logger.LogError(e, "request {Path} failed", context.Request.Path);
            if (OpenAi.OpenAiErrors.Owns(context.Request.Path))
                await OpenAi.OpenAiErrors.WriteAsync(context, status, message, (e as InferenceException)?.Param);
            else
                await HttpIo.WriteErrorAsync(context, status, message);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its request was cancelled and there is nobody to answer.
        }
    }
}
