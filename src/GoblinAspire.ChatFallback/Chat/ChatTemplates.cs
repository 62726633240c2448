using System.Text;

namespace GoblinAspire.ChatFallback.Chat;

public sealed record ChatMessage(string Role, string Content);

public enum ChatTemplateKind
{
    ChatMl,
    Zephyr,
    Llama2,
}

/// <summary>
/// The chat formats of the common small-model families. Jinja is not evaluated: the family is recognised from
/// <c>tokenizer.chat_template</c> (or chosen in configuration), as llama.cpp does for its built-in templates.
/// </summary>
public static class ChatTemplates
{
    public static ChatTemplateKind Detect(string? template, string? configured)
    {
        if (!string.IsNullOrEmpty(configured))
        {
            return configured.ToLowerInvariant() switch
            {
                "chatml" => ChatTemplateKind.ChatMl,
                "zephyr" or "tinyllama" => ChatTemplateKind.Zephyr,
                "llama2" or "llama-2" => ChatTemplateKind.Llama2,
                _ => throw new ArgumentException($"unknown chat template '{configured}' (chatml, zephyr, llama2)", nameof(configured)),
            };
        }

        return template switch
        {
            not null when template.Contains("<|im_start|>", StringComparison.Ordinal) => ChatTemplateKind.ChatMl,
            not null when template.Contains("<|user|>", StringComparison.Ordinal) => ChatTemplateKind.Zephyr,
            not null when template.Contains("[INST]", StringComparison.Ordinal) => ChatTemplateKind.Llama2,
            _ => ChatTemplateKind.ChatMl,
        };
    }

    /// <summary>The prompt for <paramref name="messages"/>, ending where the assistant's answer starts.</summary>
    /// <param name="eos">The tokenizer's end-of-sequence text (<c>&lt;/s&gt;</c> in Llama vocabularies).</param>
    public static string Render(ChatTemplateKind kind, IReadOnlyList<ChatMessage> messages, string eos)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = new StringBuilder();
        switch (kind)
        {
            case ChatTemplateKind.ChatMl:
                foreach (var message in messages)
                {
                    prompt.Append("<|im_start|>").Append(message.Role).Append('\n').Append(message.Content).Append("<|im_end|>\n");
                }

                prompt.Append("<|im_start|>assistant\n");
                break;
            case ChatTemplateKind.Zephyr:
                foreach (var message in messages)
                {
                    prompt.Append("<|").Append(message.Role).Append("|>\n").Append(message.Content).Append(eos).Append('\n');
                }

                prompt.Append("<|assistant|>\n");
                break;
            case ChatTemplateKind.Llama2:
                var system = string.Join("\n", messages.Where(m => m.Role == "system").Select(m => m.Content));
                var first = true;
                foreach (var message in messages.Where(m => m.Role != "system"))
                {
                    if (message.Role == "assistant")
                    {
                        prompt.Append(' ').Append(message.Content).Append(' ').Append(eos);
                        continue;
                    }

                    prompt.Append("<s>[INST] ");
                    if (first && system.Length > 0)
                    {
                        prompt.Append("<<SYS>>\n").Append(system).Append("\n<</SYS>>\n\n");
                    }

                    prompt.Append(message.Content.Trim()).Append(" [/INST]");
                    first = false;
                }

                break;
        }

        return prompt.ToString();
    }

    /// <summary>Whether the rendered prompt carries its own BOS (so the tokenizer must not add one).</summary>
    public static bool IncludesBos(ChatTemplateKind kind) => kind == ChatTemplateKind.Llama2;

    /// <summary>Texts that end the assistant's turn besides the EOS token.</summary>
    public static IReadOnlyList<string> TurnEnds(ChatTemplateKind kind) => kind switch
    {
        ChatTemplateKind.ChatMl => ["<|im_end|>"],
        ChatTemplateKind.Zephyr => ["<|user|>", "<|system|>"],
        _ => [],
    };
}
