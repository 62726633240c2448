using System.Security.Cryptography;
using System.Text.Json;
using GoblinAspire.ChatFallback.Chat;
using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Inference;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ChatFallback.Serving;

/// <summary>
/// Loads the model at start and keeps it current: a local file, or the production version of a registered model,
/// polled from the ModelRegistry, downloaded through its signed URL into the cache with a SHA-256 check, loaded,
/// then swapped in.
/// </summary>
public sealed partial class ModelLoader(ModelSlot slot, IHttpClientFactory clients, IOptions<ChatFallbackOptions> options, TimeProvider time, ILogger<ModelLoader> logger) : BackgroundService
{
    public const string RegistryClient = "modelregistry";
    public const string DownloadClient = "model-download";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        if (settings.RegisteredModel is null)
        {
            if (settings.ModelPath is { Length: > 0 } path)
            {
                await LoadLocalAsync(path);
            }
            else
            {
                slot.Fail("no model configured (ChatFallback:ModelPath or ChatFallback:RegisteredModel)");
            }

            return;
        }

        using var timer = new PeriodicTimer(settings.RegistryPollInterval, time);
        do
        {
            try
            {
                await RefreshFromRegistryAsync(settings.RegisteredModel, stoppingToken);
            }
            catch (Exception ex) when (ex is HttpRequestException or GgufException or IOException or JsonException or InvalidDataException or TaskCanceledException && !stoppingToken.IsCancellationRequested)
            {
                LogRegistryFailed(logger, settings.RegisteredModel, ex.Message);
                slot.Fail($"registry: {ex.Message}");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private async Task LoadLocalAsync(string path)
    {
        try
        {
            var model = await Task.Run(() => Warm(LlamaModel.Load(path)));
            slot.Swap(model, path, null);
            LogLoaded(logger, model.Name, path);
            LogTemplate(model);
        }
        catch (Exception ex) when (ex is GgufException or IOException or UnauthorizedAccessException)
        {
            LogLoadFailed(logger, path, ex.Message);
            slot.Fail($"{Path.GetFileName(path)}: {ex.Message}");
        }
    }

    private async Task RefreshFromRegistryAsync(string name, CancellationToken cancellationToken)
    {
        using var response = await clients.CreateClient(RegistryClient).GetAsync(new Uri(options.Value.RegistryUrl, $"api/v1/models/{Uri.EscapeDataString(name)}/production"), cancellationToken);
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            slot.Fail($"registered model '{name}' has no production version");
            return;
        }

        response.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await response.Content.ReadAsStreamAsync(cancellationToken));
        var root = json.RootElement;
        var version = root.GetProperty("model_version").GetProperty("version").GetString()!;
        if (version == slot.Version && slot.Model is not null)
        {
            return;
        }

        var sha256 = root.TryGetProperty("sha256", out var hash) ? hash.GetString() : null;
        var artifact = root.GetProperty("artifact_path").GetString()!;
        var file = Path.Combine(options.Value.CacheDirectory, Safe(name), Safe(version), Safe(Path.GetFileName(artifact)));
        if (!File.Exists(file) || sha256 is not null && !string.Equals(await HashAsync(file, cancellationToken), sha256, StringComparison.OrdinalIgnoreCase))
        {
            await DownloadAsync(new Uri(root.GetProperty("download_url").GetString()!), file, sha256, cancellationToken);
        }

        var model = await Task.Run(() => Warm(LlamaModel.Load(file, $"{name}")), cancellationToken);
        slot.Swap(model, $"registry:{name}/{version}", version);
        LogLoaded(logger, name, $"version {version}");
        LogTemplate(model);
    }

    /// <summary>Compiles the kernels before the model is swapped in, so the first request's prompt is not what pays for it.</summary>
    private LlamaModel Warm(LlamaModel model)
    {
        InferenceSession.WarmUp(model, options.Value.EffectiveThreads);
        return model;
    }

    /// <summary>Streams to a temporary file, checks SHA-256, then renames: a partial download is never loaded.</summary>
    private async Task DownloadAsync(Uri url, string file, string? sha256, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        var temporary = file + ".partial";
        try
        {
            using var response = await clients.CreateClient(DownloadClient).GetAsync(url, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            response.EnsureSuccessStatusCode();
            using var hasher = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await using (var source = await response.Content.ReadAsStreamAsync(cancellationToken))
            await using (var target = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                var buffer = new byte[1 << 16];
                int read;
                while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    hasher.AppendData(buffer, 0, read);
                    await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }
            }

            var actual = Convert.ToHexStringLower(hasher.GetHashAndReset());
            if (sha256 is not null && !string.Equals(actual, sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidDataException($"the downloaded model's SHA-256 is {actual}, the registry says {sha256}");
            }

            File.Move(temporary, file, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    private static async Task<string> HashAsync(string file, CancellationToken cancellationToken)
    {
        await using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken));
    }

    /// <summary>One path segment from a registry-supplied name: nothing there may climb out of the cache.</summary>
    private static string Safe(string segment)
    {
        var cleaned = new string(segment.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray()).Trim('.');
        return cleaned.Length == 0 ? "_" : cleaned;
    }

    private void LogTemplate(LlamaModel model)
    {
        var choice = ChatTemplates.Choose(model.ChatTemplate, options.Value.ChatTemplate);
        LogChatTemplate(logger, model.Name, choice.Kind.ToString(), choice.Reason);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Model {Model} chats with the {Template} template ({Reason})")]
    private static partial void LogChatTemplate(ILogger logger, string model, string template, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Serving model {Model} from {Source}")]
    private static partial void LogLoaded(ILogger logger, string model, string source);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not load the model at {Path}: {Reason}")]
    private static partial void LogLoadFailed(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not refresh registered model {Model}: {Reason}")]
    private static partial void LogRegistryFailed(ILogger logger, string model, string reason);
}
