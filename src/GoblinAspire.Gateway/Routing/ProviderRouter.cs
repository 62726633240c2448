using GoblinAspire.Gateway.OpenAi;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Routing;

/// <summary>The outcome of routing: the deployments to try in order, or the reason there are none.</summary>
public readonly record struct RoutePlan(IReadOnlyList<Deployment> Candidates, OpenAiError? Error);

/// <summary>
/// Chooses, per request, the order in which to try the deployments that serve the requested model. Candidates are
/// first filtered by capability (operation, streaming, tools, context length), then ordered by the model's strategy,
/// then those the gateway currently avoids (open circuit, Retry-After cool-down, failing probes) are moved last:
/// they are still tried when nothing else is left, and an open circuit rejects at once without a network call.
/// </summary>
public sealed class ProviderRouter(ProviderCatalog catalog, IOptions<GatewayOptions> options)
{
    /// <summary>Request header that overrides the model's configured strategy for one request.</summary>
    public const string StrategyHeader = "x-goblin-routing-strategy";

    private readonly RoutingOptions _routing = options.Value.Routing;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, System.Runtime.CompilerServices.StrongBox<long>> _roundRobin = new(StringComparer.Ordinal);

    public string StrategyFor(string model, string? requested) =>
        requested is { Length: > 0 } && RoutingStrategies.All.Contains(requested)
            ? requested
            : _routing.Models.GetValueOrDefault(model) ?? _routing.DefaultStrategy;

    public RoutePlan Plan(InferenceRequest request, string? requestedStrategy)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (requestedStrategy is { Length: > 0 } && !RoutingStrategies.All.Contains(requestedStrategy))
        {
            return new RoutePlan([], OpenAiError.InvalidParameter(StrategyHeader, $"Unknown routing strategy '{requestedStrategy}'; use one of {string.Join(", ", RoutingStrategies.All)}."));
        }

        if (!catalog.ByModel.TryGetValue(request.Model, out var deployments))
        {
            return new RoutePlan([], OpenAiError.ModelNotFound(request.Model));
        }

        var capable = new List<Deployment>(deployments.Count);
        foreach (var deployment in deployments)
        {
            if (deployment.Capabilities.Contains(request.Operation.Capability())
                && (!request.Stream || deployment.Capabilities.Contains(ModelCapabilities.Streaming))
                && (!request.HasTools || deployment.Capabilities.Contains(ModelCapabilities.Tools)))
            {
                capable.Add(deployment);
            }
        }

        if (capable.Count == 0)
        {
            return new RoutePlan([], OpenAiError.InvalidParameter("model", $"The model `{request.Model}` does not support this request ({Describe(request)})."));
        }

        var fitting = capable.FindAll(d => d.ContextLength >= request.EstimatedPromptTokens);
        if (fitting.Count == 1)
        {
            return new RoutePlan(fitting, null);
        }

        if (fitting.Count == 0)
        {
            return new RoutePlan([], new OpenAiError(
                StatusCodes.Status400BadRequest,
                $"This model's maximum context length is {capable.Max(d => d.ContextLength)} tokens, and the request is about {request.EstimatedPromptTokens} tokens.",
                OpenAiError.InvalidRequest,
                request.Operation == InferenceOperation.Responses ? "input" : "messages",
                "context_length_exceeded"));
        }

        Order(fitting, StrategyFor(request.Model, requestedStrategy), request);
        // Stable: the strategy's order holds within the preferred and the avoided group.
        var ordered = new List<Deployment>(fitting.Count);
        var avoided = new List<Deployment>();
        foreach (var deployment in fitting)
        {
            (deployment.Provider.Health.IsAvoided ? avoided : ordered).Add(deployment);
        }

        ordered.AddRange(avoided);
        return new RoutePlan(ordered, null);
    }

    private void Order(List<Deployment> candidates, string strategy, InferenceRequest request)
    {
        switch (strategy)
        {
            case RoutingStrategies.LowestLatency:
                // Unmeasured providers sort first so that every provider gets measured.
                candidates.Sort((a, b) => ExpectedLatency(a, request.Stream).CompareTo(ExpectedLatency(b, request.Stream)));
                break;
            case RoutingStrategies.LowestCost:
                var completion = request.MaxTokens ?? 256;
                candidates.Sort((a, b) =>
                {
                    var byCost = a.ExpectedCost(request.EstimatedPromptTokens, completion).CompareTo(b.ExpectedCost(request.EstimatedPromptTokens, completion));
                    return byCost != 0 ? byCost : a.Provider.Options.Priority.CompareTo(b.Provider.Options.Priority);
                });
                break;
            case RoutingStrategies.RoundRobin:
                var counter = _roundRobin.GetOrAdd(request.Model, _ => new System.Runtime.CompilerServices.StrongBox<long>());
                var start = (int)((ulong)Interlocked.Increment(ref counter.Value) % (ulong)candidates.Count);
                var rotated = candidates.Skip(start).Concat(candidates.Take(start)).ToList();
                candidates.Clear();
                candidates.AddRange(rotated);
                break;
            case RoutingStrategies.WeightedRandom:
                var remaining = new List<Deployment>(candidates);
                candidates.Clear();
                while (remaining.Count > 0)
                {
                    var total = remaining.Sum(d => Math.Max(0, d.Provider.Options.Weight));
                    var pick = total <= 0 ? 0 : PickWeighted(remaining, Random.Shared.NextDouble() * total);
                    candidates.Add(remaining[pick]);
                    remaining.RemoveAt(pick);
                }

                break;
            default:
                // List.Sort is unstable; a stable order keeps configuration order among equal priorities.
                var byPriority = candidates.OrderBy(d => d.Provider.Options.Priority).ToList();
                candidates.Clear();
                candidates.AddRange(byPriority);
                break;
        }
    }

    private static int PickWeighted(List<Deployment> remaining, double target)
    {
        for (var i = 0; i < remaining.Count; i++)
        {
            target -= Math.Max(0, remaining[i].Provider.Options.Weight);
            if (target < 0)
            {
                return i;
            }
        }

        return remaining.Count - 1;
    }

    private static double ExpectedLatency(Deployment deployment, bool stream)
    {
        var health = deployment.Provider.Health;
        var value = stream && !double.IsNaN(health.FirstTokenMs) ? health.FirstTokenMs : health.LatencyMs;
        return double.IsNaN(value) ? -1 : value;
    }

    private static string Describe(InferenceRequest request)
    {
        var needs = new List<string> { request.Operation.Capability() };
        if (request.Stream)
        {
            needs.Add(ModelCapabilities.Streaming);
        }

        if (request.HasTools)
        {
            needs.Add(ModelCapabilities.Tools);
        }

        return string.Join(", ", needs);
    }
}
