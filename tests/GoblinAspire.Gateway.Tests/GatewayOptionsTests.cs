using Microsoft.Extensions.Configuration;

namespace GoblinAspire.Gateway.Tests;

public sealed class GatewayOptionsTests
{
    [Fact]
    public void Every_problem_in_the_provider_list_is_reported_at_once()
    {
        var options = Bind(new Dictionary<string, string?>
        {
            ["Gateway:Routing:DefaultStrategy"] = "fastest",
            ["Gateway:Providers:0:Name"] = "a",
            ["Gateway:Providers:0:Kind"] = "bedrock",
            ["Gateway:Providers:0:BaseUrl"] = "not a url",
            ["Gateway:Providers:0:Models:0:Name"] = "m",
            ["Gateway:Providers:1:Name"] = "a",
            ["Gateway:Providers:1:Kind"] = "runpod",
            ["Gateway:Providers:1:Models:0:Name"] = "m",
            ["Gateway:Providers:1:Models:0:Capabilities:0"] = "telepathy",
            ["Gateway:Providers:2:Name"] = "claude",
            ["Gateway:Providers:2:Kind"] = "anthropic",
            ["Gateway:Providers:2:Models:0:Name"] = "c",
            ["Gateway:Providers:2:Models:0:Capabilities:0"] = "embeddings",
            ["Gateway:Providers:2:CircuitBreaker:FailureRatio"] = "0",
        });

        var result = new GatewayOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        var text = string.Join("\n", result.Failures!);
        foreach (var expected in new[] { "fastest", "bedrock", "not a url", "used twice", "EndpointId", "telepathy", "chat only", "CircuitBreaker" })
        {
            Assert.Contains(expected, text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void No_provider_at_all_is_a_configuration_error_not_a_crash()
    {
        var result = new GatewayOptionsValidator().Validate(null, Bind(new Dictionary<string, string?>()));
        Assert.True(result.Failed);
        Assert.Contains("no provider is configured", string.Join("\n", result.Failures!), StringComparison.Ordinal);
    }

    /// <summary>Providers under a name (as the AppHost adds vLLM and OpenAI) bind beside the indexed ones.</summary>
    [Fact]
    public void Providers_given_under_names_bind_beside_indexed_ones()
    {
        var options = Bind(new Dictionary<string, string?>
        {
            ["Gateway:Providers:0:Name"] = "chatfallback",
            ["Gateway:Providers:0:BaseUrl"] = "http://chatfallback",
            ["Gateway:Providers:0:Models:0:Name"] = "goblin-chat",
            ["Gateway:Providers:vllm:Name"] = "vllm",
            ["Gateway:Providers:vllm:BaseUrl"] = "http://vllm",
            ["Gateway:Providers:vllm:Models:0:Name"] = "goblin-chat",
        });
        Assert.Equal(["chatfallback", "vllm"], options.Providers.Select(p => p.Name).Order());
        Assert.False(new GatewayOptionsValidator().Validate(null, options).Failed);
    }

    [Fact]
    public void A_minimal_provider_is_valid_and_gets_the_default_capabilities()
    {
        var options = Bind(new Dictionary<string, string?>
        {
            ["Gateway:Providers:0:Name"] = "vllm",
            ["Gateway:Providers:0:BaseUrl"] = "http://vllm",
            ["Gateway:Providers:0:Models:0:Name"] = "llama",
        });

        Assert.True(new GatewayOptionsValidator().Validate(null, options).Succeeded);
        Assert.Equal(ModelCapabilities.Default, options.Providers[0].Models[0].EffectiveCapabilities);
    }

    private static GatewayOptions Bind(Dictionary<string, string?> values)
    {
        var options = new GatewayOptions();
        new ConfigurationBuilder().AddInMemoryCollection(values).Build().GetSection("Gateway").Bind(options);
        return options;
    }
}
