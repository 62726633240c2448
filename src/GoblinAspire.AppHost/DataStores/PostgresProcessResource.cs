using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace GoblinAspire.AppHost.DataStores;

/// <summary>
/// The machine's PostgreSQL as an executable resource: a cluster made once by <c>initdb</c> with SCRAM password
/// authentication (never <c>trust</c>), listening on loopback only, with connection strings in the formats of Aspire's
/// PostgreSQL container. As root it runs as the <c>postgres</c> user through <c>setpriv</c>, which execs rather than
/// forks, so the process the orchestrator stops is the server itself and nothing outlives it.
/// </summary>
public sealed class PostgresProcessResource(string name, string command, string dataDirectory, ParameterResource password, bool durable)
    : ExecutableResource(name, command, dataDirectory), IResourceWithConnectionString
{
    public const string PrimaryEndpointName = "tcp";
    public const string Superuser = "postgres";

    private EndpointReference? _primaryEndpoint;

    public ParameterResource PasswordParameter { get; } = password;

    public bool Durable { get; } = durable;

    public string ClusterDirectory => Path.Combine(WorkingDirectory, "data");

    public EndpointReference PrimaryEndpoint => _primaryEndpoint ??= new(this, PrimaryEndpointName);

    /// <summary>The databases, created once the server is ready.</summary>
    public List<PostgresProcessDatabaseResource> Databases { get; } = [];

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host={PrimaryEndpoint.Property(EndpointProperty.Host)};Port={PrimaryEndpoint.Property(EndpointProperty.Port)};Username={Superuser};Password={PasswordParameter}");
}

/// <summary>A database of a <see cref="PostgresProcessResource"/>: the server's connection string with <c>Database=</c>.</summary>
public sealed class PostgresProcessDatabaseResource(string name, string databaseName, PostgresProcessResource parent)
    : Resource(name), IResourceWithParent<PostgresProcessResource>, IResourceWithConnectionString
{
    public PostgresProcessResource Parent { get; } = parent;

    public string DatabaseName { get; } = databaseName;

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create($"{Parent};Database={DatabaseName}");
}

public static class PostgresProcessExtensions
{
    /// <summary>The unprivileged user PostgreSQL runs as when the AppHost runs as root (it refuses to run as root).</summary>
    private const string ServiceUser = "postgres";

    private static bool IsRoot => Environment.UserName == "root";

    public static IResourceBuilder<PostgresProcessResource> AddPostgresServer(this IDistributedApplicationBuilder builder, string name, IResourceBuilder<ParameterResource> password, string dataDirectory, bool durable)
    {
        var postgres = ServerBinaries.Postgres("postgres");
        var server = new PostgresProcessResource(name, IsRoot ? ServerBinaries.FindOnPath("setpriv") ?? "/usr/bin/setpriv" : postgres, Path.Combine(dataDirectory, name), password.Resource, durable);
        var healthCheck = $"{name}_check";
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(healthCheck, _ => new SelectOne(server, server.ConnectionStringExpression), failureStatus: null, tags: null));
        return builder.AddResource(server)
            .WithEndpoint(name: PostgresProcessResource.PrimaryEndpointName, scheme: "tcp")
            .WithArgs(context =>
            {
                if (IsRoot)
                {
                    context.Args.Add($"--reuid={ServiceUser}");
                    context.Args.Add($"--regid={ServiceUser}");
                    context.Args.Add("--init-groups");
                    context.Args.Add("--");
                    context.Args.Add(postgres);
                }

                context.Args.Add("-D");
                context.Args.Add(server.ClusterDirectory);
                context.Args.Add("-p");
                context.Args.Add(server.PrimaryEndpoint.Property(EndpointProperty.TargetPort));
                // Loopback only, and no Unix socket: every client uses TCP with a password.
                foreach (var setting in (string[])["listen_addresses=127.0.0.1", "unix_socket_directories=", "max_connections=300", .. durable ? Array.Empty<string>() : Fast])
                {
                    context.Args.Add("-c");
                    context.Args.Add(setting);
                }
            })
            .OnBeforeResourceStarted((resource, @event, cancellationToken) =>
                InitializeClusterAsync(resource, @event.Services.GetRequiredService<ResourceLoggerService>().GetLogger(resource), cancellationToken))
            .OnResourceReady(async (resource, @event, cancellationToken) =>
            {
                // The databases have no process of their own: they run once they exist on a server that is ready.
                var notifications = @event.Services.GetRequiredService<ResourceNotificationService>();
                var logs = @event.Services.GetRequiredService<ResourceLoggerService>();
                foreach (var database in resource.Databases)
                {
                    try
                    {
                        await CreateDatabaseAsync(resource, database.DatabaseName, cancellationToken);
                        await notifications.PublishUpdateAsync(database, s => s with { State = KnownResourceStates.Running, StartTimeStamp = DateTime.UtcNow });
                    }
                    catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
                    {
                        // Said where it shows, and what waits for the database fails fast instead of waiting forever.
                        logs.GetLogger(database).LogError("Creating database {Database} failed: {Error}", database.DatabaseName, ex.Message);
                        await notifications.PublishUpdateAsync(database, s => s with { State = KnownResourceStates.FailedToStart });
                    }
                }
            })
            .WithHealthCheck(healthCheck);
    }

    public static IResourceBuilder<PostgresProcessDatabaseResource> AddDatabase(this IResourceBuilder<PostgresProcessResource> server, string name, string? databaseName = null)
    {
        var database = new PostgresProcessDatabaseResource(name, databaseName ?? name, server.Resource);
        server.Resource.Databases.Add(database);
        var healthCheck = $"{name}_check";
        server.ApplicationBuilder.Services.AddHealthChecks().Add(new HealthCheckRegistration(healthCheck, _ => new SelectOne(database, database.ConnectionStringExpression), failureStatus: null, tags: null));
        return server.ApplicationBuilder.AddResource(database)
            .WithInitialState(new CustomResourceSnapshot
            {
                ResourceType = "PostgresDatabase",
                State = KnownResourceStates.Waiting,
                Properties = [new(CustomResourceKnownProperties.Source, database.DatabaseName)],
            })
            .WithHealthCheck(healthCheck);
    }

    /// <summary>Settings for throwaway clusters (tests): speed over durability.</summary>
    private static readonly string[] Fast = ["fsync=off", "synchronous_commit=off", "full_page_writes=off"];

    /// <summary>Runs <c>initdb</c> when the data folder holds no cluster yet.</summary>
    private static async Task InitializeClusterAsync(PostgresProcessResource server, ILogger log, CancellationToken cancellationToken)
    {
        if (File.Exists(Path.Combine(server.ClusterDirectory, "PG_VERSION")))
        {
            return;
        }

        Directory.CreateDirectory(server.WorkingDirectory);
        if (IsRoot)
        {
            await RunAsync("chown", [$"{ServiceUser}:{ServiceUser}", server.WorkingDirectory], log, cancellationToken);
        }

        // The password reaches initdb in a file only the server's user can read, removed straight after: never on a
        // command line. (Standard input would do, but a pipe made by root cannot be reopened by the postgres user.)
        var passwordFile = Path.Combine(server.WorkingDirectory, ".initdb-password");
        await PrivateFile.WriteAsync(passwordFile, await server.PasswordParameter.GetValueAsync(cancellationToken) ?? string.Empty, cancellationToken);
        try
        {
            string[] initdb = [ServerBinaries.Postgres("initdb"), "-D", server.ClusterDirectory, "-U", PostgresProcessResource.Superuser, $"--pwfile={passwordFile}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", .. server.Durable ? Array.Empty<string>() : ["--no-sync"]];
            if (IsRoot)
            {
                await RunAsync("chown", [$"{ServiceUser}:{ServiceUser}", passwordFile], log, cancellationToken);
                await RunAsync(ServerBinaries.FindOnPath("setpriv") ?? "/usr/bin/setpriv", [$"--reuid={ServiceUser}", $"--regid={ServiceUser}", "--init-groups", "--", .. initdb], log, cancellationToken);
            }
            else
            {
                await RunAsync(initdb[0], initdb[1..], log, cancellationToken);
            }
        }
        finally
        {
            File.Delete(passwordFile);
        }
    }

    private static async Task RunAsync(string command, IEnumerable<string> arguments, ILogger log, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(command, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start) ?? throw new DistributedApplicationException($"{command} did not start.");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        foreach (var line in ((await output) + (await errors)).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            log.LogInformation("{Line}", line);
        }

        if (process.ExitCode != 0)
        {
            throw new DistributedApplicationException($"{Path.GetFileName(command)} exited with code {process.ExitCode.ToString(CultureInfo.InvariantCulture)}: {(await errors).Trim()}");
        }
    }

    private static async Task CreateDatabaseAsync(PostgresProcessResource server, string database, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(await server.ConnectionStringExpression.GetValueAsync(cancellationToken) + ";Pooling=false");
        await connection.OpenAsync(cancellationToken);
        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", connection) { Parameters = { new() { Value = database } } };
        if (await exists.ExecuteScalarAsync(cancellationToken) is not null)
        {
            return;
        }

        try
        {
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", connection);
            await create.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.DuplicateDatabase)
        {
            // Created between the check and the CREATE: what was wanted.
        }
    }

    /// <summary>Healthy once a <c>SELECT 1</c> succeeds with the resource's own connection string.</summary>
    private sealed class SelectOne(IResource resource, ReferenceExpression connectionString) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                await using var connection = new NpgsqlConnection(await connectionString.GetValueAsync(cancellationToken) + ";Pooling=false;Timeout=3");
                await connection.OpenAsync(cancellationToken);
                await using var command = new NpgsqlCommand("SELECT 1", connection);
                await command.ExecuteScalarAsync(cancellationToken);
                return HealthCheckResult.Healthy();
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or TimeoutException)
            {
                return HealthCheckResult.Unhealthy($"{resource.Name}: {ex.Message}");
            }
        }
    }
}
