using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace GoblinAspire.ModelRegistry;

public sealed class ModelRegistryOptions
{
    public const string SectionName = "ModelRegistry";

    /// <summary>Folder of the local artifact store (the default backend).</summary>
    [Required]
    [MinLength(1)]
    public string ArtifactRoot { get; set; } = "data/artifacts";
}

[OptionsValidator]
public sealed partial class ModelRegistryOptionsValidator : IValidateOptions<ModelRegistryOptions>;
