using System.Net;
using System.Net.Sockets;
using System.Text;
using GoblinAspire.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry.Tests;

[Collection(PlatformServers.Collection)]
public sealed class ArtifactApiTests(PlatformServers servers) : IAsyncLifetime
{
    private const string Artifacts = "/api/2.0/mlflow-artifacts/artifacts";
    private RegistryHost _registry = null!;

    private HttpClient Http => _registry.Host.Client;

    private string Root => _registry.Host.Services.GetRequiredService<IOptions<ModelRegistryOptions>>().Value.ArtifactRoot;

    public async Task InitializeAsync() => _registry = await RegistryHost.StartAsync(servers);

    public async Task DisposeAsync() => await _registry.DisposeAsync();

    [Fact]
    public async Task Upload_download_list_and_delete_through_the_proxy()
    {
        var bytes = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7)).ToArray();
        using (var put = await Http.PutAsync($"{Artifacts}/1/run1/artifacts/model/weights.bin", new ByteArrayContent(bytes)))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        await Http.PutAsync($"{Artifacts}/1/run1/artifacts/model/MLmodel", new StringContent("flavors: {}"));
        Assert.Equal(bytes, await Http.GetByteArrayAsync($"{Artifacts}/1/run1/artifacts/model/weights.bin"));

        var list = await _registry.Mlflow.GetAsync("../../2.0/mlflow-artifacts/artifacts", "path=1/run1/artifacts/model");
        var files = list.GetProperty("files").EnumerateArray().ToDictionary(f => f.GetProperty("path").GetString()!);
        Assert.Equal(300_000, files["weights.bin"].GetProperty("file_size").GetInt64());
        Assert.False(files["MLmodel"].GetProperty("is_dir").GetBoolean());

        using (var delete = await Http.DeleteAsync($"{Artifacts}/1/run1/artifacts/model/weights.bin"))
        {
            Assert.Equal(HttpStatusCode.OK, delete.StatusCode);
        }

        using var gone = await Http.GetAsync($"{Artifacts}/1/run1/artifacts/model/weights.bin");
        MlflowClient.AssertError(await MlflowClient.ReadAsync(gone, HttpStatusCode.NotFound), "RESOURCE_DOES_NOT_EXIST");
    }

    [Fact]
    public async Task A_runs_artifacts_are_listed_relative_to_its_artifact_uri()
    {
        var run = (await _registry.Mlflow.PostAsync("runs/create", new { experiment_id = "0" })).GetProperty("run").GetProperty("info");
        var runId = run.GetProperty("run_id").GetString();
        await Http.PutAsync($"{Artifacts}/0/{runId}/artifacts/model/model.gguf", new ByteArrayContent(new byte[42]));

        var top = await _registry.Mlflow.GetAsync("artifacts/list", $"run_id={runId}");
        Assert.Equal($"mlflow-artifacts:/0/{runId}/artifacts", top.GetProperty("root_uri").GetString());
        Assert.True(Assert.Single(top.GetProperty("files").EnumerateArray()).GetProperty("is_dir").GetBoolean());
        var inner = await _registry.Mlflow.GetAsync("artifacts/list", $"run_id={runId}&path=model");
        Assert.Equal("model/model.gguf", Assert.Single(inner.GetProperty("files").EnumerateArray()).GetProperty("path").GetString());
    }

    [Theory]
    [InlineData("..%2F..%2Fetc%2Fpasswd")]
    [InlineData("a/../../escape.bin")]
    [InlineData("a/%2e%2e/%2e%2e/escape.bin")]
    [InlineData("a%5C..%5Cescape.bin")]
    [InlineData("a/evil%00.bin")]
    [InlineData("C:%2Fwindows.bin")]
    public async Task Traversal_and_hostile_paths_are_refused_and_write_nothing_outside_the_root(string path)
    {
        using var response = await Http.PutAsync($"{Artifacts}/{path}", new StringContent("x"));
        Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"{(int)response.StatusCode}");
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName(Root)!, "escape.bin")));
        Assert.False(File.Exists("/etc/passwd.goblin"));
        var list = await _registry.Mlflow.GetAsync("../../2.0/mlflow-artifacts/artifacts", "path=");
        Assert.False(list.TryGetProperty("files", out _));
    }

    [Fact]
    public async Task A_truncated_upload_never_leaves_an_object_visible()
    {
        using (var put = await Http.PutAsync($"{Artifacts}/keep/model.bin", new StringContent("old")))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        // Announce a megabyte, send a few bytes, then cut the connection.
        using (var socket = new TcpClient())
        {
            await socket.ConnectAsync(_registry.Host.BaseAddress.Host, _registry.Host.BaseAddress.Port);
            var stream = socket.GetStream();
            var head = $"PUT {Artifacts}/keep/model.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\npartial-bytes";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
            await stream.FlushAsync();
            await Task.Delay(200);
        }

        await Task.Delay(300);
        Assert.Equal("old", await Http.GetStringAsync($"{Artifacts}/keep/model.bin"));
        await Eventually.HoldsAsync(() => Task.FromResult(!Directory.EnumerateFiles(Path.Combine(Root, ".staging")).Any()), TimeSpan.FromSeconds(5), "the partial upload to be discarded");
    }
}
