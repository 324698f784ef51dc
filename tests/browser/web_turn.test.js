// Voice through TURN (docs/voice.md, "ICE servers and TURN"): Debian's
// coturn, started here on loopback with use-auth-secret, relays the audio
// of two pages of one headless Chromium that web/voice.js forces to relay
// candidates only (`?ice=relay`), with the credentials the real
// voicebot-server hands out in each welcome. Everything on 127.0.0.1.
//
//   node web_turn.test.js        (tests/browser/run turn)
//
// Scenario: coturn on a free port (the config below is a tested example of
// conf/coturn/turnserver.conf's flags, plus allow-loopback-peers); the
// server with --turn-url and --turn-secret-file holding coturn's secret.
// Two pages join one lobby with voice: each hears the other, judged by
// getStats() (inbound-rtp audio packets rise, energy above 0), the pair ICE
// selected is relay on both ends, and every candidate a page signals is a
// relay one. Then a second server whose secret file is wrong: two more
// relay-only pages get no relay candidate (coturn logs that it cannot find
// their credentials: a 401), signal no candidate, and receive no audio
// packet for 8 s. A screenshot of each part
// is saved under $VB_BUILD_DIR/artifacts/.
'use strict';

const crypto = require('crypto');
const dgram = require('dgram');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const {
  log, check, requireBinaries, Proc, startServer, api, until, launchBrowser, screenshot, run,
  sleep, makeSpeech, voiceFlags, openPage, peersOf, statsOf, joinVoice, connected, hears, stepOf,
} = require('./harness');

const TURNSERVER = '/usr/bin/turnserver';
const REALM = 'voicebot.test';
const RELAY_PORTS = 32;            // coturn's relay range; a few allocations are made here
const NO_AUDIO_MS = 8000;          // with the wrong secret, no audio packet may arrive this long
const RELAY_ONLY = '?ice=relay';   // web/voice.js: iceTransportPolicy "relay"

// -- coturn ----------------------------------------------------------------------------------

/// A loopback port free for both UDP and TCP (coturn listens on both).
async function freePort() {
  for (;;) {
    const udp = dgram.createSocket('udp4');
    const port = await new Promise((done, fail) => {
      udp.once('error', fail);
      udp.bind(0, '127.0.0.1', () => done(udp.address().port));
    });
    const tcpFree = await new Promise((done) => {
      const srv = net.createServer().once('error', () => done(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => done(true)));
    });
    udp.close();
    if (tcpFree) return port;
  }
}

/// True when a STUN Binding request to 127.0.0.1:port over UDP gets its
/// success answer within 300 ms: coturn's UDP listener is up.
function stunAnswers(port) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    const req = Buffer.alloc(20);
    req.writeUInt16BE(0x0001, 0);     // Binding request, no attributes
    req.writeUInt32BE(0x2112a442, 4); // the magic cookie
    crypto.randomBytes(12).copy(req, 8);
    let settled = false;
    const done = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 300);
    sock.on('message', (m) => done(m.length >= 20 && m.readUInt16BE(0) === 0x0101 && m.subarray(8, 20).equals(req.subarray(8, 20))));
    sock.on('error', () => done(false));
    sock.send(req, port, '127.0.0.1');
  });
}

/// coturn on 127.0.0.1 with a config of its own in `dir`; resolves once it
/// answers STUN. `turn.port` is its listening port, `turn.relayPorts` its
/// relay range.
async function startCoturn(dir, secret) {
  const port = await freePort();
  // Above Linux's ephemeral range (32768-60999): no client socket holds these.
  const minPort = 61000 + crypto.randomInt(0, 4000);
  const conf = path.join(dir, 'turnserver.conf');
  fs.writeFileSync(conf, [
    'listening-ip=127.0.0.1',
    'relay-ip=127.0.0.1',
    `listening-port=${port}`,
    `min-port=${minPort}`,
    `max-port=${minPort + RELAY_PORTS - 1}`,
    'use-auth-secret',
    `static-auth-secret=${secret}`,
    `realm=${REALM}`,
    'no-tls',
    'no-dtls',
    'no-cli',
    'fingerprint',
    // The peers' relay addresses are on 127.0.0.1: coturn refuses loopback peers without this.
    'allow-loopback-peers',
    'no-multicast-peers',
    'log-file=stdout',
    // Not /var/run and /var/lib/turn: nothing of the system's coturn is touched.
    `pidfile=${path.join(dir, 'turnserver.pid')}`,
    `userdb=${path.join(dir, 'turndb')}`,
    '',
  ].join('\n'));
  const turn = new Proc('turnserver', TURNSERVER, ['-c', conf]);
  turn.port = port;
  turn.relayPorts = [minPort, minPort + RELAY_PORTS - 1];
  await until(`coturn to answer STUN on 127.0.0.1:${port}`, async () => {
    if (turn.proc.exitCode !== null || turn.proc.signalCode !== null) {
      throw new Error(`turnserver exited (${turn.proc.exitCode ?? turn.proc.signalCode}):\n${turn.lines.join('\n')}`);
    }
    return stunAnswers(port);
  }, 15000);
  return turn;
}

// -- what the pages got and sent -----------------------------------------------------------------

/// The TURN entry of the last welcome `p` got.
function turnEntry(p) {
  const welcome = p.got.filter((f) => f.msg.type === 'welcome').pop();
  const servers = welcome ? welcome.msg.ice_servers || [] : [];
  return servers.find((s) => (s.urls || []).some((u) => u.startsWith('turn:')));
}

const escapeRx = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/// The candidate lines `p` signaled.
const candidatesSent = (p) => p.sent
  .filter((f) => f.msg.type === 'signal' && f.msg.data && f.msg.data.candidate)
  .map((f) => f.msg.data.candidate.candidate);

/// Two relay-only pages in a new lobby of ctx.server, both joined with voice.
async function twoRelayPages(ctx, browser, names) {
  const port = ctx.server.port;
  const created = await api(port, 'POST', '/api/lobby', { name: `TURN test lobby (${names.join(', ')})` });
  check(created.status === 201, `the lobby was created (${created.status})`);
  const origin = `http://127.0.0.1:${port}`;
  const pages = [];
  for (const name of names) {
    const p = await openPage(browser, origin, created.body.id, name, { query: RELAY_ONLY });
    ctx.pages.push(p);
    pages.push(p);
  }
  const ids = [];
  for (const p of pages) ids.push(await joinVoice(p, p.name));
  return { pages, ids };
}

/// The welcome of `p` carries a TURN credential of coturn's REST API for its
/// session: "EXPIRY:SESSION_ID", base64(HMAC-SHA1(secret, username)).
function checkCredential(p, sessionId, turnUrl, secret) {
  const entry = turnEntry(p);
  check(entry && entry.urls.includes(turnUrl), `${p.name}'s welcome lists ${turnUrl}`);
  const [expiry, sid] = String(entry.username).split(':');
  check(sid === sessionId && Number(expiry) > Date.now() / 1000, `${p.name}'s TURN username is EXPIRY:SESSION_ID (${entry.username})`);
  const hmac = crypto.createHmac('sha1', secret).update(entry.username).digest('base64');
  return { entry, matches: entry.credential === hmac };
}

// -- the scenario --------------------------------------------------------------------------------

async function main() {
  requireBinaries();
  if (!fs.existsSync(TURNSERVER)) {
    throw new Error(`${TURNSERVER} is missing: scripts/setup-deps installs Debian's coturn (apt-get install coturn)`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-turn-'));
  const secret = crypto.randomBytes(24).toString('base64');
  const rightSecret = path.join(tmp, 'turn-secret');
  const wrongSecret = path.join(tmp, 'turn-secret-wrong');
  fs.writeFileSync(rightSecret, `${secret}\n`);
  fs.writeFileSync(wrongSecret, `${crypto.randomBytes(24).toString('base64')}\n`);
  const ctx = { shots: 'web-turn', server: null, turn: null, pages: [] };
  let browser = null;
  const cleanup = async () => {
    if (browser) await browser.close().catch(() => {});
    if (ctx.server) await ctx.server.kill('SIGKILL');
    if (ctx.turn) await ctx.turn.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const step = (name, fn) => stepOf(ctx, name, fn);
  try {
    const wav = makeSpeech(tmp);
    ctx.turn = await step('coturn starts on loopback', () => startCoturn(tmp, secret));
    const turnUrl = `turn:127.0.0.1:${ctx.turn.port}?transport=udp`;
    log(`coturn on ${turnUrl}`);
    const serverWith = (secretFile, dir) => startServer(path.join(tmp, dir), 0, 0,
      { extra: ['--turn-url', turnUrl, '--turn-secret-file', secretFile] });
    browser = await launchBrowser({ args: voiceFlags(wav) });

    await step('the right secret: two relay-only pages hear each other through coturn', async () => {
      ctx.server = await serverWith(rightSecret, 'data-right');
      log(`server on port ${ctx.server.port}`);
      const { pages: [alice, bob], ids: [aliceId, bobId] } = await twoRelayPages(ctx, browser, ['alice', 'bob']);
      check(checkCredential(alice, aliceId, turnUrl, secret).matches, 'alice\'s credential is the HMAC of coturn\'s secret');
      check(checkCredential(bob, bobId, turnUrl, secret).matches, 'bob\'s credential is the HMAC of coturn\'s secret');
      await connected(alice, bobId);
      await connected(bob, aliceId);
      await hears(alice, bobId, 'bob');
      await hears(bob, aliceId, 'alice');
      for (const [p, from] of [[alice, bobId], [bob, aliceId]]) {
        const row = (await statsOf(p)).find((r) => r.session_id === from);
        check(row.localCandidateType === 'relay' && row.remoteCandidateType === 'relay',
          `${p.name}'s selected candidate pair is relay to relay (${row.localCandidateType} / ${row.remoteCandidateType})`);
        const sent = candidatesSent(p);
        const [lo, hi] = ctx.turn.relayPorts;
        // "IP PORT typ relay": an address of this coturn's relay range, not of another TURN server.
        const ours = (c) => { const m = / 127\.0\.0\.1 (\d+) typ relay /.exec(c); return m && Number(m[1]) >= lo && Number(m[1]) <= hi; };
        check(sent.length > 0 && sent.every(ours),
          `${p.name} signaled relay candidates of coturn's ports ${lo}-${hi} only (${sent.length}, e.g. ${JSON.stringify(sent[0])})`);
      }
      for (const p of [alice, bob]) check(p.errors.length === 0, `no script errors on ${p.name}'s page ${p.errors.join('; ')}`);
      await screenshot(alice.page, 'web-turn.png');
      for (const p of [alice, bob]) await p.page.close();
      ctx.pages = [];
      await ctx.server.kill('SIGKILL');
      ctx.server = null;
    });

    await step('a wrong secret: two relay-only pages stay apart', async () => {
      ctx.server = await serverWith(wrongSecret, 'data-wrong');
      log(`server with the wrong secret on port ${ctx.server.port}`);
      const { pages: [carol, dave], ids: [carolId, daveId] } = await twoRelayPages(ctx, browser, ['carol', 'dave']);
      check(!checkCredential(carol, carolId, turnUrl, secret).matches, 'carol\'s credential is not the HMAC of coturn\'s secret');
      check(!checkCredential(dave, daveId, turnUrl, secret).matches, 'dave\'s credential is not the HMAC of coturn\'s secret');
      // Both hold a connection to the other: the call was set up, only the relay is refused.
      await until('carol and dave to hold a connection to each other', async () =>
        (await peersOf(carol)).some((c) => c.session_id === daveId) && (await peersOf(dave)).some((c) => c.session_id === carolId));
      // coturn saw the pages' credentials and refused them: the test did reach it.
      for (const [p, id] of [[carol, carolId], [dave, daveId]]) {
        const user = turnEntry(p).username;
        await ctx.turn.waitFor(new RegExp(`check_stun_auth: Cannot find credentials of user <${escapeRx(user)}>`), 10000);
        check(true, `coturn refused ${p.name}'s username ${user} (session ${id})`);
      }
      const deadline = Date.now() + NO_AUDIO_MS;
      let polls = 0;
      while (Date.now() < deadline) {
        for (const [p, from] of [[carol, daveId], [dave, carolId]]) {
          const row = (await statsOf(p)).find((r) => r.session_id === from);
          const conn = (await peersOf(p)).find((c) => c.session_id === from);
          if ((row && row.packetsReceived > 0) || (conn && conn.connectionState === 'connected')) {
            throw new Error(`${p.name} got through with the wrong secret: ${JSON.stringify({ row, conn })}`);
          }
        }
        polls++;
        await sleep(250); // the pace of the polls: an absence has no event to await
      }
      for (const [p, from] of [[carol, daveId], [dave, carolId]]) {
        const conn = (await peersOf(p)).find((c) => c.session_id === from);
        check(conn && conn.connectionState !== 'connected',
          `${p.name}: no audio packet in ${NO_AUDIO_MS / 1000} s (${polls} polls), connection ${conn && conn.connectionState}`);
        check(candidatesSent(p).length === 0, `${p.name} gathered and signaled no relay candidate`);
      }
      for (const p of [carol, dave]) check(p.errors.length === 0, `no script errors on ${p.name}'s page ${p.errors.join('; ')}`);
      await screenshot(carol.page, 'web-turn-wrong-secret.png');
    });
  } finally {
    await cleanup();
  }
}

run(main, 110000);
