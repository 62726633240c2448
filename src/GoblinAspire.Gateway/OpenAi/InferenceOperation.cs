namespace GoblinAspire.Gateway.OpenAi;

public enum InferenceOperation
{
    Chat,
    Completions,
    Embeddings,
}

public static class InferenceOperationNames
{
    /// <summary>The OpenTelemetry GenAI <c>gen_ai.operation.name</c> values.</summary>
    public static string OperationName(this InferenceOperation operation) => operation switch
    {
        InferenceOperation.Chat => "chat",
        InferenceOperation.Completions => "text_completion",
        _ => "embeddings",
    };

    public static string Capability(this InferenceOperation operation) => operation switch
    {
        InferenceOperation.Chat => ModelCapabilities.Chat,
        InferenceOperation.Completions => ModelCapabilities.Completions,
        _ => ModelCapabilities.Embeddings,
    };
}
