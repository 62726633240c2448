using GoblinAspire.Testing;

namespace GoblinAspire.TrainingWorker.Tests;

[CollectionDefinition(PlatformServers.Collection)]
public sealed class PlatformServersCollection : ICollectionFixture<PlatformServers>;
