using System.Reflection;
using GoblinAspire.ServiceDefaults;

namespace GoblinAspire.Testing;

/// <summary>
/// Where each service's build output is: the host is built with the services (project references), and the build
/// records their folder and output path here, as the AppHost's generated <c>Projects.*</c> metadata does.
/// </summary>
public static class ServiceProjects
{
    private static readonly string[] Output = (typeof(ServiceProjects).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .SingleOrDefault(a => a.Key == "GoblinAspire.ServiceOutput")?.Value ?? throw new InvalidOperationException("The host was built without its service output metadata."))
        .Split('|');

    /// <summary>The project of a platform service, by resource name: <c>gateway</c> → <c>GoblinAspire.Gateway</c>.</summary>
    public static string ProjectOf(string service) => service switch
    {
        PlatformResources.Gateway => "GoblinAspire.Gateway",
        PlatformResources.ModelRegistry => "GoblinAspire.ModelRegistry",
        PlatformResources.TrainingWorker => "GoblinAspire.TrainingWorker",
        PlatformResources.ChatFallback => "GoblinAspire.ChatFallback",
        _ => throw new ArgumentOutOfRangeException(nameof(service), service, "not a platform service"),
    };

    /// <summary>The entry assembly of <paramref name="project"/> (e.g. <c>GoblinAspire.Gateway</c>), built in the host's configuration.</summary>
    public static string AssemblyPath(string project)
    {
        var path = Path.GetFullPath(Path.Combine(Output[0], project, Output[1], project + ".dll"));
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path} is not built; build the solution (or the local host) first.", path);
    }

    /// <summary>The repository the host was built from.</summary>
    public static string RepositoryRoot => Path.GetFullPath(Path.Combine(Output[0], ".."));
}
