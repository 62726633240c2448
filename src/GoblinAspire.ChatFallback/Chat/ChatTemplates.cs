using System.Text;

namespace GoblinAspire.ChatFallback.Chat;

public sealed record ChatMessage(string Role, string Content);

public enum ChatTemplateKind
{
    ChatMl,
    Zephyr,
    Llama2,
    Llama3,

    /// <summary>ChatML with SmolLM2's own system message when the conversation brings none, as its template does.</summary>
    SmolLm,
}

/// <summary>Which template a model's chats use, and how it was chosen (for the log).</summary>
public sealed record ChatTemplateChoice(ChatTemplateKind Kind, string Reason);

/// <summary>
/// The chat formats of the common small-model families. Jinja is not evaluated: the family is recognised from
/// <c>tokenizer.chat_template</c> (or chosen in configuration), as llama.cpp does for its built-in templates.
/// </summary>
public static class ChatTemplates
{
    public const string SmolLmSystem = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

    public static ChatTemplateKind Detect(string? template, string? configured) => Choose(template, configured).Kind;

    /// <summary>
    /// The configured template, else the family recognised by llama.cpp's markers in <c>tokenizer.chat_template</c>
    /// (checked in llama.cpp's order), else ChatML.
    /// </summary>
    public static ChatTemplateChoice Choose(string? template, string? configured)
    {
        if (!string.IsNullOrEmpty(configured))
        {
            var kind = configured.ToLowerInvariant() switch
            {
                "chatml" => ChatTemplateKind.ChatMl,
                "zephyr" or "tinyllama" => ChatTemplateKind.Zephyr,
                "llama2" or "llama-2" => ChatTemplateKind.Llama2,
                "llama3" or "llama-3" => ChatTemplateKind.Llama3,
                "smollm" => ChatTemplateKind.SmolLm,
                _ => throw new ArgumentException($"unknown chat template '{configured}' (chatml, zephyr, llama2, llama3, smollm)", nameof(configured)),
            };
            return new(kind, "configured");
        }

        bool Has(string marker) => template!.Contains(marker, StringComparison.Ordinal);
        return template switch
        {
            null or "" => new(ChatTemplateKind.ChatMl, "the file has no chat template; ChatML"),
            _ when Has("<|im_start|>") && Has(SmolLmSystem) => new(ChatTemplateKind.SmolLm, "recognised by <|im_start|> and SmolLM's system message"),
            _ when Has("<|im_start|>") => new(ChatTemplateKind.ChatMl, "recognised by <|im_start|>"),
            _ when Has("[INST]") => new(ChatTemplateKind.Llama2, "recognised by [INST]"),
            _ when Has("<|user|>") => new(ChatTemplateKind.Zephyr, "recognised by <|user|>"),
            _ when Has("<|start_header_id|>") && Has("<|end_header_id|>") => new(ChatTemplateKind.Llama3, "recognised by <|start_header_id|> and <|end_header_id|>"),
            _ => new(ChatTemplateKind.ChatMl, "the file's chat template is not one this service knows; ChatML"),
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
            case ChatTemplateKind.ChatMl or ChatTemplateKind.SmolLm:
                if (kind == ChatTemplateKind.SmolLm && (messages.Count == 0 || messages[0].Role != "system"))
                {
                    prompt.Append("<|im_start|>system\n").Append(SmolLmSystem).Append("<|im_end|>\n");
                }

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
            case ChatTemplateKind.Llama3:
                // BOS (<|begin_of_text|>) comes from the tokenizer's add_bos_token, as in llama.cpp.
                foreach (var message in messages)
                {
                    prompt.Append("<|start_header_id|>").Append(message.Role).Append("<|end_header_id|>\n\n").Append(message.Content.Trim()).Append("<|eot_id|>");
                }

                prompt.Append("<|start_header_id|>assistant<|end_header_id|>\n\n");
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
        ChatTemplateKind.ChatMl or ChatTemplateKind.SmolLm => ["<|im_end|>"],
        ChatTemplateKind.Llama3 => ["<|eot_id|>"],
        ChatTemplateKind.Zephyr => ["<|user|>", "<|system|>"],
        _ => [],
    };
}
