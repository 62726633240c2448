// The whole platform as local processes, for machines without a container runtime or the Aspire packages:
//   dotnet run --project src/GoblinAspire.LocalHost -- [--data DIR] [--fresh] [--model FILE.gguf] [--port-base N]
//                                                      [--gateway-replicas N] [--otlp-endpoint URL]
using System.Globalization;
using System.Runtime.InteropServices;
using GoblinAspire.LocalHost;

const string Usage = """
    usage: goblin-local [options]
      --data DIR             data folder (default: $XDG_DATA_HOME/goblinaspire, or /var/lib/goblinaspire as root)
      --fresh                wipe the data folder first
      --model FILE.gguf      register and promote this model as goblin-chat (default: a generated demo model)
      --port-base N          consecutive ports from N, gateway replicas first (default: 5300; 0 = any free ports)
      --gateway-replicas N   gateway processes (default: as the AppHost)
      --otlp-endpoint URL    send traces, metrics and logs there (default: $OTEL_EXPORTER_OTLP_ENDPOINT, else none)
    """;

var options = new LocalPlatformOptions { PortBase = 5300 };
try
{
    Parse(args, options);
}
catch (ArgumentException ex)
{
    await Console.Error.WriteLineAsync($"goblin-local: {ex.Message}\n{Usage}");
    return 2;
}

if (options.Telemetry is null && Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT") is { Length: > 0 } otlp)
{
    options.Telemetry = new TelemetryExport(new Uri(otlp), Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_PROTOCOL") ?? "grpc", Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_HEADERS"));
}

var console = new ConsoleOutput();
options.Output = console.Write;

using var stop = new CancellationTokenSource();
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);

LocalPlatform platform;
try
{
    platform = await LocalPlatform.StartAsync(options, stop.Token);
}
catch (OperationCanceledException)
{
    return 130;
}
catch (Exception ex) when (ex is not OperationCanceledException)
{
    console.Write(new OutputLine(LocalPlatform.HostSource, $"could not start the platform: {ex.Message}", OutputKind.Error));
    return 1;
}

await using (platform)
{
    foreach (var endpoint in platform.Endpoints)
    {
        console.Write(new OutputLine(LocalPlatform.HostSource, $"{endpoint.Name,-15} {endpoint.Address}", OutputKind.Host));
    }

    console.Write(new OutputLine(LocalPlatform.HostSource, $"gateway admin key: {platform.Secrets.PathOf(GoblinAspire.ServiceDefaults.PlatformSecrets.GatewayAdminKey.Parameter)}", OutputKind.Host));
    console.Write(new OutputLine(LocalPlatform.HostSource, $"ready: chat with model '{GoblinAspire.ServiceDefaults.PlatformResources.ChatModel}' at {platform.Endpoints[0].Address}/v1/chat/completions; Ctrl-C stops everything", OutputKind.Host));
    try
    {
        await Task.Delay(Timeout.Infinite, stop.Token);
    }
    catch (OperationCanceledException)
    {
    }
}

return 0;

void Stop(PosixSignalContext context)
{
    // The host stops the children itself, in order; the runtime must not end the process first.
    context.Cancel = true;
    stop.Cancel();
}

static void Parse(string[] args, LocalPlatformOptions options)
{
    for (var i = 0; i < args.Length; i++)
    {
        string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
        int Number(int min, int max)
        {
            var name = args[i];
            var text = Value();
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
                ? n
                : throw new ArgumentException($"{name} takes a number from {min} to {max}, not '{text}'");
        }

        switch (args[i])
        {
            case "--data":
                options.DataDirectory = Value();
                break;
            case "--fresh":
                options.Fresh = true;
                break;
            case "--model":
                options.ModelPath = Value();
                break;
            case "--port-base":
                var portBase = Number(0, 65_000);
                options.PortBase = portBase == 0 ? null : portBase;
                break;
            case "--gateway-replicas":
                options.GatewayReplicas = Number(1, 16);
                break;
            case "--otlp-endpoint":
                var text = Value();
                options.Telemetry = Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
                    ? new TelemetryExport(uri)
                    : throw new ArgumentException($"--otlp-endpoint takes an http(s) URL, not '{text}'");
                break;
            default:
                throw new ArgumentException($"unknown option '{args[i]}'");
        }
    }
}

/// <summary>Every line with its source's prefix, in a colour per source on a terminal; the host's errors on stderr.</summary>
internal sealed class ConsoleOutput
{
    private static readonly ConsoleColor[] Palette = [ConsoleColor.Cyan, ConsoleColor.Green, ConsoleColor.Magenta, ConsoleColor.Yellow, ConsoleColor.Blue, ConsoleColor.DarkCyan, ConsoleColor.DarkGreen, ConsoleColor.DarkYellow];
    private readonly Dictionary<string, ConsoleColor> _colours = new(StringComparer.Ordinal);
    private readonly bool _colour = !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("NO_COLOR") is null;
    private readonly Lock _gate = new();

    public void Write(OutputLine line)
    {
        var prefix = $"[{line.Source}]".PadRight(17);
        lock (_gate)
        {
            var writer = line.Kind == OutputKind.Error && line.Source == LocalPlatform.HostSource ? Console.Error : Console.Out;
            if (_colour)
            {
                Console.ForegroundColor = line.Source == LocalPlatform.HostSource
                    ? (line.Kind == OutputKind.Error ? ConsoleColor.Red : ConsoleColor.White)
                    : ColourOf(line.Source);
                writer.Write(prefix);
                Console.ResetColor();
                writer.WriteLine(line.Text);
            }
            else
            {
                writer.WriteLine(prefix + line.Text);
            }
        }
    }

    private ConsoleColor ColourOf(string source)
    {
        if (!_colours.TryGetValue(source, out var colour))
        {
            colour = Palette[_colours.Count % Palette.Length];
            _colours[source] = colour;
        }

        return colour;
    }
}
