using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ServiceDefaults.Access;

/// <summary>
/// A service's bearer token (<c>{Section}:Access</c>): the way MLflow clients send <c>MLFLOW_TRACKING_TOKEN</c> and
/// Google's clients send their access token, <c>Authorization: Bearer …</c>.
/// </summary>
public sealed class ServiceAccessOptions
{
    /// <summary>Every API but health, liveness and metrics needs the token. False is an explicit, logged opt-out.</summary>
    public bool RequireToken { get; set; } = true;

    /// <summary>A secret: given by the AppHost's parameter, never in appsettings.</summary>
    public string? Token { get; set; }
}

/// <summary>The caller's access: the service token (everything) or a narrower grant an alternative check made.</summary>
public sealed record ServiceGrant(string Scope)
{
    public static readonly ServiceGrant Full = new("*");

    public bool IsFull => ReferenceEquals(this, Full) || Scope == "*";
}

public static partial class ServiceAccessExtensions
{
    private static readonly string[] OpenPaths = ["/health", "/alive", "/metrics"];

    /// <summary>Binds and validates <c>{section}:Access</c> at start, and warns at start when an operator opted out.</summary>
    public static IHostApplicationBuilder AddServiceAccess(this IHostApplicationBuilder builder, string section)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var name = $"{section}:Access";
        builder.Services.AddSingleton<IValidateOptions<ServiceAccessOptions>>(new NamedValidator(name));
        builder.Services.AddOptions<ServiceAccessOptions>().Bind(builder.Configuration.GetSection(name)).ValidateOnStart();
        builder.Services.AddHostedService(sp => new OptOutWarning(name, sp.GetRequiredService<IOptions<ServiceAccessOptions>>(), sp.GetRequiredService<ILogger<ServiceAccessOptions>>()));
        return builder;
    }

    /// <summary>
    /// Refuses every request but health, liveness and metrics without the service token. <paramref name="narrower"/>
    /// may accept another credential with a narrower grant (a job's run token); <paramref name="carriesItsOwn"/> names
    /// requests that carry their own credential (a resumable upload's session URI); <paramref name="refuse"/> writes
    /// the 401 in the API's own error shape.
    /// </summary>
    public static IApplicationBuilder UseServiceAccess(this IApplicationBuilder app, Func<HttpContext, string, Task> refuse, Func<HttpContext, string, ServiceGrant?>? narrower = null, Func<HttpContext, bool>? carriesItsOwn = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(refuse);
        // Read on the first request, not while the pipeline is built: invalid options must fail the start, where the
        // host turns them into one line and exit code 2, not the build.
        var access = app.ApplicationServices.GetRequiredService<IOptions<ServiceAccessOptions>>();
        byte[]? expected = null;
        return app.Use(async (http, next) =>
        {
            var options = access.Value;
            expected ??= options.Token is { Length: > 0 } token ? SHA256.HashData(Encoding.UTF8.GetBytes(token)) : null;
            if (!options.RequireToken || OpenPaths.Any(p => http.Request.Path.StartsWithSegments(p)) || carriesItsOwn?.Invoke(http) == true)
            {
                http.Features.Set(ServiceGrant.Full);
                await next(http);
                return;
            }

            var header = http.Request.Headers.Authorization.ToString();
            var presented = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : "";
            // Digests compared in constant time: neither the token's length nor its content leaks through timing.
            var grant = presented.Length > 0 && expected is not null && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), expected)
                ? ServiceGrant.Full
                : presented.Length > 0 ? narrower?.Invoke(http, presented) : null;
            if (grant is null)
            {
                http.Response.Headers.WWWAuthenticate = "Bearer";
                await refuse(http, presented.Length == 0 ? "This API needs a bearer token (Authorization: Bearer …)." : "The bearer token is not valid for this service.");
                return;
            }

            http.Features.Set(grant);
            await next(http);
        });
    }

    /// <summary>The grant the access check gave this request (full when access is not required).</summary>
    public static ServiceGrant Grant(this HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        return http.Features.Get<ServiceGrant>() ?? ServiceGrant.Full;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Section}:RequireToken is false: this service's API answers without authentication. Use it only on a network nothing else can reach.")]
    private static partial void OptedOut(ILogger logger, string section);

    private sealed class NamedValidator(string name) : IValidateOptions<ServiceAccessOptions>
    {
        public ValidateOptionsResult Validate(string? optionsName, ServiceAccessOptions options) =>
            options.RequireToken && options.Token is not { Length: >= 16 }
                ? ValidateOptionsResult.Fail($"{name}:Token must be set (at least 16 characters) while {name}:RequireToken is true; set RequireToken=false only to run without authentication on purpose.")
                : ValidateOptionsResult.Success;
    }

    private sealed class OptOutWarning(string section, IOptions<ServiceAccessOptions> options, ILogger logger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            if (!options.Value.RequireToken)
            {
                OptedOut(logger, section);
            }

            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
