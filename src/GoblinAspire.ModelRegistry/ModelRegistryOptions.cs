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

    /// <summary>The <c>{org}</c> of the object layout <c>models/{org}/{model_name}/{version}/{artifact}</c>.</summary>
    [Required]
    [RegularExpression(@"^[a-z0-9][a-z0-9_-]{0,62}$")]
    public string Organization { get; set; } = "goblin";
}

[OptionsValidator]
public sealed partial class ModelRegistryOptionsValidator : IValidateOptions<ModelRegistryOptions>;
