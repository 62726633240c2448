using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace GoblinAspire.ChatFallback.Tests;

/// <summary>What llama.cpp answers for one model file: token ids, a greedy continuation, logits under teacher forcing.</summary>
public sealed record LlamaCppAnswer(List<int[]> Tokens, int[] Greedy, List<float[]> Logits);

/// <summary>
/// llama.cpp as the parity tests' reference: tests/llama-cpp-parity/reference.mjs on node-llama-cpp's prebuilt CPU
/// binaries. Missing node or a missing install is a failure that says what to run, never a skip.
/// </summary>
public static class LlamaCppReference
{
    public sealed record Prompt(string Text, bool Special);

    public static LlamaCppAnswer Ask(string model, int vocabulary, IReadOnlyList<Prompt> prompts, IReadOnlyList<int>? greedyPrompt = null, int greedyCount = 0, IReadOnlyList<int>? teacher = null)
    {
        var folder = Folder();
        var request = Path.Combine(Path.GetDirectoryName(model)!, "llama-cpp-request.json");
        using (var stream = File.Create(request))
        using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartObject();
            json.WriteString("model", model);
            json.WriteNumber("vocabulary", vocabulary);
            json.WriteNumber("threads", 2);
            json.WriteStartArray("prompts");
            foreach (var prompt in prompts)
            {
                json.WriteStartObject();
                json.WriteString("text", prompt.Text);
                json.WriteBoolean("special", prompt.Special);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            if (greedyPrompt is not null)
            {
                json.WriteStartObject("greedy");
                Ids(json, "prompt", greedyPrompt);
                json.WriteNumber("count", greedyCount);
                json.WriteEndObject();
            }

            if (teacher is not null)
            {
                Ids(json, "teacher", teacher);
            }

            json.WriteEndObject();
        }

        var start = new ProcessStartInfo("node", ["reference.mjs", request])
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("node did not start");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("The llama.cpp parity tests need Node.js (node on PATH).", ex);
        }

        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("llama.cpp (node reference.mjs) did not answer within 3 minutes");
            }

            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"node reference.mjs failed ({process.ExitCode}): {error.Result}");
            }

            using var answer = JsonDocument.Parse(output.Result);
            var root = answer.RootElement;
            return new LlamaCppAnswer(
                root.GetProperty("tokens").EnumerateArray().Select(t => t.EnumerateArray().Select(i => i.GetInt32()).ToArray()).ToList(),
                root.GetProperty("greedy").EnumerateArray().Select(i => i.GetInt32()).ToArray(),
                root.GetProperty("logits").EnumerateArray().Select(l => l.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.Number ? v.GetSingle() : float.NaN).ToArray()).ToList());
        }
    }

    private static void Ids(Utf8JsonWriter json, string name, IReadOnlyList<int> ids)
    {
        json.WriteStartArray(name);
        foreach (var id in ids)
        {
            json.WriteNumberValue(id);
        }

        json.WriteEndArray();
    }

    /// <summary>tests/llama-cpp-parity, found from the test binaries upwards, with node-llama-cpp installed in it.</summary>
    private static string Folder()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var folder = Path.Combine(directory.FullName, "tests", "llama-cpp-parity");
            if (File.Exists(Path.Combine(folder, "reference.mjs")))
            {
                if (!Directory.Exists(Path.Combine(folder, "node_modules", "node-llama-cpp")))
                {
                    throw new InvalidOperationException($"node-llama-cpp is not installed for the parity tests: run `npm install --no-audit --no-fund --omit=optional` in {folder} (test.sh does).");
                }

                return folder;
            }
        }

        throw new InvalidOperationException("tests/llama-cpp-parity/reference.mjs was not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Largest |a - b| over the logits, relative to the largest |b|.</summary>
    public static float RelativeMaxError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        float worst = 0, scale = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }

        return worst / scale;
    }

    /// <summary>Root-mean-square of a - b relative to that of b.</summary>
    public static float RelativeRms(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double error = 0, norm = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            error += (actual[i] - expected[i]) * (double)(actual[i] - expected[i]);
            norm += expected[i] * (double)expected[i];
        }

        return (float)Math.Sqrt(error / norm);
    }

    public static string Describe(IEnumerable<int> ids) => new StringBuilder().AppendJoin(' ', ids).ToString();
}
