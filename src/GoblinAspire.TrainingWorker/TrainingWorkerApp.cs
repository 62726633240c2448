using GoblinAspire.ServiceDefaults;
using GoblinAspire.ServiceDefaults.Access;
using GoblinAspire.TrainingWorker.Api;
using GoblinAspire.TrainingWorker.Execution;
using GoblinAspire.TrainingWorker.Queue;
using GoblinAspire.TrainingWorker.Registry;
using Microsoft.Extensions.Configuration.Memory;

namespace GoblinAspire.TrainingWorker;

public static class TrainingWorkerApp
{
    /// <param name="configure">Lets tests and the local host add configuration before the app is built.</param>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        // Below every other source, so appsettings, the environment and tests can still turn them up: at Information
        // Npgsql logs each command it runs, ASP.NET Core each request and HttpClient each call (a provider poll among
        // them) — lines per poll, heartbeat and request that drown the worker's own.
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource
        {
            InitialData = new Dictionary<string, string?>
            {
                ["Logging:LogLevel:Npgsql"] = nameof(LogLevel.Warning),
                ["Logging:LogLevel:Microsoft.AspNetCore"] = nameof(LogLevel.Warning),
                ["Logging:LogLevel:System.Net.Http.HttpClient"] = nameof(LogLevel.Warning),
            },
        });
        configure?.Invoke(builder);

        builder.AddServiceDefaults();
        builder.AddGoblinNpgsql(PlatformResources.TrainingDatabase);
        builder.AddSchemaMigrations(PlatformResources.TrainingDatabase, typeof(TrainingWorkerApp).Assembly);
        builder.AddValidatedOptions<TrainingWorkerOptions, TrainingWorkerOptionsValidator>(TrainingWorkerOptions.SectionName);
        builder.Services.AddProblemDetails();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<TrainingMetrics>();
        builder.Services.AddSingleton<JobQueue>();
        builder.AddServiceAccess(TrainingWorkerOptions.SectionName);
        builder.Services.AddHttpClient(RegistryClient.HttpClientName, (services, client) =>
        {
            if (services.GetRequiredService<Microsoft.Extensions.Options.IOptions<TrainingWorkerOptions>>().Value.RegistryToken is { Length: > 0 } token)
            {
                client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            }
        });
        builder.Services.AddSingleton<RegistryClient>();
        builder.Services.AddSingleton<JobSandbox>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<JobSandbox>());
        builder.Services.AddSingleton<IJobExecutor, LocalExecutor>();
        // Creating a machine is not idempotent: a retried create could rent two. The executors decide what to retry,
        // so the service defaults' resilience handler comes off these two clients (the one API for it is marked
        // experimental; it has shipped unchanged since 9.0).
#pragma warning disable EXTEXP0001
        builder.Services.AddHttpClient(VastAiExecutor.HttpClientName).RemoveAllResilienceHandlers();
        builder.Services.AddHttpClient(RunPodExecutor.HttpClientName).RemoveAllResilienceHandlers();
#pragma warning restore EXTEXP0001
        builder.Services.AddSingleton<IJobExecutor, VastAiExecutor>();
        builder.Services.AddSingleton<IJobExecutor, RunPodExecutor>();
        builder.Services.AddSingleton<JobRunner>();
        builder.Services.AddSingleton<JobDispatcher>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<JobDispatcher>());
        builder.Services.AddSingleton<JobRescuer>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<JobRescuer>());
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter(TrainingMetrics.MeterName));

        var app = builder.Build();
        // Unhandled errors answer as problem details; a database that is down or full is a 503 worth retrying.
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = ex => ex is Npgsql.NpgsqlException or TimeoutException ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status500InternalServerError,
        });
        // Answers the errors no endpoint wrote a body for (an unknown route or method, a query that does not bind) as
        // problem details too.
        app.UseStatusCodePages();
        app.UseServiceAccess((http, message) =>
        {
            http.Response.StatusCode = StatusCodes.Status401Unauthorized;
            return http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
            {
                HttpContext = http,
                ProblemDetails = { Status = StatusCodes.Status401Unauthorized, Title = "Unauthorized", Detail = message },
            }).AsTask();
        });
        app.MapDefaultEndpoints();
        app.MapJobs();
        return app;
    }
}
