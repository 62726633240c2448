// The C# engine's side of bench/chatfallback.sh.
//   model <Q8_0|Q4_0> <path>                          writes a random-weight model with TinyLlama 1.1B's shapes
//   decode <path> <threads> <prompt tokens> <tokens>  prefill and greedy decode speed, resident memory
using System.Diagnostics;
using System.Globalization;
using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Inference;

switch (args)
{
    case ["model", var type, var path]:
        var shape = new LlamaShape(Dimension: 2048, Layers: 22, Heads: 32, KvHeads: 4, FeedForward: 5632, Context: 2048);
        SyntheticLlama.Writer(Enum.Parse<GgmlType>(type, ignoreCase: true), shape, seed: 11, vocabularySize: 32000).Write(path);
        Console.WriteLine($"wrote {path} ({new FileInfo(path).Length / 1048576} MiB)");
        return 0;
    case ["decode", var path, var threadsText, var promptText, var generateText]:
        var threads = int.Parse(threadsText, CultureInfo.InvariantCulture);
        var promptTokens = int.Parse(promptText, CultureInfo.InvariantCulture);
        var generate = int.Parse(generateText, CultureInfo.InvariantCulture);
        var model = LlamaModel.Load(path);
        var session = new InferenceSession(model, 1024, threads);
        int[] prompt = [1, .. Enumerable.Range(0, promptTokens - 1).Select(i => 100 + (7 * i % 1000))];
        var clock = Stopwatch.StartNew();
        float[] logits = [];
        foreach (var token in prompt)
        {
            logits = session.Forward(token);
        }

        var next = Array.IndexOf(logits, logits.Max());
        var prefill = clock.Elapsed.TotalSeconds;
        clock.Restart();
        for (var i = 1; i < generate; i++)
        {
            logits = session.Forward(next);
            next = Array.IndexOf(logits, logits.Max());
        }

        var decode = clock.Elapsed.TotalSeconds;
        {
            using var process = Process.GetCurrentProcess();
            Console.WriteLine(FormattableString.Invariant($"engine=goblin prefill_tps={promptTokens / prefill:F1} decode_tps={(generate - 1) / decode:F2} rss_mb={process.PeakWorkingSet64 / 1048576}"));
        }

        return 0;
    default:
        Console.Error.WriteLine("usage: model <Q8_0|Q4_0> <path> | decode <path> <threads> <prompt tokens> <tokens>");
        return 2;
}
