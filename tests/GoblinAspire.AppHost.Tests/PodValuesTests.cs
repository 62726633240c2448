using GoblinAspire.AppHost.Kubernetes;

namespace GoblinAspire.AppHost.Tests;

/// <summary>How Aspire's values become what a pod spec says, without an app: secrets by reference, literals kept literal.</summary>
public sealed class PodValuesTests
{
    [Fact]
    public async Task A_secret_inside_a_value_is_spliced_from_a_variable_that_reads_the_secret()
    {
        var password = new ParameterResource("db-password", _ => "the-real-value", secret: true);
        var values = new PodValues(CancellationToken.None);

        var rendered = await values.RenderAsync(ReferenceExpression.Create($"Host=db;Password={password}"));

        Assert.Equal("Host=db;Password=$(SECRET_DB_PASSWORD)", rendered);
        var variable = Assert.Single(values.SecretVariables);
        Assert.Equal("SECRET_DB_PASSWORD", variable.Name);
        Assert.Equal((PodValues.SecretName, "db-password"), (variable.ValueFrom.SecretKeyRef.Name, variable.ValueFrom.SecretKeyRef.Key));
        Assert.Equal(["db-password"], values.SecretKeys);
    }

    [Fact]
    public async Task A_secret_on_its_own_is_read_straight_from_the_secret()
    {
        var token = new ParameterResource("api-token", _ => "the-real-value", secret: true);
        var values = new PodValues(CancellationToken.None);

        var variable = await values.VariableAsync("Service__Token", token);

        Assert.Null(variable.Value);
        Assert.Equal("api-token", variable.ValueFrom.SecretKeyRef.Key);
        Assert.Empty(values.SecretVariables);
    }

    [Fact]
    public async Task Plain_parameters_give_their_value_and_literal_dollar_parentheses_stay_literal()
    {
        var flag = new ParameterResource("flag", _ => "0.65");
        var values = new PodValues(CancellationToken.None);

        Assert.Equal("0.65", await values.RenderAsync(flag));
        Assert.Equal("echo $$(date) 0.65", await values.RenderAsync(ReferenceExpression.Create($"echo $(date) {flag}")));
        Assert.Empty(values.SecretKeys);
    }

    [Fact]
    public async Task A_parameter_without_a_value_is_one_clear_error()
    {
        var missing = new ParameterResource("missing", _ => throw new MissingParameterValueException("no value"));

        var error = await Assert.ThrowsAsync<DistributedApplicationException>(() => new PodValues(CancellationToken.None).RenderAsync(missing));

        Assert.Contains("Parameters:missing", error.Message, StringComparison.Ordinal);
    }
}
