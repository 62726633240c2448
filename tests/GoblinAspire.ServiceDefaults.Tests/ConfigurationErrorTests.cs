using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ServiceDefaults.Tests;

public sealed class ConfigurationErrorTests
{
    [Fact]
    public void Every_failure_is_named_on_one_line()
    {
        var exception = new OptionsValidationException("Gateway", typeof(object), ["MaxRequestBodyBytes must be\nat least 1024.", "Providers:0:Kind is unknown."]);
        var line = ServiceHostExtensions.FormatConfigurationError("GoblinAspire.Gateway", exception);
        Assert.DoesNotContain('\n', line);
        Assert.StartsWith("GoblinAspire.Gateway: invalid configuration: ", line, StringComparison.Ordinal);
        Assert.Contains("MaxRequestBodyBytes", line, StringComparison.Ordinal);
        Assert.Contains("Providers:0:Kind", line, StringComparison.Ordinal);
    }
}
