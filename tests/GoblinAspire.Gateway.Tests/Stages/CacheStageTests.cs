using GoblinAspire.Gateway.Caching;
using GoblinAspire.Gateway.Stages;

namespace GoblinAspire.Gateway.Tests.Stages;

public sealed class CacheStageTests : IDisposable
{
    private readonly StageRig _rig = new(StageRig.Providers("a"));

    private CacheStage Stage => _rig.Get<CacheStage>();

    [Fact]
    public async Task A_request_that_is_not_deterministic_is_neither_looked_up_nor_kept()
    {
        var lookup = await Stage.LookupAsync(StageRig.Chat(temperature: 0.7), storedResponse: false, null, "team-a", CancellationToken.None);
        Assert.Null(lookup.Key);
        Assert.Equal(0, _rig.Cache.Reads);
    }

    [Fact]
    public async Task A_stored_response_is_never_replayed_even_when_deterministic()
    {
        var lookup = await Stage.LookupAsync(StageRig.Chat(temperature: 0), storedResponse: true, "force", "team-a", CancellationToken.None);
        Assert.Null(lookup.Key);
        Assert.Equal(0, _rig.Cache.Reads);
    }

    [Fact]
    public async Task A_miss_gives_the_key_to_fill_and_a_kept_answer_is_then_a_hit()
    {
        var request = StageRig.Chat(temperature: 0);
        var miss = await Stage.LookupAsync(request, false, null, "team-a", CancellationToken.None);
        Assert.NotNull(miss.Key);
        Assert.Null(miss.Hit);

        await Stage.KeepAsync(miss.Key!, "application/json", "{\"ok\":true}"u8.ToArray());
        var hit = await Stage.LookupAsync(request, false, null, "team-a", CancellationToken.None);
        Assert.Equal("application/json", hit.Hit!.ContentType);
        Assert.Equal("{\"ok\":true}"u8.ToArray(), hit.Hit.Body);
    }

    [Theory]
    [InlineData(200, true, false, true)]
    [InlineData(200, false, false, false)]
    [InlineData(200, true, true, false)]
    [InlineData(400, true, false, false)]
    [InlineData(502, true, false, false)]
    public void Only_a_whole_successful_answer_that_fitted_is_kept(int status, bool complete, bool overflowed, bool kept)
    {
        var outcome = new RequestOutcome("a", status, 1, 1, 0, null) { Complete = complete };
        Assert.Equal(kept, CacheStage.Keeps(outcome, overflowed));
        Assert.False(CacheStage.Keeps(null, overflowed: false));
    }

    public void Dispose() => _rig.Dispose();
}
