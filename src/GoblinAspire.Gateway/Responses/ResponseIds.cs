using System.Security.Cryptography;

namespace GoblinAspire.Gateway.Responses;

/// <summary>Ids in OpenAI's style (<c>resp_…</c>, <c>msg_…</c>, <c>fc_…</c>): a prefix and 128 random bits.</summary>
public static class ResponseIds
{
    /// <remarks>Random, not sequential: a response id is what another key would have to guess to probe for it.</remarks>
    public static string New(string prefix) => prefix + "_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
}
