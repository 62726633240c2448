using System.Collections.Concurrent;
using System.Text.Json;
using GoblinAspire.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace GoblinAspire.TrainingWorker.Tests.StandIns;

/// <summary>
/// Vast.ai's REST API as the worker uses it: bearer auth, <c>GET /api/v0/bundles/?q=</c> with the query language's
/// operators, <c>PUT /api/v0/asks/{id}/</c> answering <c>{"success": true, "new_contract": id}</c>, instances with
/// <c>actual_status</c>/<c>intended_status</c> moving loading → running → exited or stopped, and DELETE.
/// </summary>
public sealed class VastAiStandIn : IAsyncDisposable
{
    public const string ApiKey = "vast-test-key-0123456789";
    private readonly ConcurrentDictionary<int, Machine> _machines = new();
    private int _next = 1000;

    private VastAiStandIn(TestWebHost host) => Host = host;

    public TestWebHost Host { get; private set; }

    public List<JsonElement> Offers { get; } = [];

    public MachineScript Script { get; set; } = MachineScript.Finish;

    /// <summary>Scripts for successive instances; when empty, <see cref="Script"/>.</summary>
    public ConcurrentQueue<MachineScript> NextScripts { get; } = new();

    /// <summary>The next create makes an instance and then answers 500, as a timed-out gateway would.</summary>
    public bool FailNextCreateAfterMaking { get; set; }

    public ConcurrentBag<string> Queries { get; } = [];

    public ConcurrentBag<string> UnauthorizedCalls { get; } = [];

    public IReadOnlyCollection<Machine> Machines => [.. _machines.Values];

    public static async Task<VastAiStandIn> StartAsync()
    {
        var standIn = new VastAiStandIn(null!);
        standIn.Host = await TestWebHost.StartStandInAsync(standIn.Map);
        return standIn;
    }

    public static JsonElement Offer(int id, string gpu, decimal price, double reliability, decimal? minBid = null) =>
        JsonSerializer.SerializeToElement(new { id, gpu_name = gpu, num_gpus = 1, dph_total = price, min_bid = minBid ?? price * 0.6m, reliability2 = reliability, disk_space = 100, rentable = true });

    private void Map(WebApplication app)
    {
        app.Use(async (http, next) =>
        {
            if (http.Request.Headers.Authorization != $"Bearer {ApiKey}")
            {
                UnauthorizedCalls.Add(http.Request.Path);
                http.Response.StatusCode = 401;
                await http.Response.WriteAsJsonAsync(new { success = false, error = "auth_error", msg = "Invalid user key" });
                return;
            }

            await next(http);
        });
        app.MapGet("/api/v0/bundles/", (string q) =>
        {
            Queries.Add(q);
            var query = JsonDocument.Parse(q).RootElement;
            var cap = query.GetProperty("dph_total").GetProperty("lte").GetDecimal();
            var gpus = query.GetProperty("gpu_name").GetProperty("in").EnumerateArray().Select(g => g.GetString()).ToHashSet();
            // Like the real service, the server filters on price and GPU but the client must not rely on the rest.
            return Results.Json(new { offers = Offers.Where(o => o.GetProperty("dph_total").GetDecimal() <= cap && gpus.Contains(o.GetProperty("gpu_name").GetString())).ToArray() });
        });
        app.MapPut("/api/v0/asks/{offer:int}/", async (int offer, HttpContext http) =>
        {
            var body = await JsonDocument.ParseAsync(http.Request.Body);
            var root = body.RootElement;
            if (!root.TryGetProperty("image", out var image) || !root.TryGetProperty("label", out var label) || !Offers.Any(o => o.GetProperty("id").GetInt32() == offer))
            {
                return Results.Json(new { success = false, error = "invalid_args", msg = "no such ask or missing image/label" }, statusCode: 400);
            }

            var id = Interlocked.Increment(ref _next);
            var price = root.TryGetProperty("price", out var bid) ? bid.GetDecimal() : Offers.First(o => o.GetProperty("id").GetInt32() == offer).GetProperty("dph_total").GetDecimal();
            var script = NextScripts.TryDequeue(out var queued) ? queued : Script;
            _machines[id] = new Machine(id, label.GetString()!, image.GetString()!, root.GetProperty("env").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!), root.GetProperty("args").EnumerateArray().Select(a => a.GetString()!).ToList(), price, root.TryGetProperty("price", out _), script);
            if (FailNextCreateAfterMaking)
            {
                FailNextCreateAfterMaking = false;
                return Results.Json(new { success = false, error = "server_error", msg = "upstream timed out" }, statusCode: 502);
            }

            return Results.Json(new { success = true, new_contract = id });
        });
        app.MapGet("/api/v0/instances/", () => Results.Json(new { instances = _machines.Values.Where(m => !m.Destroyed).Select(m => new { id = m.Id, label = m.Label, actual_status = m.Actual }).ToArray() }));
        app.MapGet("/api/v0/instances/{id:int}/", async (int id) =>
        {
            if (!_machines.TryGetValue(id, out var machine) || machine.Destroyed)
            {
                return Results.Json(new { success = false, error = "no_such_instance", msg = "Instance not found" }, statusCode: 404);
            }

            await machine.AdvanceAsync();
            return Results.Json(new { instances = new { id, label = machine.Label, actual_status = machine.Actual, intended_status = machine.Intended, cur_state = machine.Actual, dph_total = machine.Price, is_bid = machine.IsBid, status_msg = machine.Message } });
        });
        app.MapDelete("/api/v0/instances/{id:int}/", (int id) =>
        {
            if (!_machines.TryGetValue(id, out var machine) || machine.Destroyed)
            {
                return Results.Json(new { success = false, error = "no_such_instance", msg = "Instance not found" }, statusCode: 404);
            }

            machine.Destroyed = true;
            return Results.Json(new { success = true });
        });
    }

    public ValueTask DisposeAsync() => Host.DisposeAsync();

    public sealed class Machine(int id, string label, string image, Dictionary<string, string> env, List<string> args, decimal price, bool isBid, MachineScript script)
    {
        private int _polls;

        public int Id { get; } = id;

        public string Label { get; } = label;

        public string Image { get; } = image;

        public Dictionary<string, string> Env { get; } = env;

        public List<string> Args { get; } = args;

        public decimal Price { get; } = price;

        public bool IsBid { get; } = isBid;

        public volatile bool Destroyed;

        public string Actual { get; private set; } = "loading";

        public string Intended { get; private set; } = "running";

        public string Message { get; private set; } = "pulling image";

        public async Task AdvanceAsync()
        {
            var poll = Interlocked.Increment(ref _polls);
            if (script == MachineScript.NeverStart || Actual is "exited" || Intended == "stopped")
            {
                return;
            }

            if (poll >= 2)
            {
                Actual = "running";
                Message = "";
            }

            if (poll == 5)
            {
                switch (script)
                {
                    case MachineScript.Finish:
                        await ContainerScript.EndRunAsync(Env, succeeded: true);
                        Actual = "exited";
                        Message = "container exited with code 0";
                        break;
                    case MachineScript.Fail:
                        await ContainerScript.EndRunAsync(Env, succeeded: false);
                        Actual = "exited";
                        Message = "container exited with code 1";
                        break;
                    case MachineScript.Preempt:
                        Intended = "stopped";
                        Actual = "exited";
                        Message = "outbid: instance stopped";
                        break;
                }
            }
        }
    }
}
