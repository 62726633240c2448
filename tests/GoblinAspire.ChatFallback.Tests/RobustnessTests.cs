using System.Net;
using System.Text;
using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.Testing;
using GoblinAspire.Testing.Robustness;
using Xunit.Abstractions;

namespace GoblinAspire.ChatFallback.Tests;

/// <summary>
/// Ten thousand seeded hostile variants of valid requests against a loaded model: no 5xx, every error in OpenAI's
/// shape, and the service healthy and answering afterwards. ROBUSTNESS_SEED replays a failing run.
/// </summary>
public sealed class RobustnessTests(ITestOutputHelper output)
{
    public const int Requests = 10_000;
    private const int BodyLimit = 64 * 1024;
    private static readonly string ModelPath = TestModels.Create(GgmlType.Q8_0);

    [Fact]
    public async Task Ten_thousand_mutated_requests_get_no_5xx_and_the_model_still_answers()
    {
        await using var host = await ChatApiTests.StartAsync(new()
        {
            ["ChatFallback__ModelPath"] = ModelPath,
            ["ChatFallback__ModelAliases__0"] = "goblin-chat",
            ["ChatFallback__MaxRequestBodyBytes"] = BodyLimit.ToString(System.Globalization.CultureInfo.InvariantCulture),
            // Short answers keep ten thousand requests cheap; a mutated max_tokens still reaches the context's end.
            ["ChatFallback__DefaultMaxTokens"] = "2",
            ["ChatFallback__ContextLength"] = "96",
        });
        await ChatApiTests.ModelLoadedAsync(host.Client, TimeSpan.FromSeconds(20));
        RequestTemplate[] templates =
        [
            new(HttpMethod.Post, "/v1/chat/completions", """{"model":"goblin-chat","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],"max_tokens":2,"temperature":0.7,"top_p":0.9,"seed":3,"stop":["\n"],"stream":false}"""),
            new(HttpMethod.Post, "/v1/chat/completions", """{"model":"goblin-chat","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":2,"stream":true,"stream_options":{"include_usage":true}}"""),
            new(HttpMethod.Post, "/v1/completions", """{"model":"goblin-chat","prompt":"Once upon","max_tokens":2,"temperature":0}"""),
            new(HttpMethod.Get, "/v1/models"),
        ];

        var report = await RobustnessRun.RunAsync(host.Client, new RequestMutator(RobustnessRun.Seed(), templates, BodyLimit), Requests, OpenAiErrorShape.Check);
        output.WriteLine(report.ToString());
        RobustnessRun.AssertClean(report, Requests);

        using var health = await host.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        using var chat = await host.Client.PostAsync("/v1/chat/completions", new StringContent("""{"model":"goblin-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":2}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
    }
}
