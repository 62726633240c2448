namespace GoblinAspire.ModelRegistry.Search;

/// <summary>
/// How MLflow thins a long metric history for its charts (<c>get-history-bulk-interval</c>). The same steps must be
/// drawn as MLflow's server draws them, so that a chart looks the same whichever server the UI talks to.
/// </summary>
public static class MetricSampling
{
    /// <summary>
    /// Up to <paramref name="maxResults"/> steps from <paramref name="steps"/> (sorted, distinct) within
    /// [<paramref name="start"/>, <paramref name="end"/>], evenly spaced by position, plus the last step in range.
    /// When the range holds no more than <paramref name="maxResults"/> steps, all of them.
    /// </summary>
    public static SortedSet<long> SampleSteps(long start, long end, int maxResults, IReadOnlyList<long> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxResults, 1);
        var first = FirstIndexAtOrAbove(steps, start);
        var pastLast = end == long.MaxValue ? steps.Count : FirstIndexAtOrAbove(steps, end + 1);

        var sampled = new SortedSet<long>();
        var count = pastLast - first;
        if (count <= maxResults)
        {
            for (var i = first; i < pastLast; i++)
            {
                sampled.Add(steps[i]);
            }

            return sampled;
        }

        var interval = (double)count / maxResults;
        for (var i = 0; i < maxResults; i++)
        {
            var index = first + (int)(i * interval);
            // MLflow bounds the index by the number of steps in range rather than by the range's end, so a range
            // that starts past the first logged step loses its upper samples. Kept as is: the points must match.
            if (index < count)
            {
                sampled.Add(steps[index]);
            }
        }

        sampled.Add(steps[pastLast - 1]);
        return sampled;
    }

    /// <summary>The index of the first step at or above <paramref name="value"/> (the count when none is).</summary>
    private static int FirstIndexAtOrAbove(IReadOnlyList<long> steps, long value)
    {
        int low = 0, high = steps.Count;
        while (low < high)
        {
            var middle = low + ((high - low) / 2);
            if (steps[middle] < value)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return low;
    }
}
