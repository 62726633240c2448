using GoblinAspire.Gateway.Telemetry;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Keys;

/// <summary>Says once, at start, that an operator turned key checks off: anonymous access is never silent.</summary>
internal sealed class AnonymousAccessWarning(IOptions<AccessOptions> options, ILogger<AnonymousAccessWarning> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!options.Value.RequireKeys)
        {
            GatewayLog.AnonymousAccess(logger);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
