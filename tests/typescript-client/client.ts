// A small program against the typed client that openapi-typescript generates
// from the served /api/openapi.json (written beside this file as api.d.ts by
// tests/integration/test_typescript_client.py), with openapi-fetch as the
// runtime. It must compile with `tsc --strict`, and it is run against a real
// server: VB_BASE_URL is the server, VB_PROVIDER_URL an HTTP provider of the
// bot "echo". It sends only the fields a client must send, checks the
// answers, and prints a JSON summary as its last line; exit code 1 on a
// wrong answer.
import createClient from "openapi-fetch";
import type { components, paths } from "./api.js";

// No @types/node: only what this program uses of Node's globals.
declare const process: { env: Record<string, string | undefined>; exitCode?: number };

type Schemas = components["schemas"];
type ErrorAnswer = Schemas["Error"] | Schemas["ValidationError"];

const baseUrl = process.env.VB_BASE_URL ?? "http://127.0.0.1:8000";
const providerUrl = process.env.VB_PROVIDER_URL ?? "http://127.0.0.1:9";
const client = createClient<paths>({ baseUrl });

// The original frontend's call, botsApi.requestJoinLobby, on top of the
// generated types.
const botsApi = {
  requestJoinLobby(botName: string, body: Schemas["JoinRequest"]) {
    return client.POST("/api/bots/{bot_name}/join", {
      params: { path: { bot_name: botName } },
      body,
    });
  },
};

/** An error answer for people: both of FastAPI's shapes, with the code. */
function describe(error: ErrorAnswer): string {
  const detail: string =
    typeof error.detail === "string"
      ? error.detail
      : error.detail.map((item) => `${item.loc.join(".")}: ${item.msg}`).join("; ");
  return `${error.code}: ${detail}`;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`unexpected answer: ${what}`);
}

/** The data of a success answer, or a failure naming the error. */
function expectData<T>(answer: { data?: T; error?: ErrorAnswer; response: Response }, what: string): T {
  if (answer.error !== undefined) throw new Error(`${what}: ${answer.response.status} ${describe(answer.error)}`);
  if (answer.data === undefined) throw new Error(`${what}: ${answer.response.status} without a body`);
  return answer.data;
}

async function main(): Promise<void> {
  // List lobbies.
  const listed: Schemas["LobbyList"] = expectData(await client.GET("/api/lobby"), "list lobbies");
  check(Array.isArray(listed.lobbies), "lobbies is a list");

  // Create a lobby with only its name: `private` has a default on the server.
  const created = await client.POST("/api/lobby", { body: { name: "ts-client room" } });
  const lobby: Schemas["Lobby"] = expectData(created, "create lobby");
  check(created.response.status === 201, `create lobby: ${created.response.status}`);
  check(lobby.private === false && lobby.name === "ts-client room", "the default visibility");
  check(lobby.sessions.length === 0 && lobby.members === 0, "a new lobby is empty");

  // A provider of the bot "echo": a bot's `description` has a default.
  const registered: Schemas["Registered"] = expectData(
    await client.POST("/api/bots/providers/register", {
      body: { name: "ts-client provider", base_url: providerUrl, bots: [{ name: "echo" }] },
    }),
    "register provider",
  );
  check(registered.status === "registered", "registered");

  // List bots and providers: fields the server always sends are not optional.
  const bots: Schemas["BotListing"] = expectData(await client.GET("/api/bots"), "list bots");
  const echo = bots.bots.find((b) => b.name === "echo");
  check(echo !== undefined && echo.description === "", "echo with an empty description");
  check(bots.providers["echo"] === registered.provider_id, "echo's provider");
  const providers: Schemas["ProviderList"] = expectData(await client.GET("/api/bots/providers"), "list providers");
  const mine = providers.providers.find((p) => p.provider_id === registered.provider_id);
  check(mine !== undefined, "the provider is listed");
  if (mine !== undefined) {
    const description: string = mine.bots[0].description;
    const status: "online" | "suspect" | "unreachable" | "draining" = mine.status;
    check(description === "" && status === "online" && mine.transport === "http", "the provider's fields");
  }

  // Join the bot with only the lobby: `nick` defaults to the bot's name.
  const joined: Schemas["JoinAnswer"] = expectData(
    await botsApi.requestJoinLobby("echo", { lobby_id: lobby.id }),
    "join bot",
  );
  check(joined.status === "requested" && joined.nick === "echo", "the default nick");
  check(joined.provider_id === registered.provider_id && joined.run_id !== "", "the provider ran it");
  const withBot: Schemas["Lobby"] = expectData(
    await client.GET("/api/lobby/{lobby_id}", { params: { path: { lobby_id: lobby.id } } }),
    "get lobby",
  );
  const member = withBot.sessions.find((s) => s.session_id === joined.session_id);
  check(member !== undefined && member.is_bot && member.moved_at === null, "the bot is a member");

  // Leave with only the session.
  const left: Schemas["LeaveAnswer"] = expectData(
    await client.POST("/api/bots/leave", { body: { session_id: joined.session_id } }),
    "leave",
  );
  check(left.status === "left" && left.lobby_id === lobby.id, "left its lobby");

  // Error answers, typed: {detail, code}, and 422's list of {loc, msg, type}.
  const unknown = await client.GET("/api/lobby/{lobby_id}", { params: { path: { lobby_id: "no-such-lobby" } } });
  check(unknown.data === undefined && unknown.error !== undefined, "an unknown lobby is an error");
  let notFound = "";
  if (unknown.error !== undefined) {
    const code: string = unknown.error.code;
    check(unknown.response.status === 404 && code === "lobby_not_found", `unknown lobby: ${describe(unknown.error)}`);
    notFound = describe(unknown.error);
  }
  const invalid = await botsApi.requestJoinLobby("echo", { lobby_id: "" });
  let validation = "";
  if (invalid.error !== undefined) {
    const error = invalid.error;
    check(invalid.response.status === 422 && error.code === "validation_error", `empty lobby_id: ${describe(error)}`);
    check(Array.isArray(error.detail) && error.detail[0].loc.join(".") === "body.lobby_id", "422 names the field");
    validation = describe(error);
  } else {
    check(false, "an empty lobby_id is refused");
  }
  const gone = await client.POST("/api/bots/leave", { body: { session_id: joined.session_id } });
  check(gone.error !== undefined && gone.error.code === "session_not_found", "leaving twice");

  console.log(JSON.stringify({ ok: true, lobby_id: lobby.id, session_id: joined.session_id, notFound, validation }));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});
