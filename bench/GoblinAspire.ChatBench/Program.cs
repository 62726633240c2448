// The C# engine's side of bench/chatfallback.sh.
//   model <tinyllama|qwen2.5-0.5b> <type> <path>     writes a random-weight model with that model's real shapes
//   decode <path> <threads> <prompt tokens> <tokens>  load (with the warm-up), batched prefill, time to first token,
//                                                     greedy decode, memory
using System.Diagnostics;
using System.Globalization;
using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Inference;

switch (args)
{
    case ["model", var shapeName, var typeName, var path]:
        var type = Enum.Parse<GgmlType>(typeName, ignoreCase: true);
        var writer = shapeName switch
        {
            // TinyLlama 1.1B: 2048 wide, 22 layers, 32 heads, 4 KV heads, FFN 5632, SentencePiece vocabulary of 32,000.
            "tinyllama" => SyntheticLlama.Writer(type, new LlamaShape(Dimension: 2048, Layers: 22, Heads: 32, KvHeads: 4, FeedForward: 5632, Context: 2048), seed: 11, vocabularySize: 32000),
            // Qwen2.5 0.5B: 896 wide, 24 layers, 14 heads, 2 KV heads, FFN 4864, byte-level BPE of 151,936, tied embeddings.
            "qwen2.5-0.5b" => SyntheticLlama.Family(SyntheticFamily.Qwen2, type, new LlamaShape(Dimension: 896, Layers: 24, Heads: 14, KvHeads: 2, FeedForward: 4864, Context: 2048), seed: 11, vocabularySize: 151936),
            _ => throw new ArgumentException($"unknown shape {shapeName} (tinyllama, qwen2.5-0.5b)"),
        };
        writer.Write(path);
        Console.WriteLine($"wrote {path} ({new FileInfo(path).Length / 1048576} MiB)");
        return 0;
    case ["decode", var path, var threadsText, var promptText, var generateText]:
        var threads = int.Parse(threadsText, CultureInfo.InvariantCulture);
        var promptTokens = int.Parse(promptText, CultureInfo.InvariantCulture);
        var generate = int.Parse(generateText, CultureInfo.InvariantCulture);
        var loading = Stopwatch.StartNew();
        var model = LlamaModel.Load(path);
        // As the service does at load (ModelLoader): the kernels are compiled before the first prompt.
        InferenceSession.WarmUp(model, threads);
        var load = loading.Elapsed.TotalSeconds;
        var session = new InferenceSession(model, 1024, threads);
        // The same prompt llama.cpp is fed (bench/llama-cpp/decode.mjs): id 1, then ids 100 + (7 i mod 1000).
        int[] prompt = [1, .. Enumerable.Range(0, promptTokens - 1).Select(i => 100 + (7 * i % 1000))];
        var clock = Stopwatch.StartNew();
        var logits = session.Prefill(prompt);
        var next = Array.IndexOf(logits, logits.Max());
        var firstToken = clock.Elapsed.TotalSeconds;
        clock.Restart();
        for (var i = 1; i < generate; i++)
        {
            logits = session.Forward(next);
            next = Array.IndexOf(logits, logits.Max());
        }

        var decode = clock.Elapsed.TotalSeconds;
        {
            using var process = Process.GetCurrentProcess();
            Console.WriteLine(FormattableString.Invariant($"engine=goblin prefill_tps={promptTokens / firstToken:F1} ttft_s={firstToken:F2} decode_tps={(generate - 1) / decode:F2} rss_mb={process.PeakWorkingSet64 / 1048576} load_s={load:F2}"));
        }

        return 0;
    default:
        Console.Error.WriteLine("usage: model <tinyllama|qwen2.5-0.5b> <type> <path> | decode <path> <threads> <prompt tokens> <tokens>");
        return 2;
}
