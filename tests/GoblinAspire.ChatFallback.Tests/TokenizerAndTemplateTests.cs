using GoblinAspire.ChatFallback.Chat;
using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Inference;
using GoblinAspire.ChatFallback.Tokenization;

namespace GoblinAspire.ChatFallback.Tests;

public sealed class TokenizerAndTemplateTests
{
    private static readonly Lazy<LlamaModel> Model = new(() => LlamaModel.Load(TestModels.Create(GgmlType.F32)));

    private static ITokenizer Tokenizer => Model.Value.Tokenizer;

    [Fact]
    public void Merges_follow_the_scores_and_spaces_become_the_word_marker()
    {
        var ids = Tokenizer.Encode("hello world", addBos: true, parseSpecial: false);
        Assert.Equal([Tokenizer.Bos, Tokenizer.Find("▁hello")!.Value, Tokenizer.Find("▁world")!.Value], ids);
        Assert.Equal(" hello world", Tokenizer.Decode(ids));
    }

    [Theory]
    [InlineData("hello world")]
    [InlineData("The assistant is testing: 42!")]
    [InlineData("café, naïve, 日本語 and 🦙")]
    [InlineData("tabs\tand\nnewlines")]
    [InlineData("")]
    public void Text_round_trips_through_byte_fallback(string text)
    {
        var ids = Tokenizer.Encode(text, addBos: false, parseSpecial: false);
        Assert.Equal(text.Length == 0 ? "" : " " + text, Tokenizer.Decode(ids));
        if (text.Contains("🦙", StringComparison.Ordinal))
        {
            // Four bytes, four byte tokens: the llama is not in the vocabulary.
            Assert.Contains(Tokenizer.Find("<0xF0>")!.Value, ids);
        }
    }

    [Fact]
    public void Special_tokens_in_text_become_their_ids_only_when_asked()
    {
        var parsed = Tokenizer.Encode("<|im_start|>user\nhi<|im_end|>", addBos: false, parseSpecial: true);
        Assert.Equal(Tokenizer.Find("<|im_start|>"), parsed[0]);
        Assert.Equal(Tokenizer.Find("<|im_end|>"), parsed[^1]);
        var literal = Tokenizer.Encode("<|im_start|>", addBos: false, parseSpecial: false);
        Assert.DoesNotContain(Tokenizer.Find("<|im_start|>")!.Value, literal);
        // Control tokens are not text; the text after one takes SentencePiece's space prefix, as in llama.cpp.
        Assert.Equal(" user\nhi", Tokenizer.Decode(parsed));
    }

    [Fact]
    public void Streaming_decoder_holds_back_unfinished_characters()
    {
        var ids = Tokenizer.Encode("日本", addBos: false, parseSpecial: false);
        var decoder = new TokenTextDecoder(Tokenizer);
        var pieces = ids.Select(decoder.Add).ToList();
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD', StringComparison.Ordinal));
        Assert.Equal(" 日本", string.Concat(pieces) + decoder.Flush());
    }

    [Fact]
    public void Templates_render_each_family_and_are_recognised_from_the_file()
    {
        ChatMessage[] messages = [new("system", "Be brief."), new("user", "Hi"), new("assistant", "Hello."), new("user", "Bye")];
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n", ChatTemplates.Render(ChatTemplateKind.ChatMl, messages, "</s>"));
        Assert.Equal("<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n<|user|>\nBye</s>\n<|assistant|>\n", ChatTemplates.Render(ChatTemplateKind.Zephyr, messages, "</s>"));
        Assert.Equal("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]", ChatTemplates.Render(ChatTemplateKind.Llama2, messages, "</s>"));

        Assert.Equal(ChatTemplateKind.ChatMl, ChatTemplates.Detect(TestModels.ChatMlTemplate, null));
        Assert.Equal(ChatTemplateKind.Zephyr, ChatTemplates.Detect("{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + eos_token }}", null));
        Assert.Equal(ChatTemplateKind.Llama2, ChatTemplates.Detect("{{ bos_token + '[INST] ' + content + ' [/INST]' }}", null));
        Assert.Equal(ChatTemplateKind.Llama2, ChatTemplates.Detect(TestModels.ChatMlTemplate, "llama2"));
        Assert.Throws<ArgumentException>(() => ChatTemplates.Detect(null, "jinja-of-my-own"));
    }

    [Fact]
    public void The_same_seed_gives_the_same_text_and_temperature_zero_is_greedy()
    {
        var model = Model.Value;
        var prompt = model.Tokenizer.Encode("hello", addBos: true, parseSpecial: false);
        string Run(SamplingOptions sampling)
        {
            var text = "";
            TextGenerator.Generate(model, new GenerationRequest(prompt, 20, sampling, []), 128, 2, piece => text += piece, CancellationToken.None);
            return text;
        }

        var seeded = new SamplingOptions(Temperature: 0.9f, TopP: 0.9f, TopK: 40, RepetitionPenalty: 1.1f, Seed: 1234);
        Assert.Equal(Run(seeded), Run(seeded));
        Assert.NotEqual(Run(seeded), Run(seeded with { Seed = 99 }));
        Assert.Equal(Run(new SamplingOptions(Temperature: 0)), Run(new SamplingOptions(Temperature: 0.5f, TopK: 1, Seed: 5)));
    }

    [Fact]
    public void Stop_sequences_cut_the_text_and_max_tokens_ends_with_length()
    {
        var model = Model.Value;
        var prompt = model.Tokenizer.Encode("hello", addBos: true, parseSpecial: false);
        var full = "";
        var result = TextGenerator.Generate(model, new GenerationRequest(prompt, 30, new SamplingOptions(Temperature: 0), []), 128, 2, piece => full += piece, CancellationToken.None);
        Assert.Equal("length", result.FinishReason);
        Assert.Equal(30, result.CompletionTokens);
        Assert.True(full.Length > 4);

        var stop = full.Substring(2, 2);
        var cut = "";
        var stopped = TextGenerator.Generate(model, new GenerationRequest(prompt, 30, new SamplingOptions(Temperature: 0), [stop]), 128, 2, piece => cut += piece, CancellationToken.None);
        Assert.Equal("stop", stopped.FinishReason);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], cut);
    }

    [Fact]
    public void A_cancelled_generation_stops_at_once()
    {
        var model = Model.Value;
        var prompt = model.Tokenizer.Encode("hello", addBos: true, parseSpecial: false);
        using var cancel = new CancellationTokenSource();
        var pieces = 0;
        Assert.Throws<OperationCanceledException>(() => TextGenerator.Generate(model, new GenerationRequest(prompt, 100, new SamplingOptions(Temperature: 0), []), 256, 2, _ =>
        {
            pieces++;
            cancel.Cancel();
        }, cancel.Token));
        Assert.True(pieces <= 2);
    }

    [Fact]
    public void A_prompt_longer_than_the_context_is_refused()
    {
        var model = Model.Value;
        var prompt = Enumerable.Repeat(model.Tokenizer.Bos, 300).ToList();
        Assert.Throws<ArgumentException>(() => TextGenerator.Generate(model, new GenerationRequest(prompt, 5, new SamplingOptions(), []), 256, 1, _ => { }, CancellationToken.None));
    }
}
