using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace GoblinAspire.ServiceDefaults;

/// <summary>Resolves a singleton while the host starts, so connections open before the first request.</summary>
internal sealed class ServiceActivation<T>(IServiceProvider services) : IHostedService
    where T : notnull
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = services.GetRequiredService<T>();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
