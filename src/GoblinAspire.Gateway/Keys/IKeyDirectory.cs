namespace GoblinAspire.Gateway.Keys;

/// <summary>Where virtual keys are looked up by their secret (PostgreSQL in the service).</summary>
public interface IKeyDirectory
{
    Task<VirtualKey?> FindBySecretAsync(string secret, CancellationToken cancellationToken);
}
