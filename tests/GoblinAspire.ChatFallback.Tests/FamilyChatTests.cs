using System.ClientModel;
using GoblinAspire.ChatFallback.Chat;
using Message = GoblinAspire.ChatFallback.Chat.ChatMessage;
using GoblinAspire.ChatFallback.Gguf;
using GoblinAspire.ChatFallback.Inference;
using GoblinAspire.Testing;
using OpenAI;
using OpenAI.Chat;

namespace GoblinAspire.ChatFallback.Tests;

/// <summary>Each family's file loads in the service and answers the official OpenAI SDK through its own chat template.</summary>
public sealed class FamilyChatTests
{
    public static TheoryData<SyntheticFamily, ChatTemplateKind> Families => new()
    {
        { SyntheticFamily.Qwen2, ChatTemplateKind.ChatMl },
        { SyntheticFamily.Qwen3, ChatTemplateKind.ChatMl },
        { SyntheticFamily.Llama3, ChatTemplateKind.Llama3 },
        { SyntheticFamily.SmolLm, ChatTemplateKind.SmolLm },
    };

    [Theory]
    [MemberData(nameof(Families))]
    public async Task A_family_model_answers_the_openai_sdk_with_its_own_template(SyntheticFamily family, ChatTemplateKind expected)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("goblin-family-").FullName, $"{family}.gguf".ToLowerInvariant());
        SyntheticLlama.Family(family, GgmlType.Q8_0, LlamaCppParityTests.ShapeOf(family), seed: 3).Write(path);
        var model = LlamaModel.Load(path);
        Assert.Equal(expected, ChatTemplates.Detect(model.ChatTemplate, null));

        await using var host = await ChatApiTests.StartAsync(new() { ["ChatFallback__ModelPath"] = path });
        await ChatApiTests.ModelLoadedAsync(host.Client, TimeSpan.FromSeconds(30));
        var client = new ChatClient(model.Name, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(host.BaseAddress, "/v1") });
        OpenAI.Chat.ChatMessage[] messages = [new UserChatMessage("What's 2 + 2?")];
        ChatCompletion answer = await client.CompleteChatAsync(messages, new ChatCompletionOptions { MaxOutputTokenCount = 6, Temperature = 0 });

        Assert.Equal(ChatMessageRole.Assistant, answer.Role);
        Assert.Contains(answer.FinishReason, new[] { ChatFinishReason.Stop, ChatFinishReason.Length });
        Assert.InRange(answer.Usage.OutputTokenCount, 1, 6);
        // The prompt the service counted is this family's template, BOS as the file's add_bos_token says.
        var rendered = ChatTemplates.Render(expected, [new Message("user", "What's 2 + 2?")], model.Tokenizer.Piece(model.Tokenizer.Eos));
        Assert.Equal(model.Tokenizer.Encode(rendered, model.Tokenizer.AddBos, parseSpecial: true).Count, answer.Usage.InputTokenCount);
        Assert.NotEqual(
            model.Tokenizer.Encode(ChatTemplates.Render(expected == ChatTemplateKind.ChatMl ? ChatTemplateKind.Llama3 : ChatTemplateKind.ChatMl, [new Message("user", "What's 2 + 2?")], "</s>"), model.Tokenizer.AddBos, parseSpecial: true).Count,
            answer.Usage.InputTokenCount);
    }

    [Fact]
    public void Llama3_and_smollm_templates_render_as_their_jinja_does_and_unknown_ones_fall_back_to_chatml()
    {
        Message[] messages = [new("system", "Be brief."), new("user", " Hi "), new("assistant", "Hello."), new("user", "Bye")];
        Assert.Equal(
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            ChatTemplates.Render(ChatTemplateKind.Llama3, messages, "<|eot_id|>"));
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            ChatTemplates.Render(ChatTemplateKind.SmolLm, [new("user", "Hi")], "<|im_end|>"));
        Assert.StartsWith("<|im_start|>system\nBe brief.<|im_end|>", ChatTemplates.Render(ChatTemplateKind.SmolLm, messages, "<|im_end|>"), StringComparison.Ordinal);
        Assert.Equal(ChatTemplateKind.Llama3, ChatTemplates.Detect(SyntheticLlama.Llama3Template, null));
        Assert.Equal(ChatTemplateKind.SmolLm, ChatTemplates.Detect(SyntheticLlama.SmolLmTemplate, null));
        var unknown = ChatTemplates.Choose("{{ messages | my_own_format }}", null);
        Assert.Equal(ChatTemplateKind.ChatMl, unknown.Kind);
        Assert.Contains("not one this service knows", unknown.Reason, StringComparison.Ordinal);
        Assert.Equal(["<|eot_id|>"], ChatTemplates.TurnEnds(ChatTemplateKind.Llama3));
    }

    [Fact]
    public void Every_end_of_turn_token_ends_a_generation()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("goblin-family-").FullName, "qwen.gguf");
        SyntheticLlama.Family(SyntheticFamily.Qwen2, GgmlType.F32).Write(path);
        var tokenizer = LlamaModel.Load(path).Tokenizer;
        Assert.True(tokenizer.IsEndOfGeneration(tokenizer.Find("<|im_end|>")!.Value));
        Assert.True(tokenizer.IsEndOfGeneration(tokenizer.Find("<|endoftext|>")!.Value));
        Assert.False(tokenizer.IsEndOfGeneration(tokenizer.Find("<|im_start|>")!.Value));
        Assert.False(tokenizer.AddBos);

        SyntheticLlama.Family(SyntheticFamily.Llama3, GgmlType.F32).Write(path);
        var llama3 = LlamaModel.Load(path);
        Assert.True(llama3.Tokenizer.IsEndOfGeneration(llama3.Tokenizer.Find("<|eot_id|>")!.Value));
        Assert.True(llama3.Tokenizer.IsEndOfGeneration(llama3.Tokenizer.Find("<|end_of_text|>")!.Value));
        Assert.True(llama3.Tokenizer.AddBos);
        Assert.Equal(llama3.Tokenizer.Find("<|begin_of_text|>"), llama3.Tokenizer.Encode("hi", addBos: true, parseSpecial: false)[0]);
        Assert.NotNull(llama3.RopeFactors);
        Assert.Same(llama3.Embedding, llama3.Output);
    }
}
