#pragma warning disable OPENAI001 // The SDK marks its Responses client as evaluation-only; the wire API is what is tested.
using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using GoblinAspire.Gateway.Tests.StandIns;
using GoblinAspire.Testing;
using Npgsql;
using OpenAI.Responses;

namespace GoblinAspire.Gateway.Tests;

/// <summary>
/// The Responses API through the gateway with OpenAI's own .NET SDK: against a provider that speaks it natively
/// (passed through) and one that only speaks chat completions (translated both ways), whole and streamed.
/// </summary>
[Collection(PlatformServers.Collection)]
public sealed class ResponsesTests(PlatformServers servers) : IAsyncLifetime
{
    private readonly ResponsesStandIn _native = new(native: true);
    private readonly ResponsesStandIn _chatOnly = new(native: false);
    private TestWebHost _gateway = null!;
    private string _key = "";
    private string _keyId = "";

    public static TheoryData<string> Models => new() { "native", "chat" };

    public async Task InitializeAsync()
    {
        await _native.StartAsync();
        await _chatOnly.StartAsync();
        _gateway = await GatewayTestHost.StartAsync(new GatewayConfig(servers)
            .Set("Gateway__Access__RequireKeys", "true")
            .Set("Gateway__Access__AdminKey", AccessTests.AdminKey)
            .Provider("vllm", "openai", _native.Url, "native", extra: [("NativeResponses", "true"), ("Models__1__Name", "mixed"), ("Models__0__Capabilities__0", "chat"), ("Models__0__Capabilities__1", "completions"), ("Models__0__Capabilities__2", "streaming"), ("Models__0__Capabilities__3", "tools")])
            .Provider("chatonly", "openai", _chatOnly.Url, "chat", priority: 1, extra: [("Models__1__Name", "mixed")]));
        (_keyId, _key) = await AccessTests.CreateKeyAsync(_gateway.Client, new { team = "responses" });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _native.DisposeAsync();
        await _chatOnly.DisposeAsync();
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task The_sdk_creates_a_whole_response_and_reads_it_back(string model)
    {
        var client = Client(_key);
        ResponseResult response = await client.CreateResponseAsync(model, "hello there");

        Assert.Equal("echo: hello there", response.GetOutputText());
        Assert.Equal(ResponseStatus.Completed, response.Status);
        Assert.True(response.Usage.InputTokenCount > 0 && response.Usage.OutputTokenCount > 0);
        Assert.StartsWith("resp_", response.Id, StringComparison.Ordinal);
        Assert.Equal(model == "native" ? "/v1/responses" : "/v1/chat/completions", LastPost(model).Path);

        ResponseResult stored = await client.GetResponseAsync(response.Id);
        Assert.Equal(response.Id, stored.Id);
        Assert.Equal("echo: hello there", stored.GetOutputText());
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task The_sdk_streams_a_response_as_typed_events(string model)
    {
        var client = Client(_key);
        var text = new System.Text.StringBuilder();
        var sequence = new List<int>();
        ResponseResult? completed = null;
        await foreach (var update in await client.CreateResponseStreamingAsync(model, "hello streaming world"))
        {
            sequence.Add(update.SequenceNumber);
            switch (update)
            {
                case StreamingResponseOutputTextDeltaUpdate delta:
                    text.Append(delta.Delta);
                    break;
                case StreamingResponseCompletedUpdate done:
                    completed = done.Response;
                    break;
            }
        }

        Assert.Equal("echo: hello streaming world", text.ToString());
        Assert.NotNull(completed);
        Assert.Equal("echo: hello streaming world", completed.GetOutputText());
        Assert.Equal(Enumerable.Range(sequence[0], sequence.Count), sequence);
        ResponseResult stored = await client.GetResponseAsync(completed.Id);
        Assert.Equal("echo: hello streaming world", stored.GetOutputText());
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task A_function_call_round_trip_continues_with_previous_response_id(string model)
    {
        var client = Client(_key);
        var tool = ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}}}"""), strictModeEnabled: false, functionDescription: "Weather now");
        var first = new CreateResponseOptions(model, [ResponseItem.CreateUserMessageItem("What is the weather in Paris?")]) { Tools = { tool }, Instructions = "Use tools." };
        ResponseResult calling = await client.CreateResponseAsync(first);

        var call = Assert.IsType<FunctionCallResponseItem>(Assert.Single(calling.OutputItems));
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal(ResponsesStandIn.CallArguments, call.FunctionArguments.ToString());

        var second = new CreateResponseOptions(model, [ResponseItem.CreateFunctionCallOutputItem(call.CallId, "sunny")]) { Tools = { tool }, PreviousResponseId = calling.Id };
        ResponseResult answered = await client.CreateResponseAsync(second);

        Assert.Equal("The weather in Paris is sunny", answered.GetOutputText());
        Assert.Equal(calling.Id, answered.PreviousResponseId);
        // The provider saw the whole conversation, never an id it does not know.
        var sent = LastPost(model).Json;
        Assert.False(sent.TryGetProperty("previous_response_id", out _));
        if (model == "native")
        {
            Assert.Equal(["message", "function_call", "function_call_output"], sent.GetProperty("input").EnumerateArray().Select(i => i.GetProperty("type").GetString()));
        }
        else
        {
            var messages = sent.GetProperty("messages").EnumerateArray().ToList();
            Assert.Equal(["user", "assistant", "tool"], messages.Select(m => m.GetProperty("role").GetString()));
            Assert.Equal(call.CallId, messages[1].GetProperty("tool_calls")[0].GetProperty("id").GetString());
            Assert.Equal(call.CallId, messages[2].GetProperty("tool_call_id").GetString());
        }

        using var items = await SendAsync(HttpMethod.Get, $"/v1/responses/{answered.Id}/input_items?order=asc", _key);
        var list = JsonNode.Parse(await items.Content.ReadAsStringAsync())!;
        Assert.Equal(["message", "function_call", "function_call_output"], list["data"]!.AsArray().Select(i => (string?)i!["type"]));
        Assert.False((bool)list["has_more"]!);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task A_streamed_turn_continues_a_conversation(string model)
    {
        var client = Client(_key);
        ResponseResult first = await client.CreateResponseAsync(model, "first turn");
        ResponseResult? completed = null;
        await foreach (var update in await client.CreateResponseStreamingAsync(model, "second turn", first.Id))
        {
            if (update is StreamingResponseCompletedUpdate done)
            {
                completed = done.Response;
            }
        }

        Assert.Equal("echo: second turn", completed!.GetOutputText());
        Assert.Equal(first.Id, completed.PreviousResponseId);
        using var items = await SendAsync(HttpMethod.Get, $"/v1/responses/{completed.Id}/input_items?order=asc", _key);
        var texts = JsonNode.Parse(await items.Content.ReadAsStringAsync())!["data"]!.AsArray().Select(i => (string?)i!["content"]![0]!["text"]);
        Assert.Equal(["first turn", "echo: first turn", "second turn"], texts);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task A_streamed_function_call_sends_its_arguments_as_deltas(string model)
    {
        var client = Client(_key);
        var options = new CreateResponseOptions(model, [ResponseItem.CreateUserMessageItem("Weather?")])
        {
            Tools = { ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString("""{"type":"object"}"""), strictModeEnabled: null) },
            ToolChoice = ResponseToolChoice.CreateFunctionChoice("get_weather"),
            StreamingEnabled = true,
        };
        var deltas = new System.Text.StringBuilder();
        StreamingResponseFunctionCallArgumentsDoneUpdate? done = null;
        ResponseResult? completed = null;
        await foreach (var update in await client.CreateResponseStreamingAsync(options))
        {
            switch (update)
            {
                case StreamingResponseFunctionCallArgumentsDeltaUpdate delta:
                    deltas.Append(delta.Delta.ToString());
                    break;
                case StreamingResponseFunctionCallArgumentsDoneUpdate argumentsDone:
                    done = argumentsDone;
                    break;
                case StreamingResponseCompletedUpdate finished:
                    completed = finished.Response;
                    break;
            }
        }

        Assert.Equal(ResponsesStandIn.CallArguments, deltas.ToString());
        Assert.Equal(ResponsesStandIn.CallArguments, done!.FunctionArguments.ToString());
        var call = Assert.IsType<FunctionCallResponseItem>(Assert.Single(completed!.OutputItems));
        Assert.Equal("get_weather", call.FunctionName);
    }

    [Fact]
    public async Task The_translated_stream_is_openais_event_sequence()
    {
        using var response = await SendAsync(HttpMethod.Post, "/v1/responses", _key, """{"model":"chat","input":"one two","stream":true,"metadata":{"run":"7"}}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/event-stream", response.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
        var events = Events(await response.Content.ReadAsStringAsync());

        Assert.Equal(
            ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
             "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
             "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"],
            events.Select(e => e.Name));
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => (int)e.Data["sequence_number"]!));
        Assert.All(events, e => Assert.Equal(e.Name, (string?)e.Data["type"]));
        var final = events[^1].Data["response"]!;
        Assert.Equal("completed", (string?)final["status"]);
        Assert.Equal("7", (string?)final["metadata"]!["run"]);
        Assert.Equal(11, (int)final["usage"]!["input_tokens"]!);
        Assert.Equal(7, (int)final["usage"]!["output_tokens"]!);
        Assert.Equal("echo: one two", (string?)events[7].Data["text"]);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task A_length_stop_is_incomplete_with_its_reason(string model)
    {
        foreach (var stream in new[] { false, true })
        {
            using var response = await SendAsync(HttpMethod.Post, "/v1/responses", _key, $$"""{"model":"{{model}}","input":"a long answer","max_output_tokens":1,"stream":{{(stream ? "true" : "false")}}}""");
            var body = await response.Content.ReadAsStringAsync();
            (string Name, JsonObject Data) result = stream ? Events(body)[^1] : ("", JsonNode.Parse(body)!.AsObject());
            var final = stream ? result.Data["response"]! : result.Data;
            Assert.Equal(stream ? "response.incomplete" : "", result.Name);
            Assert.Equal("incomplete", (string?)final["status"]);
            Assert.Equal("max_output_tokens", (string?)final["incomplete_details"]!["reason"]);
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task A_stream_that_breaks_off_ends_with_response_failed_and_an_error_event(string model)
    {
        (model == "native" ? _native : _chatOnly).Script(Behaviour.BreakAfterFirstChunk);
        using var response = await SendAsync(HttpMethod.Post, "/v1/responses", _key, $$"""{"model":"{{model}}","input":"one two three","stream":true}""");
        var events = Events(await response.Content.ReadAsStringAsync());

        Assert.Equal("response.created", events[0].Name);
        Assert.Equal(["response.failed", "error"], events.TakeLast(2).Select(e => e.Name));
        var sequence = events.Select(e => (int)e.Data["sequence_number"]!).ToList();
        Assert.Equal(Enumerable.Range(0, sequence.Count), sequence);
        Assert.Equal("failed", (string?)events[^2].Data["response"]!["status"]);
    }

    [Fact]
    public async Task Text_format_tools_and_settings_are_translated_to_chat()
    {
        const string body = """
            {"model":"chat","instructions":"Be brief.","input":[{"role":"user","content":[{"type":"input_text","text":"Give JSON"}]}],
             "text":{"format":{"type":"json_schema","name":"answer","schema":{"type":"object"},"strict":true}},
             "max_output_tokens":50,"temperature":0.3,"top_p":0.9,"store":false,
             "tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"f"}}
            """;
        using var response = await SendAsync(HttpMethod.Post, "/v1/responses", _key, body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = LastPost("chat").Json;

        Assert.Equal("system", sent.GetProperty("messages")[0].GetProperty("role").GetString());
        Assert.Equal("Be brief.", sent.GetProperty("messages")[0].GetProperty("content").GetString());
        Assert.Equal("Give JSON", sent.GetProperty("messages")[1].GetProperty("content").GetString());
        Assert.Equal("json_schema", sent.GetProperty("response_format").GetProperty("type").GetString());
        Assert.Equal("answer", sent.GetProperty("response_format").GetProperty("json_schema").GetProperty("name").GetString());
        Assert.Equal(50, sent.GetProperty("max_tokens").GetInt32());
        Assert.Equal(0.3, sent.GetProperty("temperature").GetDouble());
        Assert.Equal(0.9, sent.GetProperty("top_p").GetDouble());
        Assert.Equal("f", sent.GetProperty("tools")[0].GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("f", sent.GetProperty("tool_choice").GetProperty("function").GetProperty("name").GetString());

        // store: false keeps nothing.
        var id = (string?)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["id"];
        using var get = await SendAsync(HttpMethod.Get, $"/v1/responses/{id}", _key);
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
    }

    [Fact]
    public async Task The_native_provider_gets_the_body_untouched_but_for_the_model()
    {
        const string body = """{"model":"native","input":"hi","reasoning":{"effort":"low"},"x_custom":[1,2,3],"store":false}""";
        using var response = await SendAsync(HttpMethod.Post, "/v1/responses", _key, body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(body, LastPost("native").BodyText);
        Assert.Equal("vllm", response.Headers.GetValues("x-goblin-provider").Single());
    }

    [Fact]
    public async Task A_failing_native_provider_fails_over_to_a_translated_one()
    {
        _native.Script(Behaviour.ServerError);
        ResponseResult response = await Client(_key).CreateResponseAsync("mixed", "still there?");

        Assert.Equal("echo: still there?", response.GetOutputText());
        Assert.Equal("/v1/chat/completions", LastPost("chat").Path);
    }

    [Fact]
    public async Task A_stored_response_belongs_to_its_key()
    {
        var (_, other) = await AccessTests.CreateKeyAsync(_gateway.Client, new { team = "responses" });
        ResponseResult mine = await Client(_key).CreateResponseAsync("chat", "private");

        foreach (var (method, path) in new[] { (HttpMethod.Get, $"/v1/responses/{mine.Id}"), (HttpMethod.Get, $"/v1/responses/{mine.Id}/input_items"), (HttpMethod.Delete, $"/v1/responses/{mine.Id}") })
        {
            using var theirs = await SendAsync(method, path, other);
            await AssertErrorAsync(theirs, HttpStatusCode.NotFound, "response_not_found", null);
        }

        using (var continued = await SendAsync(HttpMethod.Post, "/v1/responses", other, $$"""{"model":"chat","input":"more","previous_response_id":"{{mine.Id}}"}"""))
        {
            await AssertErrorAsync(continued, HttpStatusCode.BadRequest, "previous_response_not_found", "previous_response_id");
        }

        using (var anonymous = await SendAsync(HttpMethod.Get, $"/v1/responses/{mine.Id}", null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        var deleted = await Client(_key).DeleteResponseAsync(mine.Id);
        Assert.True(deleted.Value.Deleted);
        using var gone = await SendAsync(HttpMethod.Get, $"/v1/responses/{mine.Id}", _key);
        await AssertErrorAsync(gone, HttpStatusCode.NotFound, "response_not_found", null);
    }

    [Fact]
    public async Task Responses_are_limited_and_recorded_like_chat()
    {
        var (id, limited) = await AccessTests.CreateKeyAsync(_gateway.Client, new { team = "responses", rpm = 1 });
        using (var first = await SendAsync(HttpMethod.Post, "/v1/responses", limited, """{"model":"chat","input":"hi"}"""))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        using (var second = await SendAsync(HttpMethod.Post, "/v1/responses", limited, """{"model":"chat","input":"hi"}"""))
        {
            await AssertErrorAsync(second, HttpStatusCode.TooManyRequests, "rate_limit_exceeded", null);
        }

        await using var dataSource = NpgsqlDataSource.Create(servers.Postgres.ConnectionString());
        await Eventually.HoldsAsync(async () =>
        {
            await using var rows = dataSource.CreateCommand("SELECT count(*) FROM usage_records WHERE key_id = @key AND status = 200 AND input_tokens = 11 AND output_tokens = 7");
            rows.Parameters.AddWithValue("key", Guid.Parse(id));
            return (long)(await rows.ExecuteScalarAsync())! == 1;
        }, TimeSpan.FromSeconds(30), "one spend row with the translated answer's usage");
    }

    [Fact]
    public async Task Input_items_page_newest_first()
    {
        const string body = """{"model":"chat","input":[{"id":42,"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}""";
        using var created = await SendAsync(HttpMethod.Post, "/v1/responses", _key, body);
        var id = (string?)JsonNode.Parse(await created.Content.ReadAsStringAsync())!["id"];

        using var page = await SendAsync(HttpMethod.Get, $"/v1/responses/{id}/input_items?limit=2", _key);
        var list = JsonNode.Parse(await page.Content.ReadAsStringAsync())!;
        var data = list["data"]!.AsArray();
        Assert.Equal(["c", "b"], data.Select(i => (string?)i!["content"]![0]!["text"]));
        Assert.Equal(["input_text", "output_text"], data.Select(i => (string?)i!["content"]![0]!["type"]));
        Assert.True((bool)list["has_more"]!);

        using var next = await SendAsync(HttpMethod.Get, $"/v1/responses/{id}/input_items?limit=2&after={(string?)list["last_id"]}", _key);
        var rest = JsonNode.Parse(await next.Content.ReadAsStringAsync())!;
        Assert.Equal(["a"], rest["data"]!.AsArray().Select(i => (string?)i!["content"]![0]!["text"]));
        Assert.False((bool)rest["has_more"]!);

        using var bad = await SendAsync(HttpMethod.Get, $"/v1/responses/{id}/input_items?limit=1000", _key);
        await AssertErrorAsync(bad, HttpStatusCode.BadRequest, "invalid_value", "limit");
    }

    public static TheoryData<string, int, string?> BadBodies => new()
    {
        { """{"model":"chat"}""", 400, "input" },
        { """{"model":"chat","input":[]}""", 400, "input" },
        { """{"model":"chat","input":42}""", 400, "input" },
        { """{"input":"hi"}""", 400, "model" },
        { """{"model":"chat","input":[1]}""", 400, "input[0]" },
        { """{"model":"chat","input":[{"type":"message","role":"wizard","content":"hi"}]}""", 400, "input[0].role" },
        { """{"model":"chat","input":[{"type":"message","role":"user"}]}""", 400, "input[0].content" },
        { """{"model":"chat","input":[{"role":"user","content":[{"type":"input_audio"}]}]}""", 400, "input[0].content[0].type" },
        { """{"model":"chat","input":[{"role":"user","content":[{"type":"input_text","text":5}]}]}""", 400, "input[0].content[0].text" },
        { """{"model":"chat","input":[{"type":"function_call","name":"f","arguments":"{}"}]}""", 400, "input[0].call_id" },
        { """{"model":"chat","input":[{"type":"function_call_output","call_id":"c","output":{"x":1}}]}""", 400, "input[0].output" },
        { """{"model":"chat","input":[{"type":"computer_call"}]}""", 400, "input[0].type" },
        { """{"model":"chat","input":"hi","tools":[{"type":"web_search"}]}""", 400, "tools[0].type" },
        { """{"model":"chat","input":"hi","tools":[{"type":"function","name":"bad name!"}]}""", 400, "tools[0].name" },
        { """{"model":"chat","input":"hi","tools":[{"type":"function","name":"f","parameters":"x"}]}""", 400, "tools[0].parameters" },
        { """{"model":"chat","input":"hi","tool_choice":"sometimes"}""", 400, "tool_choice" },
        { """{"model":"chat","input":"hi","text":{"format":{"type":"yaml"}}}""", 400, "text.format.type" },
        { """{"model":"chat","input":"hi","text":{"format":{"type":"json_schema","name":"s"}}}""", 400, "text.format.schema" },
        { """{"model":"chat","input":"hi","text":"json"}""", 400, "text" },
        { """{"model":"chat","input":"hi","max_output_tokens":0}""", 400, "max_output_tokens" },
        { """{"model":"chat","input":"hi","max_output_tokens":"many"}""", 400, "max_output_tokens" },
        { """{"model":"chat","input":"hi","temperature":3}""", 400, "temperature" },
        { """{"model":"chat","input":"hi","top_p":1.5}""", 400, "top_p" },
        { """{"model":"chat","input":"hi","instructions":["a"]}""", 400, "instructions" },
        { """{"model":"chat","input":"hi","store":"yes"}""", 400, "store" },
        { """{"model":"chat","input":"hi","metadata":{"k":1}}""", 400, "metadata" },
        { """{"model":"chat","input":"hi","metadata":"m"}""", 400, "metadata" },
        { """{"model":"chat","input":"hi","previous_response_id":"resp_nope"}""", 400, "previous_response_id" },
        { """{"model":"chat","input":"hi","previous_response_id":"../etc"}""", 400, "previous_response_id" },
        { """{"model":"chat","input":"hi","input":"twice"}""", 400, null },
        { """{"model":"chat","input":"\ud800"}""", 400, null },
        { """{"model":"chat","input":"hi"} trailing""", 400, null },
        { """{"model":"nope","input":"hi"}""", 404, "model" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task Bad_input_gets_openais_error_and_reaches_no_provider(string body, int status, string? param)
    {
        var before = _native.InferenceRequestCount + _chatOnly.InferenceRequestCount;
        using var response = await SendAsync(HttpMethod.Post, "/v1/responses", _key, body);
        await AssertErrorAsync(response, (HttpStatusCode)status, null, param);
        Assert.Equal(before, _native.InferenceRequestCount + _chatOnly.InferenceRequestCount);
    }

    [Fact]
    public async Task Hostile_bodies_are_refused_in_openais_shape()
    {
        var deep = """{"model":"chat","input":""" + new string('[', 5000) + new string(']', 5000) + "}";
        var huge = """{"model":"chat","input":" """ + new string('a', 5 * 1024 * 1024) + "\"}";
        var manyItems = """{"model":"chat","input":[""" + string.Join(",", Enumerable.Repeat("""{"type":"function_call_output","call_id":"c","output":"x"}""", 20_000)) + "]}";
        foreach (var (body, status, code) in new[] { (deep, 400, null), (huge, 413, "request_too_large"), (manyItems, 400, "context_length_exceeded") })
        {
            using var response = await SendAsync(HttpMethod.Post, "/v1/responses", _key, body);
            await AssertErrorAsync(response, (HttpStatusCode)status, code, null);
        }

        using var noKey = await SendAsync(HttpMethod.Post, "/v1/responses", null, """{"model":"chat","input":"hi"}""");
        await AssertErrorAsync(noKey, HttpStatusCode.Unauthorized, null, null);
        using var oddId = await SendAsync(HttpMethod.Get, "/v1/responses/%E2%80%AEresp%0A", _key);
        await AssertErrorAsync(oddId, HttpStatusCode.NotFound, "response_not_found", null);
    }

    private ResponsesClient Client(string key) =>
        new(new ApiKeyCredential(key), new ResponsesClientOptions { Endpoint = new Uri(_gateway.BaseAddress, "/v1") });

    private RecordedRequest LastPost(string model) => (model == "native" ? _native : _chatOnly).Requests.Last(r => r.Method == "POST");

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string? key, string? body = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : GatewayTestHost.Json(body) };
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return await _gateway.Client.SendAsync(request);
    }

    private static List<(string Name, JsonObject Data)> Events(string body) =>
        body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e.Split('\n'))
            .Select(lines => (
                Name: lines.FirstOrDefault(l => l.StartsWith("event: ", StringComparison.Ordinal))?[7..] ?? "",
                Data: JsonNode.Parse(lines.Single(l => l.StartsWith("data: ", StringComparison.Ordinal))[6..])!.AsObject()))
            .ToList();

    private static async Task AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status, string? code, string? param)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{(int)response.StatusCode}: {text}");
        using var document = JsonDocument.Parse(text);
        var error = document.RootElement.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Equal(JsonValueKind.String, error.GetProperty("type").ValueKind);
        if (code is not null)
        {
            Assert.Equal(code, error.GetProperty("code").GetString());
        }

        if (param is not null)
        {
            Assert.Equal(param, error.GetProperty("param").GetString());
        }
    }
}
