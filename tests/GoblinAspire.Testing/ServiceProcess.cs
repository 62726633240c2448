
namespace GoblinAspire.Testing;

/// <summary>One platform service as its own process (<c>dotnet GoblinAspire.X.dll</c>) with only the environment it is given.</summary>
public static class ServiceProcess
{
    /// <param name="project">The project name without the GoblinAspire prefix, e.g. "Gateway".</param>
    /// <param name="workingDirectory">The folder it starts in; by default the one its dll is in.</param>
    public static ServiceInstance Start(string project, IReadOnlyDictionary<string, string> environment, int? port = null, string? workingDirectory = null)
    {
        var name = $"GoblinAspire.{project}";
        return ServiceInstance.Start(name, ServiceProjects.AssemblyPath(name), port ?? FreePort.Next(), environment, workingDirectory);
    }

    public static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "GoblinAspire.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("GoblinAspire.sln not found above the test assembly.");
    }
}
