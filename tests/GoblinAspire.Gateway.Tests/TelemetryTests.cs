using System.Collections.Concurrent;
using System.Diagnostics;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Gateway.Telemetry;
using GoblinAspire.Testing;
using Microsoft.Extensions.Logging;

namespace GoblinAspire.Gateway.Tests;

[Collection(PlatformServers.Collection)]
public sealed class TelemetryTests(PlatformServers servers)
{
    private const string Prompt = "my-very-private-prompt-text";
    private const string ApiKey = "sk-never-log-this-9f8e7d";

    [Fact]
    public async Task Spans_follow_the_genai_conventions_and_carry_no_prompt_text()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = Listen(spans);
        await using var upstream = new OpenAiStandIn();
        await upstream.StartAsync();
        await using var gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("vllm", "openai", upstream.Url, "telemetry-model", upstreamModel: "served-name"));

        using var response = await gateway.Client.ChatAsync("telemetry-model", Prompt, extra: ""","max_tokens":33,"temperature":0.5""");
        response.EnsureSuccessStatusCode();

        var span = await SpanAsync(spans, "telemetry-model");
        Assert.Equal("chat telemetry-model", span.DisplayName);
        Assert.Equal(ActivityKind.Client, span.Kind);
        Assert.Equal("openai", span.GetTagItem("gen_ai.system"));
        Assert.Equal("chat", span.GetTagItem("gen_ai.operation.name"));
        Assert.Equal("served-name", span.GetTagItem("gen_ai.response.model"));
        Assert.Equal(11L, span.GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal(7L, span.GetTagItem("gen_ai.usage.output_tokens"));
        Assert.Equal(33, span.GetTagItem("gen_ai.request.max_tokens"));
        Assert.DoesNotContain(span.TagObjects, t => t.Value?.ToString()?.Contains(Prompt, StringComparison.Ordinal) == true);
    }

    [Fact]
    public async Task Prompt_text_is_traced_only_when_explicitly_enabled()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = Listen(spans);
        await using var upstream = new OpenAiStandIn();
        await upstream.StartAsync();
        await using var gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Set("Gateway__CaptureMessageContent", "true")
            .Provider("vllm", "openai", upstream.Url, "capture-model"));

        using var response = await gateway.Client.ChatAsync("capture-model", Prompt);
        var span = await SpanAsync(spans, "capture-model");
        Assert.Contains(Prompt, (string?)span.GetTagItem("gen_ai.input.messages"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_use_the_platform_names_and_count_tokens()
    {
        await using var upstream = new OpenAiStandIn();
        await upstream.StartAsync();
        await using var gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Provider("vllm", "openai", upstream.Url, "chat"));
        using (var response = await gateway.Client.ChatAsync("chat", stream: true, extra: ""","stream_options":{"include_usage":true}"""))
        {
            await response.Content.ReadAsStringAsync();
        }

        var metrics = await gateway.Client.GetStringAsync("/metrics");
        Assert.Matches("(?m)^inference_requests_total\\{[^}]*model=\"chat\",provider=\"vllm\",status=\"200\"[^}]*\\} 1", metrics);
        Assert.Matches("(?m)^inference_tokens_total\\{[^}]*direction=\"input\",model=\"chat\",provider=\"vllm\"[^}]*\\} 11", metrics);
        Assert.Matches("(?m)^inference_tokens_total\\{[^}]*direction=\"output\",model=\"chat\",provider=\"vllm\"[^}]*\\} 3", metrics);
        Assert.Contains("inference_latency_seconds_bucket{", metrics, StringComparison.Ordinal);
        Assert.Contains("inference_time_to_first_token_seconds_bucket{", metrics, StringComparison.Ordinal);
        Assert.Contains("# TYPE provider_circuit_state gauge", metrics, StringComparison.Ordinal);
        Assert.Matches("(?m)^usage_records_dropped_total\\{[^}]*\\} 0", metrics);
    }

    [Fact]
    public async Task Neither_keys_nor_prompts_reach_the_logs_even_at_trace_level_and_on_failures()
    {
        var logs = new CapturingLoggerProvider();
        await using var broken = new OpenAiStandIn { DefaultBehaviour = Behaviour.ServerError };
        await using var upstream = new OpenAiStandIn { RequiredApiKey = ApiKey };
        await broken.StartAsync();
        await upstream.StartAsync();
        await using (var gateway = await GatewayTestHost.StartAsync(
            new GatewayConfig(servers)
                .Set("Logging__LogLevel__Default", "Trace")
                .Provider("broken", "openai", broken.Url, "chat", priority: 0, extra: [("ApiKey", ApiKey)])
                .Provider("vllm", "openai", upstream.Url, "chat", priority: 1, extra: [("ApiKey", ApiKey)]),
            builder => builder.Logging.AddProvider(logs)))
        {
            using var response = await gateway.Client.ChatAsync("chat", Prompt);
            response.EnsureSuccessStatusCode();
            using var stream = await gateway.Client.ChatAsync("chat", Prompt, stream: true);
            await stream.Content.ReadAsStringAsync();
        }

        Assert.NotEmpty(logs.Lines);
        Assert.Contains(logs.Lines, l => l.Contains("broken", StringComparison.Ordinal) && l.Contains("server_error", StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Lines, l => l.Contains(ApiKey, StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Lines, l => l.Contains(Prompt, StringComparison.Ordinal));
    }

    /// <summary>The span ends just after the answer is written, so it may lag the client by a moment.</summary>
    private static async Task<Activity> SpanAsync(ConcurrentBag<Activity> spans, string model)
    {
        await Eventually.HoldsAsync(() => Task.FromResult(spans.Any(s => (string?)s.GetTagItem("gen_ai.request.model") == model)), TimeSpan.FromSeconds(5), $"the span for {model}");
        return Assert.Single(spans, s => (string?)s.GetTagItem("gen_ai.request.model") == model);
    }

    private static ActivityListener Listen(ConcurrentBag<Activity> spans)
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == GatewayActivity.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }
}
