namespace GoblinAspire.Gateway.Spend;

public sealed record UsageRecord(
    DateTimeOffset At,
    Guid? KeyId,
    string Team,
    string Model,
    string Provider,
    long InputTokens,
    long OutputTokens,
    decimal CostUsd,
    double LatencyMs,
    double? FirstTokenMs,
    int Status,
    bool CacheHit);

/// <summary>Budget periods: the id of the period an instant falls in, and when that period ends.</summary>
public static class BudgetPeriods
{
    public static string Id(string period, DateTimeOffset now) => period switch
    {
        "day" => now.UtcDateTime.ToString("yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture),
        "week" => $"{System.Globalization.ISOWeek.GetYear(now.UtcDateTime)}W{System.Globalization.ISOWeek.GetWeekOfYear(now.UtcDateTime):00}",
        _ => now.UtcDateTime.ToString("yyyyMM", System.Globalization.CultureInfo.InvariantCulture),
    };

    public static DateTimeOffset Start(string period, DateTimeOffset now)
    {
        var utc = now.UtcDateTime.Date;
        return period switch
        {
            "day" => new DateTimeOffset(utc, TimeSpan.Zero),
            "week" => new DateTimeOffset(System.Globalization.ISOWeek.ToDateTime(System.Globalization.ISOWeek.GetYear(utc), System.Globalization.ISOWeek.GetWeekOfYear(utc), DayOfWeek.Monday), TimeSpan.Zero),
            _ => new DateTimeOffset(utc.Year, utc.Month, 1, 0, 0, 0, TimeSpan.Zero),
        };
    }

    public static DateTimeOffset End(string period, DateTimeOffset now) => period switch
    {
        "day" => Start(period, now).AddDays(1),
        "week" => Start(period, now).AddDays(7),
        _ => Start(period, now).AddMonths(1),
    };
}

/// <summary>Takes a finished request's usage record; writing it durably is the sink's business, off the request path.</summary>
public interface IUsageSink
{
    void Record(UsageRecord record);
}

/// <summary>What a key has spent, from the durable record, for budgets that Redis no longer holds.</summary>
public interface ISpendHistory
{
    Task<decimal> SpentSinceAsync(Guid keyId, DateTimeOffset from, CancellationToken cancellationToken);
}
