using GoblinAspire.ChatFallback.Inference;

namespace GoblinAspire.ChatFallback.Serving;

/// <summary>What the service answers from right now.</summary>
public enum ServingMode
{
    /// <summary>Nothing loaded yet, or loading failed with no upstream to forward to.</summary>
    None,
    Local,
    Upstream,
}

/// <summary>
/// The model being served. A new model is swapped in with one reference write once fully loaded; generations that
/// started on the old one finish on it (they hold their own reference), so a swap drops no request.
/// </summary>
public sealed class ModelSlot
{
    private volatile State _state = new(null, null, null, "starting");

    public LlamaModel? Model => _state.Model;

    /// <summary>Where the model came from: a path, or <c>registry:{name}/{version}</c>.</summary>
    public string? Source => _state.Source;

    public string? Version => _state.Version;

    public string Status => _state.Status;

    public ServingMode Mode(bool hasUpstream) => _state.Model is not null ? ServingMode.Local : hasUpstream ? ServingMode.Upstream : ServingMode.None;

    public void Swap(LlamaModel model, string source, string? version) => _state = new State(model, source, version, "loaded");

    /// <summary>Records a failed load; a model already serving keeps serving.</summary>
    public void Fail(string status) => _state = _state with { Status = status };

    private sealed record State(LlamaModel? Model, string? Source, string? Version, string Status);
}
