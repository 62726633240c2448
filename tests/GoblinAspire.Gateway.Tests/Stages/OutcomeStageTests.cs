using GoblinAspire.Gateway.Protocols;
using GoblinAspire.Gateway.RateLimiting;
using GoblinAspire.Gateway.Stages;

namespace GoblinAspire.Gateway.Tests.Stages;

public sealed class OutcomeStageTests : IDisposable
{
    private readonly StageRig _rig;

    public OutcomeStageTests()
    {
        var configuration = StageRig.Providers("a");
        configuration["Gateway:Providers:0:InputPricePer1K"] = "1";
        configuration["Gateway:Providers:0:OutputPricePer1K"] = "2";
        configuration["Gateway:Routing:MaxCooldown"] = "00:01:00";
        _rig = new StageRig(configuration);
    }

    private OutcomeStage Stage => _rig.Get<OutcomeStage>();

    [Fact]
    public void A_finished_request_is_recorded_for_spend_and_its_lease_released_with_real_usage()
    {
        var answer = Answer();
        answer.InputTokens = 1000;
        answer.OutputTokens = 500;
        var key = TestKeys.Key(rpm: 5);
        var lease = new RateLease(new RateLimits("k", 5, null, null), 0, 2000, Local: false);

        Stage.Finish(RequestOutcome.Of(answer, 200, complete: true), key, "m", lease, TimeSpan.FromMilliseconds(12));

        var record = Assert.Single(_rig.Usage.Records);
        Assert.Equal((key.Id, "team-a", "m", "a", 1000L, 500L, 2m, 200), (record.KeyId!.Value, record.Team, record.Model, record.Provider, record.InputTokens, record.OutputTokens, record.CostUsd, record.Status));
        var released = Assert.Single(_rig.Gate.Released);
        Assert.Equal((1500L, 2m), (released.Tokens!.Value, released.Cost));
    }

    [Fact]
    public void A_request_refused_before_routing_records_nothing_but_still_frees_its_slot()
    {
        var lease = new RateLease(new RateLimits("k", null, null, 1), 0, 10, Local: false);
        Stage.Finish(null, TestKeys.Key(), "m", lease, TimeSpan.Zero);
        Assert.Empty(_rig.Usage.Records);
        var released = Assert.Single(_rig.Gate.Released);
        Assert.Null(released.Tokens);
    }

    [Fact]
    public void A_cache_hit_is_recorded_as_free_and_served_by_the_cache()
    {
        Stage.Finish(RequestOutcome.FromCache, null, "m", null, TimeSpan.FromMilliseconds(1));
        var record = Assert.Single(_rig.Usage.Records);
        Assert.True(record.CacheHit);
        Assert.Equal(("cache", 0m), (record.Provider, record.CostUsd));
    }

    [Fact]
    public void A_retry_after_cools_the_provider_down_no_longer_than_the_configured_maximum()
    {
        var health = _rig.Provider("a").Health;
        Stage.Failed(Answer(), new UpstreamFailure(FailureReasons.RateLimited, "HTTP 429", 429, TimeSpan.FromHours(3)), TimeSpan.Zero);
        Assert.True(health.IsCoolingDown);
        Assert.InRange(health.CooldownRemaining, TimeSpan.FromSeconds(50), TimeSpan.FromMinutes(1));
        Assert.Contains("rate_limited", health.LastError, StringComparison.Ordinal);
    }

    [Fact]
    public void An_open_circuit_is_not_recorded_as_another_provider_error()
    {
        var health = _rig.Provider("a").Health;
        Stage.Failed(Answer(), new UpstreamFailure(FailureReasons.CircuitOpen, "circuit open"), TimeSpan.Zero);
        Assert.Null(health.LastError);
        Assert.False(health.IsCoolingDown);
    }

    [Fact]
    public void A_success_feeds_the_providers_latency_estimate()
    {
        var health = _rig.Provider("a").Health;
        Stage.Succeeded(Answer(), TimeSpan.FromMilliseconds(80));
        Assert.True(health.LatencyMs > 0);
    }

    [Fact]
    public void Cost_is_the_tokens_at_the_providers_prices()
    {
        var answer = Answer();
        answer.InputTokens = 2000;
        answer.OutputTokens = 1000;
        Assert.Equal(4m, answer.CostUsd);
    }

    private ClientAnswer Answer()
    {
        var deployment = _rig.Get<GoblinAspire.Gateway.Routing.ProviderCatalog>().ByModel["m"][0];
        return new ClientAnswer(StageRig.Client().Response, deployment, StageRig.Chat(), TimeProvider.System, TimeProvider.System.GetTimestamp(), 1);
    }

    public void Dispose() => _rig.Dispose();
}
