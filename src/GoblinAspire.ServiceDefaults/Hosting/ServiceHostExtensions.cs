using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

public static class ServiceHostExtensions
{
    /// <summary>Binds a configuration section to options that are validated when the host starts.</summary>
    public static OptionsBuilder<TOptions> AddValidatedOptions<TOptions, TValidator>(this IHostApplicationBuilder builder, string sectionName)
        where TOptions : class
        where TValidator : class, IValidateOptions<TOptions>
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton<IValidateOptions<TOptions>, TValidator>();
        return builder.Services.AddOptions<TOptions>()
            .Bind(builder.Configuration.GetSection(sectionName))
            .ValidateOnStart();
    }

    /// <summary>
    /// Runs the service. Invalid configuration stops the start with one line on stderr naming every bad value,
    /// and exit code 2, instead of a stack trace an operator has to read through.
    /// </summary>
    public static async Task<int> RunServiceAsync(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        try
        {
            app.Services.GetService<IStartupValidator>()?.Validate();
        }
        catch (OptionsValidationException ex)
        {
            await Console.Error.WriteLineAsync(FormatConfigurationError(app.Environment.ApplicationName, ex));
            return 2;
        }

        await app.RunAsync();
        return 0;
    }

    public static string FormatConfigurationError(string application, OptionsValidationException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var failures = exception.Failures.Select(f => f.Replace('\n', ' ').Replace('\r', ' '));
        return $"{application}: invalid configuration: {string.Join("; ", failures)}";
    }
}
