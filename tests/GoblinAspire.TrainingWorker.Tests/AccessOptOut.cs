using System.Runtime.CompilerServices;

namespace GoblinAspire.TrainingWorker.Tests;

/// <summary>
/// The worker and the registry require their bearer tokens by default. This test assembly opts out explicitly, for
/// every worker and registry it starts, as an operator would on a closed network; WorkerAccessTests turns it back on.
/// </summary>
internal static class AccessOptOut
{
    [ModuleInitializer]
    internal static void OptOut()
    {
        Environment.SetEnvironmentVariable("TrainingWorker__Access__RequireToken", "false");
        Environment.SetEnvironmentVariable("ModelRegistry__Access__RequireToken", "false");
    }
}
