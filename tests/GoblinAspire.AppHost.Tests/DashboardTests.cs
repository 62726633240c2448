using GoblinAspire.AppHost.Tests.Platform;
using GoblinAspire.ServiceDefaults;
using GoblinAspire.Testing;
using Microsoft.Playwright;

namespace GoblinAspire.AppHost.Tests;

/// <summary>
/// The Aspire dashboard as a platform engineer sees it, in Debian's Chromium driven by Playwright: log in with the
/// token, and every resource is Running and healthy. The screenshot lands in TestResults/ (docs/images keeps one).
/// </summary>
[Collection(WholePlatformCollection.Name)]
public sealed class DashboardTests(ChatPlatform platform) : IClassFixture<ChatPlatform>
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task The_dashboard_logs_in_with_the_token_and_shows_every_resource_running_and_healthy()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: install Debian's chromium package (./test.sh does).");
        using (var healthy = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            foreach (var resource in ExpectedResources)
            {
                await platform.App.ResourceNotifications.WaitForResourceHealthyAsync(resource, healthy.Token);
            }
        }

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            // As root in a sandbox-less container, with nothing reaching outside loopback.
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1600, Height = 1000 } });
        var login = await platform.App.GetDashboardUrlAsync();
        Assert.Contains("/login?t=", login.AbsoluteUri, StringComparison.Ordinal);
        await page.GotoAsync(login.AbsoluteUri);

        // The resources page lists each resource with its state; health shows as a warning icon beside the state.
        // Reloaded on every try: a page that rendered before the resource stream connected is not left stale.
        string text = "";
        try
        {
            await Eventually.HoldsAsync(async () =>
            {
                await page.WaitForTimeoutAsync(1000);
                text = await page.InnerTextAsync("body");
                if (ExpectedResources.All(r => text.Contains(r, StringComparison.Ordinal)) && text.Contains("Running", StringComparison.Ordinal))
                {
                    return true;
                }

                await page.GotoAsync(new Uri(login, "/").AbsoluteUri);
                return false;
            }, TimeSpan.FromSeconds(120), "the resources page listing every resource");
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException($"{ex.Message} The page at {page.Url} said:\n{text}", ex);
        }

        Assert.DoesNotContain("Unhealthy", text, StringComparison.Ordinal);
        Assert.DoesNotContain("FailedToStart", text, StringComparison.Ordinal);
        var rows = await page.Locator("fluent-data-grid-row, [role=row]").AllInnerTextsAsync();
        foreach (var resource in ExpectedResources)
        {
            var row = rows.FirstOrDefault(r => r.Contains(resource, StringComparison.Ordinal));
            Assert.True(row is not null && row.Contains("Running", StringComparison.Ordinal), $"{resource}: {row ?? "no row"}\n{text}");
        }

        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Results(), "dashboard.png"), FullPage = true });

        // One chat request is one trace across the gateway and the ChatFallback, in the dashboard's trace list.
        using (var gateway = platform.Client(PlatformResources.Gateway, platform.DevelopmentKey))
        using (var chat = await gateway.PostAsync("/v1/chat/completions", PlatformFixture.Json("""{"model":"goblin-chat","messages":[{"role":"user","content":"trace me"}],"max_tokens":2}""")))
        {
            Assert.True(chat.IsSuccessStatusCode, await chat.Content.ReadAsStringAsync());
        }

        var traces = new Uri(login, "/traces").AbsoluteUri;
        IReadOnlyList<string> traceRows = [];
        await Eventually.HoldsAsync(async () =>
        {
            await page.GotoAsync(traces);
            await page.WaitForTimeoutAsync(1000);
            traceRows = await page.Locator("fluent-data-grid-row, [role=row]").AllInnerTextsAsync();
            return traceRows.Any(r => r.Contains("/v1/chat/completions", StringComparison.Ordinal) && r.Contains(PlatformResources.ChatFallback, StringComparison.Ordinal) && r.Contains(PlatformResources.Gateway, StringComparison.Ordinal));
        }, TimeSpan.FromSeconds(60), "a chat trace spanning the gateway and the ChatFallback");

        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Results(), "dashboard-traces.png") });
    }

    private static string Results() => Directory.CreateDirectory(Path.Combine(ServiceProcess.RepositoryRoot(), "TestResults")).FullName;

    private static IEnumerable<string> ExpectedResources =>
        [.. PlatformResources.Services, PlatformResources.Redis, PlatformResources.Postgres, PlatformResources.GatewayDatabase, PlatformResources.RegistryDatabase, PlatformResources.TrainingDatabase];
}
