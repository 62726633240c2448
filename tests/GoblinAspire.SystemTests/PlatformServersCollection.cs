using GoblinAspire.Testing;

namespace GoblinAspire.SystemTests;

[CollectionDefinition(PlatformServers.Collection)]
public sealed class PlatformServersCollection : ICollectionFixture<PlatformServers>;
