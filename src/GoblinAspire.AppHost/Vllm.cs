using System.Text.RegularExpressions;
using GoblinAspire.AppHost;
using GoblinAspire.AppHost.Kubernetes;
using GoblinAspire.ServiceDefaults;

/// <summary>
/// vLLM's OpenAI server for goblin-chat, added only when <c>Parameters:gpu</c> is true. The model is fetched once by a
/// download step into a Hugging Face cache volume, at a revision pinned to a commit SHA; the server then runs offline
/// (<c>HF_HUB_OFFLINE=1</c>), so what it serves cannot change under it. Its flags are parameters with the design notes'
/// defaults: 0.65 of GPU memory, a 32 768-token context, 3 sequences at once, an fp8 KV cache.
/// </summary>
internal static partial class Vllm
{
    /// <summary>A released tag, never <c>latest</c>: vLLM changes flag behaviour between releases.</summary>
    public const string Image = "vllm/vllm-openai";
    public const string Tag = "v0.11.0";
    /// <summary>Hugging Face's cache (<c>HF_HOME</c>) on its volume, outside /root so the pod can run as a plain user.</summary>
    public const string Cache = "/models/huggingface";

    public static IResourceBuilder<ContainerResource>? AddVllmWhenGpuPresent(this IDistributedApplicationBuilder builder)
    {
        if (!bool.TryParse(builder.Configuration["Parameters:gpu"], out var gpu) || !gpu)
        {
            return null;
        }

        var model = builder.Configuration["Parameters:vllm-model"] ?? "Qwen/Qwen2.5-7B-Instruct";
        var revision = builder.Configuration["Parameters:vllm-revision"];
        if (revision is null || !CommitSha().IsMatch(revision))
        {
            throw new DistributedApplicationException("Parameters:gpu is true, so Parameters:vllm-revision must pin the model to a 40-character commit SHA of its Hugging Face repository.");
        }

        var hfToken = builder.AddParameter("hf-token", secret: true);
        var gpuMemory = builder.AddParameterWithDefault("vllm-gpu-memory-utilization", "0.65");
        var maxModelLength = builder.AddParameterWithDefault("vllm-max-model-len", "32768");
        var maxSequences = builder.AddParameterWithDefault("vllm-max-num-seqs", "3");
        var kvCacheType = builder.AddParameterWithDefault("vllm-kv-cache-dtype", "fp8");

        var vllm = builder.AddContainer(PlatformResources.Vllm, Image, Tag)
            .WithVolume(CacheVolume, Cache)
            .WithEnvironment("HF_HOME", Cache)
            // Triton, torch.compile and vLLM keep their caches under $HOME; /tmp is the pod's writable scratch.
            .WithEnvironment("HOME", "/tmp")
            .WithEnvironment("HF_HUB_OFFLINE", "1")
            .WithArgs(
                "--model", model,
                "--revision", revision,
                "--served-model-name", PlatformResources.ChatModel)
            .WithArgs(context =>
            {
                context.Args.Add("--gpu-memory-utilization");
                context.Args.Add(gpuMemory.Resource);
                context.Args.Add("--max-model-len");
                context.Args.Add(maxModelLength.Resource);
                context.Args.Add("--max-num-seqs");
                context.Args.Add(maxSequences.Resource);
                context.Args.Add("--kv-cache-dtype");
                context.Args.Add(kvCacheType.Resource);
            })
            .WithHttpEndpoint(targetPort: 8000, name: PlatformResources.HttpEndpoint)
            .WithHttpHealthCheck("/health")
            .WithContainerRuntimeArgs("--gpus", "all", "--ipc", "host")
            .WithKubernetesPod(pod => pod with
            {
                RunAsUser = 1000,
                Gpus = 1,
                CpuRequest = "4",
                CpuLimit = "8",
                MemoryRequest = "16Gi",
                MemoryLimit = "32Gi",
                VolumeSize = "100Gi",
                HealthPath = "/health",
                StartupAllowance = TimeSpan.FromMinutes(20),
                Init = new PodInitStep("download-model", DownloadCommand(model, revision), new Dictionary<string, ParameterResource> { ["HF_TOKEN"] = hfToken.Resource }),
            });

        if (!builder.ExecutionContext.IsPublishMode)
        {
            // Locally a one-shot container; in Kubernetes the same command is the pod's init container.
            var download = builder.AddContainer($"{PlatformResources.Vllm}-download", Image, Tag)
                .WithEntrypoint(DownloadCommand(model, revision)[0])
                .WithArgs(DownloadCommand(model, revision)[1..])
                .WithEnvironment("HF_TOKEN", hfToken)
                .WithEnvironment("HF_HOME", Cache)
                .WithVolume(CacheVolume, Cache);
            vllm.WaitForCompletion(download);
        }

        return vllm;
    }

    public const string CacheVolume = "huggingface-cache";

    private static string[] DownloadCommand(string model, string revision) => ["huggingface-cli", "download", model, "--revision", revision];

    /// <summary>
    /// The gateway's first provider for goblin-chat, ahead of the ChatFallback (priority 100 in its appsettings). The
    /// gateway does not wait for vLLM: while the model loads, the ChatFallback answers.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithVllmProvider(this IResourceBuilder<ProjectResource> gateway, IResourceBuilder<ContainerResource> vllm)
    {
        gateway.WithReference(vllm.GetEndpoint(PlatformResources.HttpEndpoint));
        foreach (var (name, value) in GatewayProviders.Entry(PlatformResources.Vllm, kind: "openai", baseUrl: PlatformResources.ServiceUri(PlatformResources.Vllm).AbsoluteUri, priority: 0, contextLength: 32768, nativeResponses: true))
        {
            gateway.WithEnvironment(name, value);
        }

        return gateway;
    }

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitSha();
}
