using GoblinAspire.Testing;

namespace GoblinAspire.Gateway.Tests;

[CollectionDefinition(PlatformServers.Collection)]
public sealed class PlatformServersCollection : ICollectionFixture<PlatformServers>;
