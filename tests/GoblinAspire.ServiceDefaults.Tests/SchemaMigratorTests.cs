using GoblinAspire.ServiceDefaults.PostgreSql;
using GoblinAspire.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace GoblinAspire.ServiceDefaults.Tests;

[Collection(PlatformServers.Collection)]
public sealed class SchemaMigratorTests(PlatformServers servers)
{
    private static readonly IReadOnlyList<SchemaMigration> Migrations = SchemaMigrator.FromAssembly(typeof(SchemaMigratorTests).Assembly);

    [Fact]
    public void Migrations_are_read_from_embedded_resources_in_version_order()
    {
        Assert.Equal([1, 2], Migrations.Select(m => m.Version));
        Assert.Equal("create_widgets", Migrations[0].Name);
    }

    [Fact]
    public async Task Two_replicas_starting_at_once_apply_each_migration_exactly_once()
    {
        var connectionString = await servers.Postgres.CreateDatabaseAsync("migrate");
        await using var first = NpgsqlDataSource.Create(connectionString);
        await using var second = NpgsqlDataSource.Create(connectionString);

        var results = await Task.WhenAll(
            new SchemaMigrator(first, NullLogger<SchemaMigrator>.Instance).ApplyAsync(Migrations, CancellationToken.None),
            new SchemaMigrator(second, NullLogger<SchemaMigrator>.Instance).ApplyAsync(Migrations, CancellationToken.None));

        Assert.Equal([1, 2], results.SelectMany(r => r).Order());
        await using var count = first.CreateCommand("SELECT count(*) FROM widgets");
        Assert.Equal(1L, await count.ExecuteScalarAsync());

        var again = await new SchemaMigrator(first, NullLogger<SchemaMigrator>.Instance).ApplyAsync(Migrations, CancellationToken.None);
        Assert.Empty(again);
    }

    [Fact]
    public async Task A_failing_migration_leaves_the_schema_as_it_was()
    {
        var connectionString = await servers.Postgres.CreateDatabaseAsync("migrate");
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        var broken = Migrations.Append(new SchemaMigration(3, "broken", "ALTER TABLE widgets ADD COLUMN size int; SELECT no_such_function();")).ToList();

        await Assert.ThrowsAsync<PostgresException>(() => new SchemaMigrator(dataSource, NullLogger<SchemaMigrator>.Instance).ApplyAsync(broken, CancellationToken.None));

        await using var tables = dataSource.CreateCommand("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('widgets', 'schema_migrations')");
        Assert.Equal(0L, await tables.ExecuteScalarAsync());
        Assert.Equal([1, 2], await new SchemaMigrator(dataSource, NullLogger<SchemaMigrator>.Instance).ApplyAsync(Migrations, CancellationToken.None));
    }
}
