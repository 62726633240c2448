using System.Security.Cryptography;

namespace GoblinAspire.LocalHost;

/// <summary>
/// The platform's secrets for one data folder, generated on first use and kept in files only their owner can read, so
/// a restart finds the same database passwords and signing keys. They are never printed; their paths are.
/// </summary>
public sealed class SecretFolder(string directory)
{
    public string Directory { get; } = directory;

    public string PathOf(string name) => Path.Combine(Directory, name);

    /// <summary>A secret the operator put here (e.g. <c>vastai-api-key</c>); null when there is none.</summary>
    public string? Find(string name)
    {
        var path = PathOf(name);
        return File.Exists(path) && File.ReadAllText(path).Trim() is { Length: > 0 } existing ? existing : null;
    }

    public string GetOrCreate(string name)
    {
        var path = PathOf(name);
        if (Find(name) is { } existing)
        {
            return existing;
        }

        System.IO.Directory.CreateDirectory(Directory);
        File.SetUnixFileMode(Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var secret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        var temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(secret);
        }

        File.Move(temporary, path, overwrite: true);
        return secret;
    }
}
