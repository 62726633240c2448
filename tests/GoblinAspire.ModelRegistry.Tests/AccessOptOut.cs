using System.Runtime.CompilerServices;

namespace GoblinAspire.ModelRegistry.Tests;

/// <summary>
/// The registry requires its bearer token by default. This test assembly opts out explicitly, for every registry it
/// starts in process or as a process, as an operator would on a closed network; RegistryAccessTests turns it back on.
/// </summary>
internal static class AccessOptOut
{
    [ModuleInitializer]
    internal static void OptOut() => Environment.SetEnvironmentVariable("ModelRegistry__Access__RequireToken", "false");
}
