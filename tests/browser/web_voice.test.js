// The voice room of the lobby page (SPEC §9) in a real browser: two pages of
// one headless Debian Chromium, driven by playwright-core, against the real
// voicebot-server under a base path, everything on loopback.
//
//   node web_voice.test.js        (tests/browser/run voice)
//
// Scenario: Chromium's fake microphone plays a WAV made with espeak-ng (a
// tone when espeak-ng is missing). Both pages open one lobby and join
// it with voice; each hears the other, judged by getStats() (inbound-rtp
// audio: packets rise, energy above 0), and the members list marks the
// other as a voice peer and as speaking. The server is killed (-9): the
// audio goes on, sampled every 100 ms in the pages (no gap of 500 ms), and
// after the server is back on the same port and data dir both pages say
// hello again with resume and keep the very same RTCPeerConnections (the
// ids the page gives each one), with no renegotiation. Then one page is
// reloaded: it rejoins the same session (no new POST, hello without
// resume), both make a new connection and hear each other again. A
// screenshot is saved under $VB_BUILD_DIR/artifacts/.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const {
  BASE, log, check, requireBinaries, startServer, api, until, launchBrowser, screenshot, run,
} = require('./harness');

const DOWNTIME_MS = 4000;  // the server stays down this long
const MAX_GAP_MS = 500;    // the largest gap between rising packet counts allowed meanwhile
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/// Speech for the fake microphone; without espeak-ng, a tone of the same
/// format (22050 Hz mono S16), so the call still carries sound.
function makeSpeech(dir) {
  const wav = path.join(dir, 'speech.wav');
  try {
    execFileSync('espeak-ng', ['-w', wav, 'Hello from the voice test. One, two, three, four, five. The lobby page is listening.']);
    return wav;
  } catch (err) {
    log(`espeak-ng did not run (${err.code || err.message}): a tone instead of speech`);
  }
  const rate = 22050;
  const samples = rate * 3;
  const data = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) {
    const on = Math.floor(i / (rate / 4)) % 2 === 0; // a quarter second on, one off: it sounds like words
    data.writeInt16LE(on ? Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)) : 0, i * 2);
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  fs.writeFileSync(wav, Buffer.concat([header, data]));
  return wav;
}

/// Chromium's flags for fake media and two live pages (STYLE.md, "Verified: WebRTC voice").
function voiceFlags(wav) {
  return ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`,
    '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
    '--disable-features=WebRtcHideLocalIpsWithMdns', '--disable-background-timer-throttling',
    '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'];
}

// -- one page and what it says and sends ------------------------------------------------

/// A page on the lobby; `frames` records what it sends on its WebSockets.
async function openPage(browser, origin, lobbyId, name) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.context().grantPermissions(['microphone'], { origin });
  const p = { name, page, errors: [], sent: [], got: [] };
  page.on('pageerror', (e) => p.errors.push(String(e)));
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => p.sent.push({ at: Date.now(), msg: parse(f.payload) }));
    ws.on('framereceived', (f) => p.got.push({ at: Date.now(), msg: parse(f.payload) }));
  });
  page.setDefaultTimeout(20000);
  await page.goto(`${origin}${BASE}/#lobby=${encodeURIComponent(lobbyId)}`);
  await page.locator('#live', { hasText: 'live' }).waitFor();
  return p;
}

function parse(payload) {
  try { return JSON.parse(String(payload)); } catch (_) { return { unparsed: String(payload).slice(0, 80) }; }
}

const peersOf = (p) => p.page.evaluate(() => window.voice.peers());
const statsOf = (p) => p.page.evaluate(() => window.voice.stats());
const welcomed = (p) => p.page.evaluate(() => !!(window.voice && window.voice.welcomed()));
const sentSince = (p, at, type) => p.sent.filter((f) => f.at >= at && f.msg.type === type);

async function joinVoice(p, nick) {
  await p.page.fill('#voice-nick', nick);
  await p.page.click('#voice-join-button');
  await until(`${p.name} in the voice room`, () => welcomed(p));
  const id = await p.page.evaluate(() => window.voice.sessionId());
  log(`${p.name} joined with voice as session ${id}`);
  return id;
}

/// The connection of `p` to `peerId`, once connected.
function connected(p, peerId) {
  return until(`${p.name}'s connection to ${peerId} to connect`, async () =>
    (await peersOf(p)).find((c) => c.session_id === peerId && c.connectionState === 'connected'), 30000);
}

/// `p` hears `peerId`: inbound audio packets with energy, still rising a second later.
async function hears(p, peerId, other) {
  const row = async () => (await statsOf(p)).find((r) => r.session_id === peerId);
  const first = await until(`${p.name} to hear ${other}`, async () => {
    const r = await row();
    return r && r.packetsReceived >= 25 && r.totalAudioEnergy > 0 ? r : null;
  }, 30000);
  await sleep(1000);
  const later = await row();
  check(later.connection_id === first.connection_id && later.packetsReceived > first.packetsReceived + 20,
    `${p.name} hears ${other}: ${first.packetsReceived} then ${later.packetsReceived} packets, energy ${later.totalAudioEnergy.toFixed(3)}`);
  return later;
}

// -- sampling the audio while the server is down ------------------------------------------------

/// Samples window.voice.stats() every 100 ms inside the page (no round trip to the test).
function startSampler(p) {
  return p.page.evaluate((ms) => {
    window.voiceTestSamples = [];
    window.voiceTestSampler = setInterval(() => {
      const t = performance.now();
      window.voice.stats().then((rows) => window.voiceTestSamples.push({ t, rows }));
    }, ms);
  }, 100);
}

function stopSampler(p) {
  return p.page.evaluate(() => { clearInterval(window.voiceTestSampler); return window.voiceTestSamples; });
}

/// The largest time without a rise of packetsReceived from `peerId`,
/// counting from the first sample and up to the last.
function largestGap(samples, peerId) {
  const rises = [];
  let prev = null;
  for (const s of samples) {
    const r = s.rows.find((x) => x.session_id === peerId);
    if (!r) continue;
    if (prev !== null && r.packetsReceived > prev) rises.push(s.t);
    prev = r.packetsReceived;
  }
  const points = [samples[0].t, ...rises, samples[samples.length - 1].t];
  let gap = 0;
  for (let i = 1; i < points.length; i++) gap = Math.max(gap, points[i] - points[i - 1]);
  return { gap: Math.round(gap), rises: rises.length, samples: samples.length };
}

// -- the scenario --------------------------------------------------------------------------------

async function main() {
  requireBinaries();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-voice-'));
  const dataDir = path.join(tmp, 'data');
  const ctx = { server: null, pages: [] };
  let browser = null;
  const cleanup = async () => {
    if (browser) await browser.close().catch(() => {});
    if (ctx.server) await ctx.server.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const step = (name, fn) => stepOf(ctx, name, fn);
  try {
    const wav = makeSpeech(tmp);
    ctx.server = await startServer(dataDir, 0, 0);
    const port = ctx.server.port;
    const origin = `http://127.0.0.1:${port}`;
    log(`server on port ${port}`);
    const created = await api(port, 'POST', '/api/lobby', { name: 'Voice test lobby' });
    check(created.status === 201, `the lobby was created (${created.status})`);
    const lobbyId = created.body.id;

    browser = await launchBrowser({ args: voiceFlags(wav) });
    const alice = await openPage(browser, origin, lobbyId, 'alice');
    const bob = await openPage(browser, origin, lobbyId, 'bob');
    ctx.pages.push(alice, bob);

    const [aliceId, bobId] = await step('both join with voice', async () => {
      const a = await joinVoice(alice, 'alice');
      const b = await joinVoice(bob, 'bob');
      check(a && b && a !== b, 'two sessions');
      const lobby = await api(port, 'GET', `/api/lobby/${lobbyId}`);
      check(lobby.body.sessions.filter((s) => !s.is_bot && (s.session_id === a || s.session_id === b)).length === 2,
        'both are people members of the lobby');
      return [a, b];
    });

    await step('each hears the other', async () => {
      await connected(alice, bobId);
      await connected(bob, aliceId);
      await hears(alice, bobId, 'bob');
      await hears(bob, aliceId, 'alice');
      const polite = (await peersOf(alice)).find((c) => c.session_id === bobId).polite;
      check(polite === aliceId < bobId, 'the smaller session_id is the polite side');
      await alice.page.locator(`#members li.voice[data-session-id="${bobId}"] .level`).waitFor();
      await alice.page.locator(`#members li.voice.me[data-session-id="${aliceId}"]`).waitFor();
      await alice.page.locator(`#members li.speaking[data-session-id="${bobId}"]`).waitFor({ timeout: 15000 });
      check(true, 'alice\'s members list marks bob as a voice peer, and as speaking');
    });

    const before = { alice: await peersOf(alice), bob: await peersOf(bob) };
    const sameConnections = async () => {
      for (const p of [alice, bob]) {
        const now = await peersOf(p);
        check(JSON.stringify(now.map((c) => c.connection_id)) === JSON.stringify(before[p.name].map((c) => c.connection_id)),
          `${p.name} keeps the same RTCPeerConnection (${now.map((c) => `${c.connection_id} ${c.connectionState}`).join(', ')})`);
        check(now.every((c) => c.connectionState === 'connected'), `${p.name}'s connection is still connected`);
      }
    };

    await step('the server is killed: the call goes on', async () => {
      await Promise.all([startSampler(alice), startSampler(bob)]);
      await ctx.server.kill('SIGKILL');
      log('server killed');
      await sleep(DOWNTIME_MS);
      const [sa, sb] = await Promise.all([stopSampler(alice), stopSampler(bob)]);
      for (const [p, samples, from] of [[alice, sa, bobId], [bob, sb, aliceId]]) {
        const g = largestGap(samples, from);
        check(g.samples >= DOWNTIME_MS / 100 * 0.8 && g.gap < MAX_GAP_MS,
          `${p.name}: largest gap ${g.gap} ms between rising samples (${g.rises} rises in ${g.samples} samples)`);
        check(!(await welcomed(p)), `${p.name} noticed its socket dropped`);
      }
      await sameConnections();
    });

    const restartedAt = Date.now();
    await step('the server is back: same connections, no renegotiation', async () => {
      ctx.server = await startServer(dataDir, port, 0);
      log(`server started again on port ${ctx.server.port}`);
      await until('both pages in the voice room again', async () => (await welcomed(alice)) && (await welcomed(bob)), 30000);
      for (const p of [alice, bob]) {
        const hellos = sentSince(p, restartedAt, 'hello');
        check(hellos.length >= 1 && hellos.every((f) => f.msg.resume === true), `${p.name} said hello with resume: true`);
      }
      await Promise.all([startSampler(alice), startSampler(bob)]);
      await sleep(2000);
      const [sa, sb] = await Promise.all([stopSampler(alice), stopSampler(bob)]);
      check(largestGap(sa, bobId).gap < MAX_GAP_MS && largestGap(sb, aliceId).gap < MAX_GAP_MS, 'the audio went on through the resume');
      await sameConnections();
      for (const p of [alice, bob]) {
        check(sentSince(p, restartedAt, 'signal').length === 0, `${p.name} sent no signal after the resume`);
      }
    });

    await step('bob reloads: the same session, called anew', async () => {
      const posts = [];
      bob.page.on('request', (r) => { if (r.method() === 'POST' && /\/sessions$/.test(r.url())) posts.push(r.url()); });
      const oldConn = before.alice.find((c) => c.session_id === bobId).connection_id;
      const reloadedAt = Date.now();
      await bob.page.reload();
      await until('bob in the voice room after the reload', () => welcomed(bob));
      check(await bob.page.evaluate(() => window.voice.sessionId()) === bobId, 'bob rejoined the same session_id');
      check(posts.length === 0, 'no new session was posted');
      const hello = sentSince(bob, reloadedAt, 'hello');
      check(hello.length === 1 && hello[0].msg.resume === false && hello[0].msg.session_id === bobId, 'bob said hello without resume');
      const conn = await connected(alice, bobId);
      check(conn.connection_id !== oldConn, `alice made a new connection to bob (${oldConn} then ${conn.connection_id})`);
      await connected(bob, aliceId);
      await hears(alice, bobId, 'bob');
      await hears(bob, aliceId, 'alice');
    });

    for (const p of [alice, bob]) check(p.errors.length === 0, `no script errors on ${p.name}'s page ${p.errors.join('; ')}`);
    await screenshot(alice.page, 'web-voice.png');
  } finally {
    await cleanup();
  }
}

/// Runs one step; a failure names it and adds what each page shows and
/// sent, and the end of the server's log.
async function stepOf(ctx, name, fn) {
  log(`step: ${name}`);
  try {
    return await fn();
  } catch (err) {
    let state = '';
    for (const p of ctx.pages) {
      try {
        const shown = await p.page.evaluate(() => ['#voice-state', '#voice-note', '#voice-mic', '#members']
          .map((s) => `${s}: ${JSON.stringify(document.querySelector(s).innerText)}`).join('; '));
        state += `\n${p.name} shows ${shown}\n${p.name}'s connections: ${JSON.stringify(await peersOf(p))}`;
        state += `\n${p.name} sent: ${p.sent.slice(-12).map((f) => f.msg.type + (f.msg.data ? `(${Object.keys(f.msg.data)})` : '')).join(', ')}`;
        state += `\n${p.name} got: ${p.got.slice(-12).map((f) => f.msg.type + (f.msg.code ? `(${f.msg.code})` : '')).join(', ')}`;
        await screenshot(p.page, `web-voice-failed-${p.name}.png`);
      } catch (e) {
        state += `\n(${p.name}: ${e})`;
      }
    }
    if (ctx.server) state += `\nserver log (last 25 lines):\n  ${ctx.server.lines.slice(-25).join('\n  ')}`;
    err.message = `stopped at step "${name}": ${err.message}${state}`;
    throw err;
  }
}

run(main, 150000);
