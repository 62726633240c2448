using GoblinAspire.ModelRegistry.Api;
using GoblinAspire.ModelRegistry.Api.Gcs;
using GoblinAspire.ModelRegistry.Objects;
using GoblinAspire.ModelRegistry.Objects.Gcs;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using GoblinAspire.ModelRegistry.Artifacts;
using GoblinAspire.ModelRegistry.Operations;
using GoblinAspire.ModelRegistry.Mlflow;
using GoblinAspire.ModelRegistry.Storage;
using GoblinAspire.ModelRegistry.Access;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.ServiceDefaults.Access;

namespace GoblinAspire.ModelRegistry;

public static class ModelRegistryApp
{
    /// <param name="configure">Lets tests and the local host add configuration before the app is built.</param>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        configure?.Invoke(builder);

        builder.AddServiceDefaults();
        builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>, GoblinAspire.ModelRegistry.Hosting.LargeBlockMemoryPoolFactory>();
        builder.AddGoblinNpgsql(PlatformResources.RegistryDatabase);
        builder.AddSchemaMigrations(PlatformResources.RegistryDatabase, typeof(ModelRegistryApp).Assembly);
        builder.AddValidatedOptions<ModelRegistryOptions, ModelRegistryOptionsValidator>(ModelRegistryOptions.SectionName);
        builder.AddServiceAccess(ModelRegistryOptions.SectionName);
        builder.Services.AddSingleton<GoblinAspire.ModelRegistry.Access.RunTokens>();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<TrackingStore>();
        builder.Services.AddSingleton<RegistryStore>();
        builder.AddValidatedOptions<StorageOptions, StorageOptionsValidator>(StorageOptions.SectionName);
        builder.Services.AddSingleton<IValidateOptions<StorageOptions>, StorageKeysValidator>();
        builder.Services.PostConfigure<StorageOptions>(storage => storage.AddKeysGivenByValue());
        if (builder.Configuration[$"{StorageOptions.SectionName}:Backend"] == "gcs")
        {
            builder.AddValidatedOptions<GcsBackendOptions, GcsBackendOptionsValidator>(GcsBackendOptions.SectionName);
            builder.Services.AddSingleton<IValidateOptions<GcsBackendOptions>, GcsBackendOptionsChecks>();
            builder.Services.AddSingleton<GoogleAccessTokens>();
            builder.Services.AddSingleton<IObjectStore, GcsObjectStore>();
            // Metadata calls: the standard handler retries reads only (never POST, PATCH, PUT or DELETE). Media streams
            // are never retried by a handler: an upload resumes from the offset GCS confirms instead.
#pragma warning disable EXTEXP0001 // Experimental, but the supported way to opt one client out of ConfigureHttpClientDefaults.
            builder.Services.AddHttpClient(GcsObjectStore.JsonClient)
                .RemoveAllResilienceHandlers()
                .AddStandardResilienceHandler(resilience =>
                {
                    resilience.Retry.DisableForUnsafeHttpMethods();
                    resilience.AttemptTimeout.Timeout = TimeSpan.FromSeconds(60);
                    resilience.TotalRequestTimeout.Timeout = TimeSpan.FromMinutes(3);
                    resilience.CircuitBreaker.SamplingDuration = TimeSpan.FromMinutes(2);
                });
            builder.Services.AddHttpClient(GcsObjectStore.MediaClient, client => client.Timeout = Timeout.InfiniteTimeSpan).RemoveAllResilienceHandlers();
#pragma warning restore EXTEXP0001
        }
        else
        {
            builder.Services.AddSingleton<IObjectStore, LocalObjectStore>();
        }

        builder.Services.AddSingleton<UploadSessions>();
        builder.Services.AddHostedService<UploadSessionSweeper>();
        builder.Services.AddSingleton<UrlSigner>();
        builder.Services.AddSingleton<BucketArtifactStore>();
        builder.Services.AddSingleton<IArtifactStore>(sp => sp.GetRequiredService<BucketArtifactStore>());
        builder.Services.AddSingleton<ArtifactUrls>();
        builder.Services.AddSingleton<ModelOperations>();

        var app = builder.Build();
        // Unknown MLflow routes and wrong methods answer in MLflow's error shape, not an empty 404/405.
        app.UseStatusCodePages(async context =>
        {
            var path = context.HttpContext.Request.Path;
            if (MlflowEndpoint.Prefixes.Concat(["/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts", ModelOperationEndpoints.Prefix]).Any(p => path.StartsWithSegments(p)))
            {
                var status = context.HttpContext.Response.StatusCode;
                var error = status == StatusCodes.Status405MethodNotAllowed
                    ? new MlflowException(ErrorCodes.BadRequest, $"Method {context.HttpContext.Request.Method} is not allowed for {path}.")
                    : new MlflowException(ErrorCodes.EndpointNotFound, $"No MLflow endpoint at {path}.");
                await error.WriteAsync(context.HttpContext.Response);
                context.HttpContext.Response.StatusCode = status;
            }
            else
            {
                await GcsRequest.WriteStatusErrorAsync(context.HttpContext);
            }
        });
        app.UseSignedUrls();
        app.UseRegistryAccess();
        app.MapDefaultEndpoints();
        app.MapExperiments();
        app.MapRuns();
        app.MapRegisteredModels();
        app.MapModelVersions();
        app.MapArtifacts();
        app.MapModelOperations();
        app.MapBuckets();
        app.MapObjects();
        app.MapUploads();
        app.MapSignedUrls();
        app.MapRunTokens();
        return app;
    }
}
