// The example training job: fits y = 3x + 2 by gradient descent on generated data, on CPU, in seconds. It is written
// like any MLflow-instrumented script: it reads MLFLOW_TRACKING_URI and MLFLOW_RUN_ID, logs params and metrics over
// MLflow's REST API, and logs its model as a run artifact; it checkpoints to GOBLIN_CHECKPOINT_UPLOAD_URL at the
// interval it is given and on SIGTERM, and resumes from GOBLIN_CHECKPOINT_DOWNLOAD_URL.
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;

var settings = TrainerSettings.Parse(args);
var environment = (string name) => Environment.GetEnvironmentVariable(name);
var tracking = environment("MLFLOW_TRACKING_URI") ?? throw new InvalidOperationException("MLFLOW_TRACKING_URI is not set.");
var runId = environment("MLFLOW_RUN_ID") ?? throw new InvalidOperationException("MLFLOW_RUN_ID is not set.");
var attempt = int.Parse(environment("GOBLIN_ATTEMPT") ?? "1", CultureInfo.InvariantCulture);
var checkpointInterval = TimeSpan.FromSeconds(double.Parse(environment("GOBLIN_CHECKPOINT_INTERVAL_SECONDS") ?? "900", CultureInfo.InvariantCulture));
var uploadUrl = environment("GOBLIN_CHECKPOINT_UPLOAD_URL");
var downloadUrl = environment("GOBLIN_CHECKPOINT_DOWNLOAD_URL");

using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
// As MLflow's clients do: MLFLOW_TRACKING_TOKEN is sent as a bearer token (the worker gives a token for this run only).
if (environment("MLFLOW_TRACKING_TOKEN") is { Length: > 0 } trackingToken)
{
    http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", trackingToken);
}

var mlflow = new MlflowRunClient(http, tracking.TrimEnd('/'), runId);

if (attempt <= settings.FailAttempts)
{
    Console.Error.WriteLine($"attempt {attempt}: failing on purpose (--fail-attempts {settings.FailAttempts})");
    return 3;
}

var model = new LinearModel();
var start = 0;
if (downloadUrl is not null && await Checkpoint.LoadAsync(http, downloadUrl) is { } saved)
{
    (start, model) = saved;
    Console.WriteLine($"resumed from checkpoint at step {start}");
}
else
{
    Console.WriteLine("no checkpoint: starting from step 0");
}

await mlflow.LogParamsAsync(new() { ["learning_rate"] = settings.LearningRate.ToString(CultureInfo.InvariantCulture), ["steps"] = settings.Steps.ToString(CultureInfo.InvariantCulture) });

var stopping = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stopping.Cancel();
});

var data = Dataset.Generate(256, seed: 7);
var lastCheckpoint = DateTime.UtcNow;
var step = start;
var metrics = new List<(string Key, double Value, int Step)>();
for (; step < settings.Steps && !stopping.IsCancellationRequested; step++)
{
    var loss = model.Step(data, settings.LearningRate);
    if (step % 10 == 0)
    {
        metrics.Add(("loss", loss, step));
        Console.WriteLine($"step {step} loss {loss:F6}");
    }

    if (metrics.Count >= 5)
    {
        await mlflow.LogMetricsAsync(metrics);
        metrics.Clear();
    }

    if (uploadUrl is not null && (DateTime.UtcNow - lastCheckpoint >= checkpointInterval || (settings.CheckpointEverySteps > 0 && (step + 1) % settings.CheckpointEverySteps == 0)))
    {
        await Checkpoint.SaveAsync(http, uploadUrl, step + 1, model);
        Console.WriteLine($"checkpoint at step {step + 1}");
        lastCheckpoint = DateTime.UtcNow;
    }

    if (settings.StepDelay > TimeSpan.Zero)
    {
        try
        {
            await Task.Delay(settings.StepDelay, stopping.Token);
        }
        catch (OperationCanceledException)
        {
            step++;
            break;
        }
    }
}

await mlflow.LogMetricsAsync(metrics);
if (stopping.IsCancellationRequested)
{
    if (uploadUrl is not null)
    {
        await Checkpoint.SaveAsync(http, uploadUrl, step, model);
    }

    Console.WriteLine($"SIGTERM: checkpointed at step {step}, exiting");
    return 143;
}

var finalLoss = model.Loss(data);
await mlflow.LogMetricsAsync([("final_loss", finalLoss, settings.Steps), ("weight", model.Weight, settings.Steps), ("bias", model.Bias, settings.Steps)]);
await mlflow.LogArtifactAsync("model/model.json", model.ToJson().ToJsonString());
await mlflow.EndAsync("FINISHED");
Console.WriteLine($"done: w={model.Weight:F4} b={model.Bias:F4} loss={finalLoss:F6}");
return 0;

internal sealed record TrainerSettings(int Steps, double LearningRate, TimeSpan StepDelay, int FailAttempts, int CheckpointEverySteps)
{
    public static TrainerSettings Parse(string[] args)
    {
        var steps = 300;
        var learningRate = 0.05;
        var delay = TimeSpan.Zero;
        var failAttempts = 0;
        var everySteps = 0;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            var value = args[i + 1];
            switch (args[i])
            {
                case "--steps": steps = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "--learning-rate": learningRate = double.Parse(value, CultureInfo.InvariantCulture); break;
                case "--step-ms": delay = TimeSpan.FromMilliseconds(int.Parse(value, CultureInfo.InvariantCulture)); break;
                case "--fail-attempts": failAttempts = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "--checkpoint-every-steps": everySteps = int.Parse(value, CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }

        return new TrainerSettings(steps, learningRate, delay, failAttempts, everySteps);
    }
}

internal sealed class Dataset(double[] x, double[] y)
{
    public double[] X { get; } = x;

    public double[] Y { get; } = y;

    public static Dataset Generate(int count, int seed)
    {
        var random = new Random(seed);
        var x = new double[count];
        var y = new double[count];
        for (var i = 0; i < count; i++)
        {
            x[i] = (random.NextDouble() * 4) - 2;
            y[i] = (3 * x[i]) + 2 + ((random.NextDouble() - 0.5) * 0.1);
        }

        return new Dataset(x, y);
    }
}

internal sealed class LinearModel
{
    public double Weight { get; set; }

    public double Bias { get; set; }

    public double Step(Dataset data, double learningRate)
    {
        double gradW = 0, gradB = 0;
        for (var i = 0; i < data.X.Length; i++)
        {
            var error = (Weight * data.X[i]) + Bias - data.Y[i];
            gradW += error * data.X[i];
            gradB += error;
        }

        Weight -= learningRate * gradW * 2 / data.X.Length;
        Bias -= learningRate * gradB * 2 / data.X.Length;
        return Loss(data);
    }

    public double Loss(Dataset data)
    {
        double sum = 0;
        for (var i = 0; i < data.X.Length; i++)
        {
            var error = (Weight * data.X[i]) + Bias - data.Y[i];
            sum += error * error;
        }

        return sum / data.X.Length;
    }

    public JsonObject ToJson() => new() { ["kind"] = "linear", ["weight"] = Weight, ["bias"] = Bias };
}

internal static class Checkpoint
{
    public static async Task<(int Step, LinearModel Model)?> LoadAsync(HttpClient http, string url)
    {
        using var response = await http.GetAsync(new Uri(url));
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        response.EnsureSuccessStatusCode();
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        return (json["step"]!.GetValue<int>(), new LinearModel { Weight = json["weight"]!.GetValue<double>(), Bias = json["bias"]!.GetValue<double>() });
    }

    public static async Task SaveAsync(HttpClient http, string url, int step, LinearModel model)
    {
        var json = new JsonObject { ["step"] = step, ["weight"] = model.Weight, ["bias"] = model.Bias };
        using var content = new StringContent(json.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await http.PutAsync(new Uri(url), content);
        response.EnsureSuccessStatusCode();
    }
}

internal sealed class MlflowRunClient(HttpClient http, string tracking, string runId)
{
    public async Task LogParamsAsync(Dictionary<string, string> parameters)
    {
        var array = new JsonArray();
        foreach (var (key, value) in parameters)
        {
            array.Add(new JsonObject { ["key"] = key, ["value"] = value });
        }

        await PostAsync("runs/log-batch", new JsonObject { ["run_id"] = runId, ["params"] = array });
    }

    public async Task LogMetricsAsync(IReadOnlyList<(string Key, double Value, int Step)> metrics)
    {
        if (metrics.Count == 0)
        {
            return;
        }

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var array = new JsonArray();
        foreach (var (key, value, step) in metrics)
        {
            array.Add(new JsonObject { ["key"] = key, ["value"] = value, ["timestamp"] = now, ["step"] = step });
        }

        await PostAsync("runs/log-batch", new JsonObject { ["run_id"] = runId, ["metrics"] = array });
    }

    /// <summary>Through MLflow's artifact proxy, as <c>mlflow.log_artifact</c> does for <c>mlflow-artifacts:</c> runs.</summary>
    public async Task LogArtifactAsync(string path, string content)
    {
        using var response = await http.GetAsync(new Uri($"{tracking}/api/2.0/mlflow/runs/get?run_id={runId}"));
        response.EnsureSuccessStatusCode();
        var artifactUri = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["run"]!["info"]!["artifact_uri"]!.GetValue<string>();
        const string scheme = "mlflow-artifacts:/";
        if (!artifactUri.StartsWith(scheme, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"This trainer logs artifacts through the proxy only; the run's artifact URI is {artifactUri}.");
        }

        using var body = new StringContent(content, Encoding.UTF8, "application/json");
        using var put = await http.PutAsync(new Uri($"{tracking}/api/2.0/mlflow-artifacts/artifacts/{artifactUri[scheme.Length..].Trim('/')}/{path}"), body);
        put.EnsureSuccessStatusCode();
    }

    public Task EndAsync(string status) =>
        PostAsync("runs/update", new JsonObject { ["run_id"] = runId, ["status"] = status, ["end_time"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() });

    /// <summary>Retries what a restarting server answers (5xx, refused connections), as MLflow's own client does.</summary>
    private async Task PostAsync(string method, JsonObject body)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
                using var response = await http.PostAsync(new Uri($"{tracking}/api/2.0/mlflow/{method}"), content);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }

                if ((int)response.StatusCode < 500 || attempt == 8)
                {
                    throw new InvalidOperationException($"MLflow {method} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
                }
            }
            catch (HttpRequestException) when (attempt < 8)
            {
                // Retried below.
            }

            await Task.Delay(TimeSpan.FromMilliseconds(250 * attempt));
        }
    }
}
