using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ChatFallback.Serving;

/// <summary>Says which model is loaded; degraded (still 200, still answering what it can) without one.</summary>
public sealed class ModelHealthCheck(ModelSlot slot, IOptions<ChatFallbackOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var upstream = options.Value.Upstream.BaseUrl;
        var result = slot.Mode(upstream is not null) switch
        {
            ServingMode.Local => HealthCheckResult.Healthy($"model {slot.Model!.Name} from {slot.Source}", new Dictionary<string, object>
            {
                ["model"] = slot.Model.Name,
                ["source"] = slot.Source ?? "",
                ["parameters_bytes"] = slot.Model.WeightBytes,
            }),
            ServingMode.Upstream => HealthCheckResult.Degraded($"no local model ({slot.Status}); forwarding to {upstream!.Host}"),
            _ => HealthCheckResult.Degraded($"no model: {slot.Status}"),
        };
        return Task.FromResult(result);
    }
}
