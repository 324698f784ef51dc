// voicebot-provider's bots are voice peers (SPEC §9) in a real browser: one
// page of headless Debian Chromium (fake microphone), the real server, and
// two real voicebot-provider processes whose bots speak and listen with
// GStreamer (webrtcbin, espeak-ng, pocketsphinx), everything on loopback.
//
//   node web_voice_bots.test.js        (tests/browser/run voice-bots)
//
// Scenario: the page's microphone says "hello computer" then is silent
// (a WAV made with espeak-ng, looped by Chromium). The person joins the
// lobby with voice.
// - `greeter` joins: the page receives audio with energy from it within 3 s
//   of the join's 200 ("hello, alice", spoken by espeak-ng).
// - `echo` joins: the page hears its own voice back from it; muted, the
//   page gets silence from echo; unmuted, its voice again.
// - `listener` joins: "alice said: hello computer" appears as a chat line.
// - The server is killed (-9) and started again: echo's audio goes on, the
//   page keeps its connections to the bots, and the bots say hello again
//   with resume (SPEC §9), their runs kept (reconciliation, SPEC §7).
// - The provider running greeter is killed (-9): the server evicts it and
//   moves greeter to the other provider; the page, without a reload, gets
//   peer_left then peer_joined for the same session_id, a new connection,
//   and audio from the new run.
// Judged by the page's getStats() (inbound-rtp from each bot's connection)
// and what the page shows. A screenshot is saved under $VB_BUILD_DIR/artifacts/.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const {
  PROVIDER, log, check, skip, requireBinaries, startServer, api, until, screenshot, run,
  sleep, launchBrowser, voiceFlags, openPage, joinVoice, connected, hears, stepOf, Proc,
  sampleDuring, checkAudioGap, keepConnections,
} = require('./harness');

// The bound from the join's 200 to audio with energy (sanitizer builds run slower).
const GREETER_WITHIN_MS = 3000 * Number(process.env.VB_TIME_SCALE || 1);
const DOWNTIME_MS = 3000;       // the server stays down this long
const MAX_GAP_MS = 1000;        // the largest audio gap from echo allowed meanwhile

/// "hello computer", then two seconds of silence: one utterance a loop.
function makeUtterance(dir) {
  const spoken = path.join(dir, 'spoken.wav');
  try {
    execFileSync('espeak-ng', ['-w', spoken, 'hello computer']);
  } catch (err) {
    skip(`espeak-ng did not run (${err.code || err.message}): scripts/setup-deps installs it`);
  }
  const wav = fs.readFileSync(spoken);
  const at = wav.indexOf('data', 12);
  const rate = wav.readUInt32LE(24);
  const data = wav.subarray(at + 8, at + 8 + wav.readUInt32LE(at + 4));
  const silence = Buffer.alloc(rate * 2 * 2); // 2 s of mono S16
  const header = Buffer.from(wav.subarray(0, at + 8));
  const size = data.length + silence.length;
  header.writeUInt32LE(size, at + 4);
  header.writeUInt32LE(header.length - 8 + size, 4);
  const out = path.join(dir, 'utterance.wav');
  fs.writeFileSync(out, Buffer.concat([header, data, silence]));
  return out;
}

function startProvider(tmp, name, cafPort) {
  return new Proc(name, PROVIDER, [
    '--server-host', '127.0.0.1', '--server-port', String(cafPort), '--name', name,
    '--state-file', path.join(tmp, `${name}.json`), '--heartbeat-interval', '0.5', '--max-backoff', '0.5',
    '--ice-address', '127.0.0.1', '--bots', 'echo,greeter,listener']);
}

const statsRow = async (p, sessionId) =>
  (await p.page.evaluate(() => window.voice.stats())).find((r) => r.session_id === sessionId);

/// The energy `p` received from `sessionId` over `ms`.
async function energyDuring(p, sessionId, ms) {
  const a = await statsRow(p, sessionId);
  await sleep(ms);
  const b = await statsRow(p, sessionId);
  return { energy: b.totalAudioEnergy - a.totalAudioEnergy, packets: b.packetsReceived - a.packetsReceived };
}

async function joinBot(port, lobbyId, bot, nick) {
  const r = await api(port, 'POST', `/api/bots/${bot}/join`, { lobby_id: lobbyId, nick });
  const at = Date.now();
  check(r.status === 200, `${bot} joined (${r.status} ${JSON.stringify(r.body)})`);
  return { id: r.body.session_id, provider: r.body.provider_id, at };
}

async function main() {
  requireBinaries();
  if (!fs.existsSync(PROVIDER)) throw new Error(`${PROVIDER} is missing: build first`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-voice-bots-'));
  const ctx = { server: null, pages: [], shots: 'voice-bots' };
  const providers = {};
  let browser = null;
  const cleanup = async () => {
    if (browser) await browser.close().catch(() => {});
    for (const p of Object.values(providers)) await p.kill('SIGKILL');
    if (ctx.server) await ctx.server.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const step = (name, fn) => stepOf(ctx, name, fn);
  try {
    const wav = makeUtterance(tmp);
    // Evicted 3 s after its last heartbeat: a killed provider's members move
    // soon, and a restarted server's providers (backoff at most 0.5 s) are
    // back well before it.
    const serverFlags = { caf: true, extra: ['--cleanup-interval', '0.5', '--stale-after', '3'] };
    const dataDir = path.join(tmp, 'data');
    ctx.server = await startServer(dataDir, 0, 0, serverFlags);
    const port = ctx.server.port;
    for (const name of ['voice-a', 'voice-b']) {
      providers[name] = startProvider(tmp, name, ctx.server.cafPort);
      await providers[name].waitFor(/registered as ([0-9a-f-]+)/);
    }
    ctx.procs = Object.values(providers);
    const ids = {};
    for (const p of (await api(port, 'GET', '/api/bots/providers')).body.providers) ids[p.provider_id] = p.name;

    const created = await api(port, 'POST', '/api/lobby', { name: 'Bots that talk' });
    check(created.status === 201, 'the lobby was created');
    const lobbyId = created.body.id;
    browser = await launchBrowser({ args: voiceFlags(wav) });
    const alice = await openPage(browser, `http://127.0.0.1:${port}`, lobbyId, 'alice');
    ctx.pages.push(alice);
    const aliceId = await joinVoice(alice, 'alice');

    const greeter = await step('greeter says hello aloud within 3 s of its join', async () => {
      const g = await joinBot(port, lobbyId, 'greeter', 'Greeter');
      const heard = await until('audio with energy from greeter', async () => {
        const r = await statsRow(alice, g.id);
        return r && r.totalAudioEnergy > 0 ? Date.now() : null;
      }, 15000);
      check(heard - g.at <= GREETER_WITHIN_MS, `audio with energy from greeter ${heard - g.at} ms after the join's 200`);
      return g;
    });

    const echo = await step('echo sends back what the page says, and silence when it is muted', async () => {
      const e = await joinBot(port, lobbyId, 'echo', 'Echo');
      await connected(alice, e.id);
      await hears(alice, e.id, 'echo');
      const on = await energyDuring(alice, e.id, 3500);
      check(on.energy > 0.001, `echo sends the page's voice back (energy ${on.energy.toFixed(4)} in 3.5 s)`);
      await alice.page.click('#voice-mute');
      // What was said before the mute comes back half a second later (more on a busy machine);
      // a second without packets (a stall) is not silence: its backlog is still to come.
      await until('echo goes silent after the mute', async () => {
        const w = await energyDuring(alice, e.id, 1000);
        return w.packets > 25 && w.energy < on.energy / 100;
      }, 15000);
      const muted = await energyDuring(alice, e.id, 3500);
      check(muted.packets > 100 && muted.energy < on.energy / 20,
        `muted: echo sends silence (${muted.packets} packets, energy ${muted.energy.toFixed(6)})`);
      await alice.page.click('#voice-mute');
      await until('echo sends the voice again after unmuting', async () =>
        (await energyDuring(alice, e.id, 1000)).energy > 0.0005, 15000);
      return e;
    });

    await step('listener writes what the page says as a chat line; it leaves and its connection closes', async () => {
      const l = await joinBot(port, lobbyId, 'listener', 'Listener');
      await alice.page.locator('#chat', { hasText: 'alice said: hello computer' }).waitFor({ timeout: 60000 });
      check(true, 'the chat shows "alice said: hello computer"');
      const left = await api(port, 'POST', '/api/bots/leave', { session_id: l.id, lobby_id: lobbyId });
      check(left.status === 200, `listener left (${left.status})`);
      await until('the page\'s connection to listener closes', async () =>
        !(await alice.page.evaluate(() => window.voice.peers())).some((c) => c.session_id === l.id));
      const runId = (await Promise.all(Object.values(providers).map((p) =>
        p.waitFor(new RegExp(`run (\\S+) started: listener`), 100).catch(() => null)))).find((m) => m)[1];
      const host = Object.values(providers).find((p) => p.lines.some((x) => x.includes(`run ${runId} started`)));
      await host.waitFor(new RegExp(`voice of run ${runId} ends`));
      check(true, `the provider ended listener's voice (run ${runId})`);
    });

    await step('kill -9 of the server: the bots\' voice goes on, their runs say hello with resume', async () => {
      const kept = await keepConnections([alice]);
      const lost = /fenced|token was refused|a new connection to/;
      const lostBefore = Object.fromEntries(Object.entries(providers).map(([n, p]) =>
        [n, p.lines.filter((l) => lost.test(l)).length]));
      const welcomes = Object.fromEntries(Object.entries(providers).map(([n, p]) =>
        [n, p.lines.filter((l) => / welcomed with /.test(l)).length]));
      const live = (p) => {
        const started = p.lines.map((l) => / run (\S+) started/.exec(l)).filter((m) => m).map((m) => m[1]);
        return started.filter((id) => !p.lines.some((l) => l.includes(`run ${id} stopped`))).length;
      };
      const registrations = Object.fromEntries(Object.entries(providers).map(([n, p]) =>
        [n, p.lines.filter((l) => /registered as /.test(l)).length]));
      const [samples] = await sampleDuring([alice], async () => {
        await ctx.server.kill('SIGKILL');
        log('server killed');
        await sleep(DOWNTIME_MS);
        ctx.server = await startServer(dataDir, port, ctx.server.cafPort, serverFlags);
        for (const [n, p] of Object.entries(providers)) {
          await until(`${n} registered again`, async () =>
            p.lines.filter((l) => /registered as /.test(l)).length > registrations[n], 20000);
        }
        // Every run of both providers said hello again and was welcomed.
        for (const [n, p] of Object.entries(providers)) {
          await until(`${n}'s runs welcomed again`, async () =>
            p.lines.filter((l) => / welcomed with /.test(l)).length >= welcomes[n] + live(p), 20000);
        }
        await sleep(1000);
      });
      checkAudioGap(alice, samples, echo.id, MAX_GAP_MS, 20);
      await kept.same();
      for (const [n, p] of Object.entries(providers)) {
        check(p.lines.filter((l) => lost.test(l)).length === lostBefore[n],
          `${n} kept its runs and their connections`);
      }
    });

    await step('kill -9 of the provider running greeter: its voice comes back from the other one', async () => {
      const lobby = await api(port, 'GET', `/api/lobby/${lobbyId}`);
      const member = lobby.body.sessions.find((s) => s.session_id === greeter.id);
      const victim = ids[member.provider_id];
      const before = (await alice.page.evaluate(() => window.voice.peers())).find((c) => c.session_id === greeter.id);
      const killedAt = Date.now();
      await providers[victim].kill('SIGKILL');
      log(`killed ${victim}, which ran greeter`);
      const moved = await until('greeter moved to the other provider', async () => {
        const l = await api(port, 'GET', `/api/lobby/${lobbyId}`);
        const m = l.body.sessions.find((s) => s.session_id === greeter.id);
        return m && m.provider_id !== member.provider_id ? m : null;
      }, 20000);
      check(ids[moved.provider_id] && ids[moved.provider_id] !== victim, `greeter runs on ${ids[moved.provider_id]} now`);
      const heard = await until('audio with energy from the moved greeter', async () => {
        const c = (await alice.page.evaluate(() => window.voice.peers())).find((x) => x.session_id === greeter.id);
        if (!c || c.connection_id === before.connection_id) return null;
        const r = await statsRow(alice, greeter.id);
        return r && r.connection_id === c.connection_id && r.totalAudioEnergy > 0 ? Date.now() : null;
      }, 30000);
      check(true, `the page hears greeter again on a new connection, same session, ${heard - killedAt} ms after the kill`);
      check(await alice.page.evaluate(() => window.voice.sessionId()) === aliceId, 'the page kept its session (no reload)');
      await alice.page.locator(`#members li[data-session-id="${greeter.id}"]`, { hasText: 'voice back' }).waitFor();
      check(true, 'the page marks greeter "moved … voice back"');
      const left = alice.got.filter((f) => f.at >= killedAt && f.msg.type === 'peer_left' && f.msg.session_id === greeter.id);
      const joined = alice.got.filter((f) => f.at >= killedAt && f.msg.type === 'peer_joined' && f.msg.peer.session_id === greeter.id);
      check(left.length >= 1 && joined.length >= 1 && left[0].at <= joined[joined.length - 1].at,
        'the page got peer_left, then peer_joined, for greeter\'s session');
    });
    await step('echo leaves: its connection closes cleanly, and no provider logged a GStreamer warning', async () => {
      // Where echo runs now (it moved if it shared the killed provider): that provider's last echo run.
      const now = (await api(port, 'GET', `/api/lobby/${lobbyId}`)).body.sessions.find((x) => x.session_id === echo.id);
      const host = providers[ids[now.provider_id]];
      const runId = host.lines.map((x) => /run (\S+) started: echo/.exec(x)).filter((m) => m).pop()[1];
      const left = await api(port, 'POST', '/api/bots/leave', { session_id: echo.id, lobby_id: lobbyId });
      check(left.status === 200, `echo left (${left.status})`);
      await host.waitFor(new RegExp(`voice of run ${runId} ends`));
      // GLib's own warnings (a loop in the graph, a failed assertion) are not ours to ignore.
      const warned = Object.values(providers).flatMap((p) => p.lines.filter((x) => /GStreamer-(WARNING|CRITICAL)|GLib-\w*-?CRITICAL/.test(x)));
      check(warned.length === 0, `no GStreamer or GLib warning in the providers' logs (${warned.slice(0, 3).join(' | ')})`);
    });
    await screenshot(alice.page, 'voice-bots.png');
    check(alice.errors.length === 0, `no page errors (${alice.errors.join('; ')})`);
  } finally {
    await cleanup();
  }
}

run(main, 170000);
