// The HTTP example provider's echo bot in a voice room (SPEC §9,
// examples/voice_echo.py): examples/http_provider.py run by Debian's
// /usr/bin/python3 with python3-aiortc, the real voicebot-server, and two
// pages of one headless Chromium, everything on 127.0.0.1.
//
//   node web_aiortc.test.js        (tests/browser/run aiortc)
//
// Skipped (77) when /usr/bin/python3 cannot import aiortc and websockets.
//
// Scenario: first the example with aiortc blocked (a module of that name
// that raises ImportError, first on PYTHONPATH): it says "voice: off" and
// registers all the same, on the standard library alone. Then the example
// with voice. alice joins the lobby with voice, then the echo bot joins
// (POST /api/bots/echo/join): its welcome lists alice, so it calls her
// (an offer from the bot); she hears it, judged by getStats() (inbound-rtp
// audio from the bot's connection: packets rise, energy above 0: her own
// speech sent back, about half a second later by the bot's log). bob joins
// after the bot: he calls it, it answers, he hears it too. A chat line is
// said again by the bot. The server is killed (-9): the bot's audio goes on
// (sampled every 100 ms in the pages), and once the server is back on the
// same port the bot says hello with resume and keeps its connections (the
// pages keep the same RTCPeerConnections). The bot leaves: the pages'
// connections to it close. A screenshot is saved under
// $VB_BUILD_DIR/artifacts/.
'use strict';

const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  BASE, log, check, skip, requireBinaries, Proc, startServer, api, until, screenshot, run,
  sleep, makeSpeech, peersOf, joinVoice, connected, hears,
  sampleDuring, checkAudioGap, keepConnections, voiceRoom, stepOf,
} = require('./harness');

const PYTHON = '/usr/bin/python3';  // Debian's: python3-aiortc imports only there
const EXAMPLE = path.resolve(__dirname, '..', '..', 'examples', 'http_provider.py');
const DOWNTIME_MS = 3000;           // the server stays down this long
const MAX_GAP_MS = 1000;            // the largest gap in the bot's audio allowed meanwhile

/// Why /usr/bin/python3 cannot do voice, or null when it can.
function voiceMissing() {
  if (!fs.existsSync(PYTHON)) return `${PYTHON} is missing`;
  try {
    execFileSync(PYTHON, ['-c', 'import aiortc, websockets'], { stdio: 'pipe' });
    return null;
  } catch (err) {
    const why = String(err.stderr || err.message).trim().split('\n').pop();
    return `${PYTHON} cannot import aiortc and websockets (${why}); scripts/setup-deps installs python3-aiortc`;
  }
}

/// The example provider on a free port, registered with the server on `port`.
function startExample(name, port, stateFile, { bots = 'echo', env = [] } = {}) {
  const args = [EXAMPLE, '--server', `http://127.0.0.1:${port}${BASE}`, '--name', name, '--bots', bots,
    '--state-file', stateFile, '--heartbeat-interval', '1', '--max-backoff', '1',
    '--ice-host', '127.0.0.1'];
  // env(1) puts `env` (NAME=VALUE) in its environment.
  // -B: no __pycache__ beside the example.
  return env.length ? new Proc(name, '/usr/bin/env', [...env, PYTHON, '-B', ...args]) : new Proc(name, PYTHON, ['-B', ...args]);
}

/// The signals `p` sent to or got from `peerId` whose description is an offer.
const offersSent = (p, to) => p.sent.filter((f) => f.msg.type === 'signal' && f.msg.to === to
  && f.msg.data && f.msg.data.description && f.msg.data.description.type === 'offer');
const offersGot = (p, from) => p.got.filter((f) => f.msg.type === 'signal' && f.msg.from === from
  && f.msg.data && f.msg.data.description && f.msg.data.description.type === 'offer');

// -- the scenario --------------------------------------------------------------------------------

async function main() {
  requireBinaries();
  const missing = voiceMissing();
  if (missing) skip(missing);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-aiortc-'));
  const dataDir = path.join(tmp, 'data');
  const ctx = { shots: 'web-aiortc', server: null, pages: [], procs: [] };
  let browser = null;
  const cleanup = async () => {
    if (browser) await browser.close().catch(() => {});
    for (const p of ctx.procs) await p.kill('SIGKILL');
    if (ctx.server) await ctx.server.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const step = (name, fn) => stepOf(ctx, name, fn);
  try {
    const wav = makeSpeech(tmp);
    ctx.server = await startServer(dataDir, 0, 0);
    const port = ctx.server.port;
    log(`server on port ${port}`);

    await step('without aiortc the example runs on the standard library, and says so', async () => {
      const blocked = path.join(tmp, 'no-aiortc');
      fs.mkdirSync(blocked);
      fs.writeFileSync(path.join(blocked, 'aiortc.py'), 'raise ImportError("aiortc is blocked by the test")\n');
      // Only greeter: no echo join of the next steps may land on it.
      const plain = startExample('example-no-voice', port, path.join(tmp, 'no-voice.json'),
        { bots: 'greeter', env: [`PYTHONPATH=${blocked}`] });
      ctx.procs.push(plain);
      const [line] = await plain.waitFor(/voice: off, standard library only .*aiortc is blocked by the test.*/);
      log(`the example says: ${line}`);
      const [, plainId] = await plain.waitFor(/registered as (\S+)/);
      check(true, 'without aiortc it said "voice: off" and registered');
      await plain.kill('SIGKILL');
      // The server forgets it: no later call goes to a provider that is gone.
      const gone = await api(port, 'DELETE', `/api/bots/providers/${plainId}`);
      check(gone.status === 204, `the stopped example was deregistered (${gone.status})`);
    });

    const provider = startExample('example-provider', port, path.join(tmp, 'provider.json'));
    ctx.procs.push(provider);
    await step('with aiortc the example says "voice: on" and registers', async () => {
      const [line] = await provider.waitFor(/voice: on .*/);
      log(`the example says: ${line}`);
      await provider.waitFor(/registered as \S+/);
    });

    const room = await voiceRoom(port, 'aiortc echo lobby', wav);
    ({ browser } = room);
    const { lobbyId, alice, bob } = room;
    ctx.pages.push(alice, bob);

    const botId = await step('alice, then the echo bot: it calls her, she hears herself', async () => {
      await joinVoice(alice, 'alice');
      const joined = await api(port, 'POST', '/api/bots/echo/join', { lobby_id: lobbyId, nick: 'Echo' });
      check(joined.status === 200, `the echo bot was asked to join (${joined.status} ${JSON.stringify(joined.body)})`);
      const b = joined.body.session_id;
      await provider.waitFor(/echo Echo: welcome in lobby \S+: 1 people, calling 1/);
      await connected(alice, b);
      check(offersGot(alice, b).length >= 1 && offersSent(alice, b).length === 0, 'the bot made the offer to alice');
      await hears(alice, b, 'the echo bot');
      const [, delay] = await provider.waitFor(/echo Echo: echoing alice's audio (\d+\.\d+) s later/);
      check(Number(delay) >= 0.45 && Number(delay) <= 0.8, `the bot sends alice's audio back ${delay} s after it came`);
      return b;
    });

    const bobId = await step('bob joins after the bot: he calls it, and hears himself', async () => {
      const b = await joinVoice(bob, 'bob');
      await connected(bob, botId);
      check(offersSent(bob, botId).length >= 1 && offersGot(bob, botId).length === 0, 'bob made the offer to the bot');
      await hears(bob, botId, 'the echo bot');
      return b;
    });

    await step('a chat line is said again by the bot', async () => {
      await alice.page.fill('#chat-nick', 'alice');
      await alice.page.fill('#chat-text', 'hello, echo');
      await alice.page.press('#chat-text', 'Enter');
      await alice.page.locator('#chat li', { hasText: 'Echo: hello, echo' }).waitFor();
      check(true, 'the bot said alice\'s chat line again');
    });

    const botConns = async (p) => (await peersOf(p)).filter((c) => c.session_id === botId);
    const before = { alice: await botConns(alice), bob: await botConns(bob) };
    const { same: sameConnections } = await keepConnections([alice, bob]);

    await step('the server is killed: the bot\'s audio goes on', async () => {
      const [sa, sb] = await sampleDuring([alice, bob], async () => {
        await ctx.server.kill('SIGKILL');
        log('server killed');
        await provider.waitFor(/echo Echo: lobby socket down/);
        await sleep(DOWNTIME_MS);
      });
      checkAudioGap(alice, sa, botId, MAX_GAP_MS, DOWNTIME_MS / 100 * 0.5);
      checkAudioGap(bob, sb, botId, MAX_GAP_MS, DOWNTIME_MS / 100 * 0.5);
    });

    await step('the server is back: the bot says hello with resume and keeps its calls', async () => {
      ctx.server = await startServer(dataDir, port, 0);
      log(`server started again on port ${ctx.server.port}`);
      await provider.waitFor(/echo Echo: lobby socket open again; hello with resume: true/, 30000);
      await provider.waitFor(/echo Echo: welcome in lobby \S+ \(resumed\): 2 people, calling 0/, 30000);
      await sameConnections();
      for (const p of [alice, bob]) {
        const now = await botConns(p);
        check(JSON.stringify(now.map((c) => c.connection_id)) === JSON.stringify(before[p.name].map((c) => c.connection_id)),
          `${p.name} keeps the same connection to the bot (${now.map((c) => c.connection_id)})`);
        await hears(p, botId, 'the echo bot');
      }
    });

    await screenshot(alice.page, 'web-aiortc.png');

    await step('the bot leaves: the pages\' connections to it close', async () => {
      const left = await api(port, 'POST', '/api/bots/leave', { session_id: botId, lobby_id: lobbyId });
      check(left.status === 200, `the bot was asked to leave (${left.status})`);
      // The server ends the session's seat (bad_token on the bot's socket) and stops the run.
      await provider.waitFor(/run \S+ stopped \(Echo left lobby/);
      await provider.waitFor(/echo Echo: voice ended/);
      for (const p of [alice, bob]) {
        await until(`${p.name}'s connection to the bot to close`, async () => (await botConns(p)).length === 0);
      }
      check((await peersOf(alice)).some((c) => c.session_id === bobId && c.connectionState === 'connected'),
        'alice and bob still talk');
      check(true, 'both pages closed their connection to the bot');
    });

    for (const p of [alice, bob]) check(p.errors.length === 0, `no script errors on ${p.name}'s page ${p.errors.join('; ')}`);
  } finally {
    await cleanup();
  }
}

run(main, 140000);
