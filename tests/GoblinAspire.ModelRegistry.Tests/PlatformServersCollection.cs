using GoblinAspire.Testing;

namespace GoblinAspire.ModelRegistry.Tests;

[CollectionDefinition(PlatformServers.Collection)]
public sealed class PlatformServersCollection : ICollectionFixture<PlatformServers>;
