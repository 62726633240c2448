using System.Net;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;

namespace GoblinAspire.Gateway.Tests;

/// <summary>Each provider kind's own failure answers (429 with Retry-After, 5xx, reset, stall) move to the next provider.</summary>
[Collection(PlatformServers.Collection)]
public sealed class CrossProtocolFailoverTests(PlatformServers servers)
{
    public static TheoryData<string, Behaviour, bool> Cases
    {
        get
        {
            var data = new TheoryData<string, Behaviour, bool>();
            foreach (var kind in new[] { "ollama", "anthropic", "runpod" })
            {
                foreach (var behaviour in new[] { Behaviour.RateLimited, Behaviour.ServerError, Behaviour.ResetConnection, Behaviour.Stall })
                {
                    data.Add(kind, behaviour, false);
                    data.Add(kind, behaviour, true);
                }
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task A_failing_provider_of_any_kind_hands_over_before_the_first_byte(string kind, Behaviour failure, bool stream)
    {
        await using ProviderStandIn primary = kind switch
        {
            "ollama" => new OllamaStandIn(),
            "anthropic" => new AnthropicStandIn(),
            _ => new RunPodStandIn("ep1"),
        };
        await using var fallback = new OpenAiStandIn();
        await primary.StartAsync();
        await fallback.StartAsync();
        primary.Script(failure);

        // Only a stall needs a short first-token timeout. Every other failure answers at once, and a short timeout
        // there would let a loaded CI machine time the attempt out before the provider has even seen it.
        // A stalled non-streaming answer is cut by the whole-answer timeout instead.
        var (firstToken, whole) = failure == Behaviour.Stall ? ("00:00:03", "00:00:05") : ("00:00:30", "00:01:00");
        await using var gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("primary", kind, primary.Url, "chat", priority: 0, extra: [("EndpointId", "ep1"), ("FirstTokenTimeout", firstToken), ("Timeout", whole), ("Models__0__Capabilities__0", "chat"), ("Models__0__Capabilities__1", "streaming")])
            .Provider("fallback", "openai", fallback.Url, "chat", priority: 1));

        using var response = await gateway.Client.ChatAsync("chat", stream: stream);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("fallback", response.Headers.GetValues("x-goblin-provider").Single());
        Assert.Equal(1, primary.InferenceRequestCount);
    }

    [Fact]
    public async Task A_service_discovery_base_url_resolves_through_aspire_endpoint_variables()
    {
        await using var vllm = new OpenAiStandIn();
        await vllm.StartAsync();
        await using var gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Set("services__vllm__http__0", vllm.Url)
            .Provider("vllm", "openai", "http://vllm", "chat"));

        using var response = await gateway.Client.ChatAsync("chat");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, vllm.InferenceRequestCount);
    }
}
