namespace GoblinAspire.Gateway.OpenAi;

public enum InferenceOperation
{
    Chat,
    Completions,
    Embeddings,

    /// <summary>OpenAI's Responses API: served natively by some providers, translated to chat for the others.</summary>
    Responses,
}

public static class InferenceOperationNames
{
    /// <summary>The OpenTelemetry GenAI <c>gen_ai.operation.name</c> values.</summary>
    public static string OperationName(this InferenceOperation operation) => operation switch
    {
        InferenceOperation.Chat => "chat",
        InferenceOperation.Completions => "text_completion",
        InferenceOperation.Responses => "chat",
        _ => "embeddings",
    };

    public static string Capability(this InferenceOperation operation) => operation switch
    {
        InferenceOperation.Chat or InferenceOperation.Responses => ModelCapabilities.Chat,
        InferenceOperation.Completions => ModelCapabilities.Completions,
        _ => ModelCapabilities.Embeddings,
    };
}
