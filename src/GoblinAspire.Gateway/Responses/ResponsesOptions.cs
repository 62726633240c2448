using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace GoblinAspire.Gateway.Responses;

public sealed class ResponsesOptions
{
    public const string SectionName = "Gateway:Responses";

    /// <summary>How long a stored response (and its input) can be read or continued; OpenAI keeps them 30 days.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "3650.00:00:00")]
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How often expired responses are deleted (readers never see them either way).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromHours(1);
}

[OptionsValidator]
public sealed partial class ResponsesOptionsValidator : IValidateOptions<ResponsesOptions>;
