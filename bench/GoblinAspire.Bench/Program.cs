// Processes for the benchmarks under bench/: a fast OpenAI-compatible upstream and a bare YARP proxy in front of it
// (gateway.sh), an open-loop load generator that holds a fixed request rate (registry.sh), and a job submitter that
// measures the training queue (training.sh).
using System.Text;
using GoblinAspire.Bench;
using Yarp.ReverseProxy.Configuration;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: upstream <port> | yarp <port> <upstream-url> | load <url> <rate> <seconds> <GET|POST> [json-body with {n}] | jobs <worker-urls> <connection> <count> <parallelism>");
    return 2;
}

if (args[0] == "load")
{
    return await OpenLoopLoad.RunAsync(args[1..]);
}

if (args[0] == "jobs")
{
    return await JobQueueLoad.RunAsync(args[1..]);
}

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.UseUrls($"http://127.0.0.1:{args[1]}");

switch (args[0])
{
    case "upstream":
        var app = builder.Build();
        var whole = Encoding.UTF8.GetBytes("""{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}""");
        var chunk = Encoding.UTF8.GetBytes("""data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench","choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}]}""" + "\n\n");
        var end = Encoding.UTF8.GetBytes("""data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28}}""" + "\n\ndata: [DONE]\n\n");
        app.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            var stream = body.ToArray().AsSpan().IndexOf("\"stream\":true"u8) >= 0;
            if (!stream)
            {
                context.Response.ContentType = "application/json";
                context.Response.ContentLength = whole.Length;
                await context.Response.Body.WriteAsync(whole);
                return;
            }

            context.Response.ContentType = "text/event-stream";
            for (var i = 0; i < 16; i++)
            {
                await context.Response.Body.WriteAsync(chunk);
                await context.Response.Body.FlushAsync();
            }

            await context.Response.Body.WriteAsync(end);
        });
        await app.RunAsync();
        return 0;

    case "yarp" when args.Length >= 3:
        builder.Services.AddReverseProxy().LoadFromMemory(
            [new RouteConfig { RouteId = "all", ClusterId = "upstream", Match = new RouteMatch { Path = "{**catch-all}" } }],
            [new ClusterConfig { ClusterId = "upstream", Destinations = new Dictionary<string, DestinationConfig> { ["d"] = new() { Address = args[2] } } }]);
        var proxy = builder.Build();
        proxy.MapReverseProxy();
        await proxy.RunAsync();
        return 0;

    default:
        Console.Error.WriteLine($"unknown mode '{args[0]}'");
        return 2;
}
