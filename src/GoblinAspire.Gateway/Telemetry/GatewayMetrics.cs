using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace GoblinAspire.Gateway.Telemetry;

/// <summary>
/// The gateway's Prometheus metrics, under the names the platform's alert rules and dashboards use:
/// <c>inference_requests_total</c>, <c>inference_latency_seconds</c>, <c>inference_time_to_first_token_seconds</c>,
/// <c>provider_errors_total</c>, <c>inference_tokens_total</c>, <c>provider_circuit_state</c>, and the control plane's
/// <c>rate_limit_rejections_total</c>, <c>rate_limit_admission_seconds</c>, <c>rate_limit_fallbacks_total</c>,
/// <c>cache_requests_total</c>, <c>spend_usd_total</c>. Gauges read from their owners' state
/// (<c>provider_circuit_state</c>, <c>usage_records_dropped_total</c>) are registered by those owners on the same meter.
/// </summary>
public sealed class GatewayMetrics
{
    public const string MeterName = "GoblinAspire.Gateway";

    private static readonly double[] LatencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120];

    // An admission is one Redis round trip: tens to hundreds of microseconds when healthy, up to RedisTimeout when not.
    private static readonly double[] AdmissionBuckets = [0.00005, 0.0001, 0.00015, 0.0002, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _latency;
    private readonly Histogram<double> _firstToken;
    private readonly Counter<long> _providerErrors;
    private readonly Counter<long> _tokens;
    private readonly Counter<long> _rateLimited;
    private readonly Histogram<double> _admission;
    private readonly Counter<long> _fallbacks;
    private readonly Counter<double> _spend;
    private readonly Counter<long> _cache;

    public GatewayMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(MeterName);
        _requests = meter.CreateCounter<long>("inference_requests_total", description: "Inference requests answered, by provider, model and HTTP status.");
        _latency = meter.CreateHistogram("inference_latency_seconds", "s", "Time from request to the last byte of the answer.", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        _firstToken = meter.CreateHistogram("inference_time_to_first_token_seconds", "s", "Time from request to the first answer byte.", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        _providerErrors = meter.CreateCounter<long>("provider_errors_total", description: "Failed attempts at a provider, by reason.");
        _tokens = meter.CreateCounter<long>("inference_tokens_total", description: "Tokens by provider, model and direction (input or output).");
        _cache = meter.CreateCounter<long>("cache_requests_total", description: "Cacheable requests by result (hit or miss).");
        _spend = meter.CreateCounter<double>("spend_usd_total", description: "Spend in USD from provider prices, by team, model and provider.");
        _rateLimited = meter.CreateCounter<long>("rate_limit_rejections_total", description: "Requests refused by a key's rate limit, by limit (requests, tokens, parallel).");
        _admission = meter.CreateHistogram("rate_limit_admission_seconds", "s", "Round trip of the Redis admission script, for admissions Redis answered.", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = AdmissionBuckets });
        _fallbacks = meter.CreateCounter<long>("rate_limit_fallbacks_total", description: "Admissions decided without Redis, by failure mode (open: per-replica limits, closed: refused) and reason (unreachable, timeout, error).");
    }

    public void Request(string provider, string model, int status, TimeSpan latency, TimeSpan? firstToken)
    {
        var tags = new TagList { { "provider", provider }, { "model", model }, { "status", StatusLabel(status) } };
        _requests.Add(1, tags);
        _latency.Record(latency.TotalSeconds, tags);
        if (firstToken is { } ttft)
        {
            _firstToken.Record(ttft.TotalSeconds, new TagList { { "provider", provider }, { "model", model } });
        }
    }

    public void ProviderError(string provider, string reason) =>
        _providerErrors.Add(1, new TagList { { "provider", provider }, { "reason", reason } });

    public void Tokens(string provider, string model, long? input, long? output)
    {
        if (input is > 0)
        {
            _tokens.Add(input.Value, new TagList { { "provider", provider }, { "model", model }, { "direction", "input" } });
        }

        if (output is > 0)
        {
            _tokens.Add(output.Value, new TagList { { "provider", provider }, { "model", model }, { "direction", "output" } });
        }
    }

    public void Cache(bool hit) => _cache.Add(1, new TagList { { "result", hit ? "hit" : "miss" } });

    public void Spend(string team, string model, string provider, decimal costUsd)
    {
        if (costUsd > 0)
        {
            _spend.Add((double)costUsd, new TagList { { "team", team }, { "model", model }, { "provider", provider } });
        }
    }

    /// <param name="limit">The limit that refused: requests, tokens, parallel or budget.</param>
    public void RateLimited(string limit) =>
        _rateLimited.Add(1, new TagList { { "limit", limit } });

    public void Admission(TimeSpan roundTrip) => _admission.Record(roundTrip.TotalSeconds);

    public void RateLimiterFallback(string mode, string reason) =>
        _fallbacks.Add(1, new TagList { { "mode", mode }, { "reason", reason } });

    private static string StatusLabel(int status) => status switch
    {
        200 => "200",
        400 => "400",
        404 => "404",
        413 => "413",
        429 => "429",
        499 => "499",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => status.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
