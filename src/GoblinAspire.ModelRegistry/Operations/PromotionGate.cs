using System.Globalization;
using System.Text.RegularExpressions;
using GoblinAspire.ModelRegistry.Mlflow;

namespace GoblinAspire.ModelRegistry.Operations;

/// <summary>One promotion condition on a run metric, e.g. <c>eval.accuracy &gt;= 0.9</c>.</summary>
public sealed partial record PromotionGate(string Metric, string Operator, double Threshold)
{
    /// <summary>Registered-model tag that holds the gates, as a JSON array of condition strings.</summary>
    public const string Tag = "goblin.promotion_gates";

    public override string ToString() => $"{Metric} {Operator} {Threshold.ToString(CultureInfo.InvariantCulture)}";

    public static PromotionGate Parse(string condition)
    {
        var match = Pattern().Match(condition ?? "");
        if (!match.Success || !double.TryParse(match.Groups["value"].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var threshold) || !double.IsFinite(threshold))
        {
            throw MlflowException.Invalid($"Invalid promotion condition '{MlflowArgs.Shorten(condition ?? "")}': expected '<metric> <op> <number>' with op one of >=, >, <=, <, ==, !=.");
        }

        return new PromotionGate(Validation.Key(match.Groups["metric"].Value, "Metric"), match.Groups["op"].Value, threshold);
    }

    /// <summary>Whether <paramref name="value"/> passes; a missing metric never does.</summary>
    public bool Holds(double? value) => value is { } v && !double.IsNaN(v) && Operator switch
    {
        ">=" => v >= Threshold,
        ">" => v > Threshold,
        "<=" => v <= Threshold,
        "<" => v < Threshold,
        "==" => v == Threshold,
        _ => v != Threshold,
    };

    [GeneratedRegex(@"^\s*(?<metric>[\w./\- ]+?)\s*(?<op>>=|<=|==|!=|>|<)\s*(?<value>[-+0-9.eE]+)\s*$")]
    private static partial Regex Pattern();
}

public sealed record GateResult(string Condition, double? Actual, bool Passed);
