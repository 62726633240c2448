using System.Reflection;
using GoblinAspire.ServiceDefaults.PostgreSql;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polly;
using Polly.Retry;

namespace Microsoft.Extensions.Hosting;

public static class SchemaMigrationExtensions
{
    /// <summary>
    /// Applies the assembly's embedded <c>Migrations/NNNN_name.sql</c> to the named database before the service
    /// takes traffic. Retries while the database is still starting (a pod can start before PostgreSQL is ready).
    /// </summary>
    public static IHostApplicationBuilder AddSchemaMigrations(this IHostApplicationBuilder builder, string connectionName, Assembly migrationsAssembly)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var migrations = SchemaMigrator.FromAssembly(migrationsAssembly);
        builder.Services.AddHostedService(sp => new SchemaMigrationService(
            new SchemaMigrator(sp.GetRequiredKeyedService<NpgsqlDataSource>(connectionName), sp.GetRequiredService<ILogger<SchemaMigrator>>()),
            migrations));
        return builder;
    }

    private sealed class SchemaMigrationService(SchemaMigrator migrator, IReadOnlyList<SchemaMigration> migrations) : IHostedService
    {
        private static readonly ResiliencePipeline StartupRetry = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<NpgsqlException>(ex => ex.IsTransient || ex.InnerException is System.Net.Sockets.SocketException),
                MaxRetryAttempts = 10,
                BackoffType = DelayBackoffType.Exponential,
                Delay = TimeSpan.FromMilliseconds(200),
                MaxDelay = TimeSpan.FromSeconds(5),
                UseJitter = true,
            })
            .Build();

        public async Task StartAsync(CancellationToken cancellationToken) =>
            await StartupRetry.ExecuteAsync(async ct => await migrator.ApplyAsync(migrations, ct), cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
