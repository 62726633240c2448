using System.Collections.Concurrent;
using System.Text.Json;
using GoblinAspire.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace GoblinAspire.TrainingWorker.Tests.StandIns;

/// <summary>
/// RunPod's REST API for pods (<c>/v1/pods</c>: create answering 201 with <c>costPerHr</c> as a string and
/// <c>adjustedCostPerHr</c> as a number, get, list by name, delete) and its serverless API
/// (<c>/v2/{endpoint}/run</c>, <c>/status/{id}</c> through IN_QUEUE → IN_PROGRESS → COMPLETED/FAILED, <c>/cancel/{id}</c>).
/// </summary>
public sealed class RunPodStandIn : IAsyncDisposable
{
    public const string ApiKey = "rpa_test_key_0123456789";
    private readonly ConcurrentDictionary<string, Pod> _pods = new();
    private readonly ConcurrentDictionary<string, Request> _requests = new();
    private int _next;

    private RunPodStandIn() => Host = null!;

    public TestWebHost Host { get; private set; }

    public Uri PodsUrl => new(Host.BaseAddress, "v1/");

    public Uri ServerlessUrl => new(Host.BaseAddress, "v2/");

    public MachineScript Script { get; set; } = MachineScript.Finish;

    /// <summary>What the next created pod reports as its price, whatever was asked.</summary>
    public decimal? PriceOverride { get; set; }

    public bool ServerlessFails { get; set; }

    public IReadOnlyCollection<Pod> Pods => [.. _pods.Values];

    public IReadOnlyCollection<Request> Requests => [.. _requests.Values];

    public static async Task<RunPodStandIn> StartAsync()
    {
        var standIn = new RunPodStandIn();
        standIn.Host = await TestWebHost.StartStandInAsync(standIn.Map);
        return standIn;
    }

    private void Map(WebApplication app)
    {
        app.Use(async (http, next) =>
        {
            if (http.Request.Headers.Authorization != $"Bearer {ApiKey}")
            {
                http.Response.StatusCode = 401;
                await http.Response.WriteAsJsonAsync(new { error = "Unauthorized" });
                return;
            }

            await next(http);
        });
        app.MapPost("/v1/pods", async (HttpContext http) =>
        {
            var root = (await JsonDocument.ParseAsync(http.Request.Body)).RootElement;
            var gpus = root.GetProperty("gpuTypeIds").EnumerateArray().Select(g => g.GetString()!).ToList();
            var id = $"pod{Interlocked.Increment(ref _next):D4}xyz";
            var price = PriceOverride ?? 0.34m;
            var pod = new Pod(id, root.GetProperty("name").GetString()!, root.GetProperty("imageName").GetString()!, gpus, root.GetProperty("interruptible").GetBoolean(),
                root.GetProperty("env").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!), price, Script);
            _pods[id] = pod;
            return Results.Json(pod.Document(), statusCode: 201);
        });
        app.MapGet("/v1/pods", (string? name) => Results.Json(_pods.Values.Where(p => !p.Deleted && (name is null || p.Name == name)).Select(p => p.Document()).ToArray()));
        app.MapGet("/v1/pods/{id}", async (string id) =>
        {
            if (!_pods.TryGetValue(id, out var pod) || pod.Deleted)
            {
                return Results.Json(new { error = "pod not found" }, statusCode: 404);
            }

            await pod.AdvanceAsync();
            return Results.Json(pod.Document());
        });
        app.MapDelete("/v1/pods/{id}", (string id) =>
        {
            if (!_pods.TryGetValue(id, out var pod) || pod.Deleted)
            {
                return Results.Json(new { error = "pod not found" }, statusCode: 404);
            }

            pod.Deleted = true;
            return Results.Ok();
        });
        app.MapPost("/v2/{endpoint}/run", async (string endpoint, HttpContext http) =>
        {
            var root = (await JsonDocument.ParseAsync(http.Request.Body)).RootElement;
            var input = root.GetProperty("input");
            var id = $"{Guid.NewGuid()}-u1";
            _requests[id] = new Request(id, endpoint, input.GetProperty("command").EnumerateArray().Select(a => a.GetString()!).ToList(), input.GetProperty("env").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!), ServerlessFails);
            return Results.Json(new { id, status = "IN_QUEUE" });
        });
        app.MapGet("/v2/{endpoint}/status/{id}", (string endpoint, string id) =>
        {
            if (!_requests.TryGetValue(id, out var request) || request.Endpoint != endpoint)
            {
                return Results.Json(new { error = "request does not exist" }, statusCode: 404);
            }

            var status = request.Advance();
            return status switch
            {
                "COMPLETED" => Results.Json(new { id, status, delayTime = 812, executionTime = 3120, output = new { exit_code = 0 } }),
                "FAILED" => Results.Json(new { id, status, delayTime = 812, executionTime = 1200, error = "handler raised: exit code 1" }),
                _ => Results.Json(new { id, status }),
            };
        });
        app.MapPost("/v2/{endpoint}/cancel/{id}", (string endpoint, string id) =>
        {
            if (!_requests.TryGetValue(id, out var request))
            {
                return Results.Json(new { error = "request does not exist" }, statusCode: 404);
            }

            request.Cancelled = true;
            return Results.Json(new { id, status = "CANCELLED" });
        });
    }

    public ValueTask DisposeAsync() => Host.DisposeAsync();

    public sealed class Pod(string id, string name, string image, List<string> gpus, bool interruptible, Dictionary<string, string> env, decimal price, MachineScript script)
    {
        private int _polls;

        public string Id { get; } = id;

        public string Name { get; } = name;

        public string Image { get; } = image;

        public List<string> Gpus { get; } = gpus;

        public bool Interruptible { get; } = interruptible;

        public Dictionary<string, string> Env { get; } = env;

        public volatile bool Deleted;

        public string Status { get; private set; } = "RUNNING";

        public object Document() => new
        {
            id = Id,
            name = Name,
            imageName = Image,
            desiredStatus = Status,
            costPerHr = price.ToString(System.Globalization.CultureInfo.InvariantCulture),
            adjustedCostPerHr = price,
            interruptible = Interruptible,
            gpu = new { id = Gpus[0], count = 1 },
            lastStatusChange = $"{Status} at {DateTimeOffset.UtcNow:O}",
        };

        public async Task AdvanceAsync()
        {
            if (Interlocked.Increment(ref _polls) != 4 || Status != "RUNNING")
            {
                return;
            }

            switch (script)
            {
                case MachineScript.Finish:
                    await ContainerScript.EndRunAsync(Env, succeeded: true);
                    Status = "EXITED";
                    break;
                case MachineScript.Fail:
                    await ContainerScript.EndRunAsync(Env, succeeded: false);
                    Status = "EXITED";
                    break;
                case MachineScript.Preempt:
                    Status = "TERMINATED";
                    break;
            }
        }
    }

    public sealed class Request(string id, string endpoint, List<string> command, Dictionary<string, string> env, bool fails)
    {
        private int _polls;

        public string Id { get; } = id;

        public string Endpoint { get; } = endpoint;

        public List<string> Command { get; } = command;

        public Dictionary<string, string> Env { get; } = env;

        public volatile bool Cancelled;

        public string Advance()
        {
            if (Cancelled)
            {
                return "CANCELLED";
            }

            var poll = Interlocked.Increment(ref _polls);
            return poll switch
            {
                1 => "IN_QUEUE",
                < 4 => "IN_PROGRESS",
                _ => fails ? "FAILED" : "COMPLETED",
            };
        }
    }
}
