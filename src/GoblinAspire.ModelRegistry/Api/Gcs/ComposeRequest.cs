using System.Text.Json;
using GoblinAspire.ModelRegistry.Objects;

namespace GoblinAspire.ModelRegistry.Api.Gcs;

/// <summary>
/// A compose request's body:
/// <c>{"sourceObjects":[{"name","generation","objectPreconditions":{"ifGenerationMatch"}}],"destination":{…}}</c>.
/// </summary>
public static class ComposeRequest
{
    /// <param name="destinationName">The object the URL names; a <c>destination.name</c> must agree with it.</param>
    public static (IReadOnlyList<ComposeSource> Sources, ObjectAttributes Attributes) Read(JsonElement json, string destinationName)
    {
        if (json.ValueKind != JsonValueKind.Object)
        {
            throw GcsException.Invalid("The compose request must be a JSON object.");
        }

        if (!json.TryGetProperty("sourceObjects", out var list) || list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
        {
            throw GcsException.Required("sourceObjects");
        }

        if (list.GetArrayLength() > ComposeSource.MaxSources)
        {
            throw GcsException.Invalid($"A compose takes at most {ComposeSource.MaxSources} source objects.");
        }

        var sources = new List<ComposeSource>();
        foreach (var item in list.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw GcsException.Invalid("Each of sourceObjects must be an object.");
            }

            long? match = null;
            if (item.TryGetProperty("objectPreconditions", out var preconditions) && preconditions.ValueKind != JsonValueKind.Null)
            {
                match = preconditions.ValueKind == JsonValueKind.Object
                    ? GcsRequest.Long(preconditions, "ifGenerationMatch")
                    : throw GcsException.Invalid("objectPreconditions must be an object.");
            }

            sources.Add(new ComposeSource(ObjectNames.Object(GcsRequest.Text(item, "name")), GcsRequest.Long(item, "generation"), match));
        }

        if (!json.TryGetProperty("destination", out var destination) || destination.ValueKind == JsonValueKind.Null)
        {
            return (sources, new ObjectAttributes());
        }

        var attributes = GcsRequest.Attributes(destination);
        if (GcsRequest.Text(destination, "name") is { } named && named != destinationName)
        {
            throw GcsException.Invalid("destination.name differs from the object named in the URL.");
        }

        return (sources, attributes);
    }
}
