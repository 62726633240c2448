using System.Globalization;
using k8s.Models;

namespace GoblinAspire.AppHost.Kubernetes;

/// <summary>
/// Aspire's values (literals, endpoints, connection strings, parameters, conditional expressions) as one container of
/// a pod can say them. Endpoints become the Kubernetes Service of the resource that owns them; secret parameters
/// become variables from the platform's Secret, spliced where they are used with Kubernetes' own <c>$(VAR)</c>
/// expansion, so no secret value is ever in the output. Every resource a value points at is remembered, which is
/// what the network policies open.
/// </summary>
internal sealed class PodValues(CancellationToken cancellationToken)
{
    /// <summary>The Secret every secret parameter is a key of, named after the parameter.</summary>
    public const string SecretName = "goblinaspire-secrets";

    private readonly Dictionary<string, V1EnvVar> _secretVariables = new(StringComparer.Ordinal);

    /// <summary>The resources (their roots: a database's server) this container's values point at.</summary>
    public HashSet<IResource> Targets { get; } = [];

    /// <summary>The variables each secret that was spliced into a value comes from; they go first in the container's environment.</summary>
    public IReadOnlyCollection<V1EnvVar> SecretVariables => _secretVariables.Values;

    /// <summary>The parameter names of every secret the container uses.</summary>
    public HashSet<string> SecretKeys { get; } = new(StringComparer.Ordinal);

    public static V1EnvVar SecretVariable(string variable, string parameter, bool optional = false) => new()
    {
        Name = variable,
        ValueFrom = new V1EnvVarSource { SecretKeyRef = new V1SecretKeySelector { Name = SecretName, Key = parameter, Optional = optional ? true : null } },
    };

    /// <summary>An environment variable: a secret parameter on its own is read straight from the Secret.</summary>
    public async Task<V1EnvVar> VariableAsync(string name, object? value)
    {
        if (value is ParameterResource { Secret: true } secret)
        {
            SecretKeys.Add(secret.Name);
            return SecretVariable(name, secret.Name);
        }

        return new V1EnvVar { Name = name, Value = await RenderAsync(value) };
    }

    public async Task<string> RenderAsync(object? value)
    {
        switch (value)
        {
            case null:
                return "";
            case string text:
                return Escape(text);
            case ParameterResource parameter when parameter.Secret:
                SecretKeys.Add(parameter.Name);
                var variable = "SECRET_" + parameter.Name.ToUpperInvariant().Replace('-', '_');
                _secretVariables.TryAdd(parameter.Name, SecretVariable(variable, parameter.Name));
                return $"$({variable})";
            case ParameterResource parameter:
                try
                {
                    return Escape(await parameter.GetValueAsync(cancellationToken) ?? "");
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    throw new DistributedApplicationException($"Parameter '{parameter.Name}' has no value for the Kubernetes output: set Parameters:{parameter.Name}.", ex);
                }

            case ConnectionStringReference reference:
                return await RenderAsync(reference.Resource);
            case IResourceWithConnectionString resource:
                Targets.Add(Root(resource));
                return await RenderAsync(resource.ConnectionStringExpression);
            case EndpointReference endpoint:
                return Endpoint(endpoint, EndpointProperty.Url);
            case EndpointReferenceExpression expression:
                return Endpoint(expression.Endpoint, expression.Property);
            case ReferenceExpression { IsConditional: true } conditional:
                return await RenderAsync(conditional.Condition) == conditional.MatchValue
                    ? await RenderAsync(conditional.WhenTrue)
                    : await RenderAsync(conditional.WhenFalse);
            case ReferenceExpression expression:
                var parts = new object[expression.ValueProviders.Count];
                for (var i = 0; i < parts.Length; i++)
                {
                    var part = await RenderAsync(expression.ValueProviders[i]);
                    // A secret cannot be encoded where its value is never seen; generated secrets are URL-safe and the
                    // docs ask the same of given ones.
                    parts[i] = expression.StringFormats[i] == "uri" && expression.ValueProviders[i] is not ParameterResource { Secret: true }
                        ? Uri.EscapeDataString(part)
                        : part;
                }

                return string.Format(CultureInfo.InvariantCulture, Escape(expression.Format), parts);
            case IValueProvider and IManifestExpressionProvider other:
                throw new DistributedApplicationException($"'{other.ValueExpression}' ({other.GetType().Name}) has no Kubernetes form.");
            default:
                return Escape(Convert.ToString(value, CultureInfo.InvariantCulture) ?? "");
        }
    }

    private string Endpoint(EndpointReference endpoint, EndpointProperty property)
    {
        Targets.Add(Root(endpoint.Resource));
        var annotation = endpoint.EndpointAnnotation;
        var host = endpoint.Resource.Name;
        var port = ServicePort(endpoint.Resource, annotation).ToString(CultureInfo.InvariantCulture);
        return property switch
        {
            EndpointProperty.Url => $"{annotation.UriScheme}://{host}:{port}",
            EndpointProperty.Host or EndpointProperty.IPV4Host => host,
            EndpointProperty.Port or EndpointProperty.TargetPort => port,
            EndpointProperty.HostAndPort => $"{host}:{port}",
            EndpointProperty.Scheme => annotation.UriScheme,
            EndpointProperty.TlsEnabled => annotation.TlsEnabled ? bool.TrueString : bool.FalseString,
            _ => throw new DistributedApplicationException($"Endpoint property {property} of {host} has no Kubernetes form."),
        };
    }

    /// <summary>
    /// The port a resource's endpoint listens on in its pod, which its Service also uses: a project's endpoints have
    /// no port of their own outside run mode, and the .NET images listen on 8080.
    /// </summary>
    public static int ServicePort(IResource resource, EndpointAnnotation endpoint) =>
        endpoint.TargetPort ?? (resource is ProjectResource ? 8080 : endpoint.Port ?? throw new DistributedApplicationException($"Endpoint '{endpoint.Name}' of {resource.Name} has no port."));

    /// <summary>The resource a child (a database) lives in: its workload.</summary>
    public static IResource Root(IResource resource) => resource is IResourceWithParent child ? Root(child.Parent) : resource;

    /// <summary>Kubernetes expands <c>$(VAR)</c> in values; a literal one is written <c>$$(</c> so it stays literal.</summary>
    private static string Escape(string text) => text.Replace("$(", "$$(", StringComparison.Ordinal);
}
