using Turbine.Server.Models;
using Turbine.Server.Repository;

namespace Turbine.Server.Hosting;

/// <summary>
/// Poll mode (--model-control-mode poll): rescans the repository every interval. Models whose directory is gone
/// become unavailable, ones that come back are ready again, new or changed tokenizer, ensemble and BLS models are
/// (re)created; a changed tensorrt_llm model keeps serving its loaded engine until restart.
/// </summary>
public sealed class RepositoryPoller : IAsyncDisposable
{
    private readonly ModelRepository _repository;
    private readonly ModelRegistry _registry;
    private readonly Action<string> _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    /// <summary>Starts polling <paramref name="repository"/> for <paramref name="registry"/> every <paramref name="interval"/>.</summary>
    public RepositoryPoller(ModelRepository repository, ModelRegistry registry, TimeSpan interval, Action<string> log)
    {
        _repository = repository;
        _registry = registry;
        _log = log;
        _loop = Run(interval);
    }

    private async Task Run(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
                Poll();
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
    }

    /// <summary>One rescan, applied to the registry.</summary>
    public void Poll()
    {
        RepositoryChanges changes;
        try
        {
            changes = _repository.Rescan();
        }
        catch (Exception e) when (e is IOException or ModelRepositoryException or UnauthorizedAccessException)
        {
            _log($"repository poll failed: {e.Message}");
            return;
        }
        foreach (var name in changes.Unloaded)
            if (_registry.TryFind(name) is { } gone)
            {
                gone.State = ModelState.Unavailable;
                _log($"unloaded '{name}'");
            }
        foreach (var name in changes.Loaded.Concat(changes.Reloaded))
        {
            if (!_repository.TryGetModel(name, out var model))
                continue;
            try
            {
                if (model.Kind == ModelKind.Llm && _registry.TryFind(name) is { } existing)
                {
                    existing.State = ModelState.Ready;
                    _log($"'{name}' is ready (a changed engine config takes effect on restart)");
                    continue;
                }
                _registry.Add(RepositoryModels.Create(model, _registry));
                _log($"loaded '{name}'");
            }
            catch (ModelRepositoryException e)
            {
                _log($"failed to load '{name}': {e.Message}");
            }
        }
        foreach (var (name, reason) in changes.Failed)
            _log($"failed to load '{name}': {reason}");
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
