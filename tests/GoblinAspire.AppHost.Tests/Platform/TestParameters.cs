using System.Security.Cryptography;

namespace GoblinAspire.AppHost.Tests.Platform;

/// <summary>
/// What a test gives the AppHost: every secret parameter (so nothing is generated into the developer's user secrets),
/// the process-mode data stores in a throwaway folder, and PostgreSQL without fsync.
/// </summary>
public static class TestParameters
{
    public static Dictionary<string, string> All() => new(StringComparer.Ordinal)
    {
        ["postgres-password"] = Secret(),
        ["redis-password"] = Secret(),
        [PlatformSecrets.RegistrySigningKey.Parameter] = Secret(),
        [PlatformSecrets.GatewayAdminKey.Parameter] = Secret(),
        [PlatformSecrets.RegistryToken.Parameter] = Secret(),
        [PlatformSecrets.WorkerToken.Parameter] = Secret(),
        ["gateway-development-key"] = Secret(),
    };

    public static IEnumerable<string> Arguments(string dataDirectory, IReadOnlyDictionary<string, string> parameters) =>
    [
        $"--DataStores:DataDirectory={dataDirectory}",
        "--DataStores:Mode=processes",
        "--DataStores:Durable=false",
        .. parameters.Select(p => $"--Parameters:{p.Key}={p.Value}"),
    ];

    /// <summary>A temporary folder others may enter (not list): PostgreSQL runs as its own user when the tests run as root.</summary>
    public static string DataDirectory()
    {
        var directory = Directory.CreateTempSubdirectory("goblin-apphost-").FullName;
        File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherExecute);
        return directory;
    }

    /// <summary>Lower-case hex of 24 random bytes: long enough for every secret, and valid in a virtual key.</summary>
    public static string Secret() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
}
