namespace GoblinAspire.AppHost.DataStores;

/// <summary>Files that hold a data store's password: readable by their owner alone from the first byte.</summary>
internal static class PrivateFile
{
    public static async Task WriteAsync(string path, string text, CancellationToken cancellationToken)
    {
        File.Delete(path);
        await using var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(text), cancellationToken);
    }
}
