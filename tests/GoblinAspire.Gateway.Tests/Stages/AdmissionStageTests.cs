using GoblinAspire.Gateway.RateLimiting;
using GoblinAspire.Gateway.Stages;

namespace GoblinAspire.Gateway.Tests.Stages;

public sealed class AdmissionStageTests : IDisposable
{
    private readonly StageRig _rig = new(StageRig.Providers("a"));

    private AdmissionStage Stage => _rig.Get<AdmissionStage>();

    [Fact]
    public async Task An_anonymous_request_where_keys_are_optional_is_admitted_without_limits()
    {
        var admission = await Stage.AdmitAsync(null, StageRig.Chat(), CancellationToken.None);
        Assert.Same(Admission.Unlimited, admission);
        Assert.Empty(_rig.Gate.Admitted);
    }

    [Fact]
    public async Task A_missing_key_is_refused_with_openai_401_when_keys_are_required()
    {
        var (key, error) = await Stage.IdentifyAsync("", CancellationToken.None);
        Assert.Null(key);
        Assert.Equal(401, error!.StatusCode);
        Assert.Contains("didn't provide an API key", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_known_key_is_identified_and_a_revoked_one_refused_with_its_secret_masked()
    {
        const string Good = "sk-goblin-0123456789abcdef0123456789abcdef";
        const string Revoked = "sk-goblin-fedcba9876543210fedcba9876543210";
        _rig.Keys.BySecret[Good] = TestKeys.Key();
        _rig.Keys.BySecret[Revoked] = TestKeys.Key(revokedAt: DateTimeOffset.UnixEpoch);

        var (key, error) = await Stage.IdentifyAsync("Bearer " + Good, CancellationToken.None);
        Assert.Null(error);
        Assert.Equal("team-a", key!.Team);

        (key, error) = await Stage.IdentifyAsync("Bearer " + Revoked, CancellationToken.None);
        Assert.Null(key);
        Assert.Equal("invalid_api_key", error!.Code);
        Assert.DoesNotContain(Revoked, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_without_limits_never_asks_the_shared_gate()
    {
        var admission = await Stage.AdmitAsync(TestKeys.Key(), StageRig.Chat(), CancellationToken.None);
        Assert.Null(admission.Refusal);
        Assert.Null(admission.Lease);
        Assert.Empty(_rig.Gate.Admitted);
    }

    [Fact]
    public async Task A_model_outside_the_keys_list_is_forbidden_before_any_limit_is_spent()
    {
        var admission = await Stage.AdmitAsync(TestKeys.Key(rpm: 10, models: ["other"]), StageRig.Chat(), CancellationToken.None);
        Assert.Equal(403, admission.Refusal!.StatusCode);
        Assert.Equal("model_not_allowed", admission.Refusal.Code);
        Assert.Empty(_rig.Gate.Admitted);
    }

    [Fact]
    public async Task An_admitted_request_reserves_its_prompt_estimate_plus_max_tokens_and_holds_a_lease()
    {
        var request = StageRig.Chat(maxTokens: 100);
        var admission = await Stage.AdmitAsync(TestKeys.Key(rpm: 10, tpm: 1000), request, CancellationToken.None);
        Assert.Null(admission.Refusal);
        Assert.NotNull(admission.Lease);
        Assert.True(_rig.Gate.Admitted.TryDequeue(out var admitted));
        Assert.Equal(request.EstimatedPromptTokens + 100, admitted.Reserved);
        Assert.Equal(Stage.Reservation(request), admitted.Reserved);
        Assert.NotNull(admission.Decision);
    }

    [Fact]
    public async Task A_token_limit_refusal_is_openai_429_with_retry_after_the_window()
    {
        _rig.Gate.Decide = _ => new RateDecision(RateLimitKind.Tokens, 1, 999, 0, TimeSpan.FromSeconds(42));
        var admission = await Stage.AdmitAsync(TestKeys.Key(tpm: 1000), StageRig.Chat(), CancellationToken.None);
        Assert.Equal(429, admission.Refusal!.StatusCode);
        Assert.Equal("tokens", admission.Refusal.Type);
        Assert.Equal("rate_limit_exceeded", admission.Refusal.Code);
        Assert.Equal(TimeSpan.FromSeconds(42), admission.Refusal.RetryAfter);
        Assert.Null(admission.Lease);
        Assert.NotNull(admission.Limits);
    }

    [Fact]
    public async Task A_spent_budget_is_insufficient_quota_until_the_period_ends()
    {
        _rig.Gate.Decide = _ => new RateDecision(RateLimitKind.Budget, 0, 0, 0, TimeSpan.Zero, Spent: 5m);
        var admission = await Stage.AdmitAsync(TestKeys.Key(budget: 5m), StageRig.Chat(), CancellationToken.None);
        Assert.Equal(429, admission.Refusal!.StatusCode);
        Assert.Equal("insufficient_quota", admission.Refusal.Code);
        Assert.InRange(admission.Refusal.RetryAfter!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1));
    }

    [Fact]
    public async Task Limits_that_cannot_be_checked_are_a_503_to_retry_never_a_500()
    {
        _rig.Gate.Unavailable = true;
        var admission = await Stage.AdmitAsync(TestKeys.Key(rpm: 1), StageRig.Chat(), CancellationToken.None);
        Assert.Equal(503, admission.Refusal!.StatusCode);
        Assert.Equal("rate_limiter_unavailable", admission.Refusal.Code);
        Assert.NotNull(admission.Refusal.RetryAfter);
    }

    public void Dispose() => _rig.Dispose();
}
