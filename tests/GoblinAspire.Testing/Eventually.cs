namespace GoblinAspire.Testing;

public static class Eventually
{
    /// <summary>Polls until <paramref name="condition"/> holds; returns how long it took, or throws after the timeout.</summary>
    public static async Task<TimeSpan> HoldsAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var started = DateTime.UtcNow;
        while (true)
        {
            if (await condition())
            {
                return DateTime.UtcNow - started;
            }

            if (DateTime.UtcNow - started > timeout)
            {
                throw new TimeoutException($"{what} did not happen within {timeout}.");
            }

            await Task.Delay(50);
        }
    }
}
