using GoblinAspire.Testing;

namespace GoblinAspire.ServiceDefaults.Tests;

[CollectionDefinition(PlatformServers.Collection)]
public sealed class PlatformServersCollection : ICollectionFixture<PlatformServers>;
