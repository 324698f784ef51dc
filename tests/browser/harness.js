// What the browser tests share: the binaries and Chromium, processes whose
// log lines a test can wait for, JSON calls to the server, fake providers of
// the original HTTP protocol, the voice tests' pages, and the pass/fail/skip
// protocol of ctest (exit 0, 1, or 77 for skipped).
'use strict';

const { chromium } = require('playwright-core');
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const path = require('path');

const SKIP = 77;
const BUILD = path.resolve(process.env.VB_BUILD_DIR || path.join(__dirname, '..', '..', 'build'));
const SERVER = path.join(BUILD, 'voicebot-server');
const PROVIDER = path.join(BUILD, 'voicebot-provider');
const CHROMIUM = '/usr/bin/chromium';
const BASE = '/ai-voicebot';
// The per-client quotas off (docs/security.md), for the benchmarks whose one
// loopback client makes many joins and lobbies.
const NO_QUOTAS = ['--max-joins-per-client-per-minute', '0', '--max-lobbies-per-client-per-hour', '0'];
const started = Date.now();

function log(...args) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s]`, ...args);
}

function skip(why) {
  console.log(`SKIP: ${why}`);
  process.exit(SKIP);
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  log(`ok: ${what}`);
}

/// The server binary and Chromium must be there; a missing Chromium skips.
function requireBinaries() {
  if (!fs.existsSync(SERVER)) throw new Error(`${SERVER} is missing: build first`);
  if (!fs.existsSync(CHROMIUM)) skip(`${CHROMIUM} is missing (scripts/setup-deps installs it)`);
}

// -- processes whose log lines we can wait for ------------------------------------

/// Every process a test started; none outlives the test, however it ends
/// (a failed check, the time limit).
const children = new Set();
/// Every process started, to look for sanitizer reports at the end
/// (`scripts/run-tests --sanitize`): one fails the test.
const allProcs = [];
const SANITIZER_REPORT = /ERROR: (Address|Leak)Sanitizer|: runtime error: |SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer/;
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

class Proc {
  constructor(name, file, args) {
    this.name = name;
    this.lines = [];
    this.waiters = [];
    this.proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.proc);
    allProcs.push(this);
    this.proc.on('exit', () => children.delete(this.proc));
    this.exited = new Promise((done) => this.proc.on('exit', (code, sig) => done({ code, sig })));
    let rest = '';
    const onData = (chunk) => {
      rest += chunk.toString();
      const parts = rest.split('\n');
      rest = parts.pop();
      for (const line of parts) {
        this.lines.push(line);
        if (SANITIZER_REPORT.test(line)) this.sanitizerReport = true;
        this.waiters = this.waiters.filter((w) => !w(line));
      }
    };
    this.proc.stdout.on('data', onData);
    this.proc.stderr.on('data', onData);
  }

  /// Resolves with the match of the first line (past or future) matching rx.
  waitFor(rx, timeoutMs = 20000) {
    for (const line of this.lines) {
      const m = rx.exec(line);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no line matched ${rx}\n${this.lines.join('\n')}`)), timeoutMs);
      this.waiters.push((line) => {
        const m = rx.exec(line);
        if (m) { clearTimeout(timer); resolve(m); }
        return !!m;
      });
    });
  }

  async kill(signal = 'SIGKILL') {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    await this.exited;
  }
}

/// voicebot-server under BASE on loopback; `extra` are more flags. With
/// `caf`, also waits for the provider gateway's port (s.cafPort). `name`
/// tells instances apart in logs; `timeoutMs` bounds the wait for its port
/// (an instance of a cluster first waits for its lease in etcd).
async function startServer(dataDir, port, cafPort, { caf = false, extra = [], name = 'voicebot-server', timeoutMs = 20000 } = {}) {
  const s = new Proc(name, SERVER, [
    '--host', '127.0.0.1', '--port', String(port), '--caf-port', String(cafPort),
    '--data-dir', dataDir, '--base-path', BASE, '--log-level', 'info', ...extra]);
  const m = await s.waitFor(/listening on http:\/\/[^:]+:(\d+)/, timeoutMs);
  s.port = Number(m[1]);
  if (caf) {
    const g = await s.waitFor(/provider gateway listening on [^:]+:(\d+)/);
    s.cafPort = Number(g[1]);
  }
  return s;
}

/// A JSON call to the server.
async function api(port, method, p, body) {
  const res = await fetch(`http://127.0.0.1:${port}${BASE}${p}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function until(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// -- a provider of the original HTTP protocol ------------------------------------------

/// An HTTP provider in this process, on a free loopback port: it accepts
/// every join (run ids `${runPrefix}1`, 2, …), every stop, and answers the
/// server's liveness probe (`GET /bots`). It sends no heartbeats, like the
/// original protocol's providers. `stop()` closes it for good: new
/// connections are refused and open ones are cut, as when its process dies.
function fakeProvider({ bots = ['echo', 'greeter'], runPrefix = 'run-' } = {}) {
  const joins = [];
  const stops = [];
  const probes = [];
  let runs = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const answer = (status, obj) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      const join = /^\/bots\/([^/]+)\/join$/.exec(req.url);
      if (req.method === 'POST' && join) {
        const run_id = `${runPrefix}${++runs}`;
        joins.push({ bot: join[1], run_id, ...JSON.parse(body) });
        return answer(200, { status: 'ok', run_id });
      }
      const stop = /^\/bots\/runs\/([^/]+)\/stop$/.exec(req.url);
      if (req.method === 'POST' && stop) {
        stops.push(decodeURIComponent(stop[1]));
        return answer(200, { status: 'stopped' });
      }
      if (req.method === 'GET' && req.url === '/bots') {
        probes.push(Date.now());
        return answer(200, bots.map((name) => ({ name })));
      }
      answer(404, { detail: 'Not Found' });
    });
  });
  const fake = { server, joins, stops, probes, stopped: false };
  fake.stop = () => new Promise((done) => {
    if (fake.stopped) return done();
    fake.stopped = true;
    server.close(() => done());
    server.closeAllConnections(); // the server's keep-alive connections too
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    fake.port = server.address().port;
    fake.base_url = `http://127.0.0.1:${fake.port}`;
    resolve(fake);
  }));
}

/// Registers a fake provider of the echo bot as `name`; notes its id on it.
async function registerFake(port, name, fake) {
  const r = await api(port, 'POST', '/api/bots/providers/register', {
    name, base_url: fake.base_url, bots: [{ name: 'echo', description: 'repeats' }],
  });
  check(r.status === 200, `${name} registered (${r.status})`);
  fake.provider_id = r.body.provider_id;
  fake.name = name;
  return fake;
}

// -- the browser --------------------------------------------------------------------------

/// Headless Chromium; `args` are more flags (the voice test's fake media).
async function launchBrowser({ args = [] } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
  });
}

/// A screenshot into $VB_BUILD_DIR/artifacts/NAME.
async function screenshot(page, name) {
  const dir = path.join(BUILD, 'artifacts');
  fs.mkdirSync(dir, { recursive: true });
  const shot = path.join(dir, name);
  // A loaded machine can take long to render (fonts): a generous limit.
  await page.screenshot({ path: shot, fullPage: true, timeout: 60000 });
  log(`screenshot: ${shot}`);
  return shot;
}

// -- voice: pages that talk (web_voice, web_turn, web_voice_cluster) --------------------

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

/// A page on the lobby; `sent` and `got` record its WebSocket frames;
/// `query` goes in the page's address (`?ice=relay`, web/voice.js).
async function openPage(browser, origin, lobbyId, name, { query = '' } = {}) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.context().grantPermissions(['microphone'], { origin });
  const p = { name, page, errors: [], sent: [], got: [] };
  page.on('pageerror', (e) => p.errors.push(String(e)));
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => p.sent.push({ at: Date.now(), msg: parse(f.payload) }));
    ws.on('framereceived', (f) => p.got.push({ at: Date.now(), msg: parse(f.payload) }));
  });
  page.setDefaultTimeout(20000);
  await page.goto(`${origin}${BASE}/${query}#lobby=${encodeURIComponent(lobbyId)}`);
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

// -- sampling the audio while a server is down ----------------------------------------------

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
/// counting from the first sample and up to the last; `at` is when it
/// began, in ms after the first sample.
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
  let at = 0;
  for (let i = 1; i < points.length; i++) {
    if (points[i] - points[i - 1] > gap) { gap = points[i] - points[i - 1]; at = points[i - 1] - points[0]; }
  }
  // The sampler's own longest interval, and the longest time since the last packet any sample saw.
  let interval = 0;
  for (let i = 1; i < samples.length; i++) interval = Math.max(interval, samples[i].t - samples[i - 1].t);
  let stale = null;
  for (const s of samples) {
    const r = s.rows.find((x) => x.session_id === peerId);
    if (r && typeof r.sinceLastPacket === 'number') stale = Math.max(stale || 0, r.sinceLastPacket);
  }
  // A gap no longer than the sampler's lateness (a busy machine) is the sampler's: then the
  // packets' own timestamps tell the audio's gap.
  const audio = gap > interval + 50 || stale === null ? gap : Math.max(stale, 100);
  return { gap: Math.round(gap), at: Math.round(at), rises: rises.length, samples: samples.length,
    interval: Math.round(interval), stale: stale === null ? null : Math.round(stale), audio: Math.round(audio) };
}

/// Samples every page while `during` runs (it may kill and restart a
/// server); answers each page's samples, in the pages' order.
async function sampleDuring(pages, during) {
  await Promise.all(pages.map(startSampler));
  await during();
  return Promise.all(pages.map(stopSampler));
}

/// Checks a page's audio from `from` went on (largestGap's audio gap under
/// maxGapMs, over at least minSamples samples); answers the gap.
function checkAudioGap(p, samples, from, maxGapMs, minSamples = 0) {
  const g = largestGap(samples, from);
  check(g.samples >= minSamples && g.audio < maxGapMs,
    `${p.name}: audio gap ${g.audio} ms (largest between rising samples ${g.gap} ms, ${g.at} ms in, ${g.rises} rises in ` +
    `${g.samples} samples, longest sampling interval ${g.interval} ms, longest since a packet ${g.stale} ms)`);
  return g;
}

/// The pages' connections now (`before`, by page name), and `same()`,
/// which checks each page still has those RTCPeerConnections, connected.
async function keepConnections(pages) {
  const before = {};
  for (const p of pages) before[p.name] = await peersOf(p);
  const ids = (conns) => JSON.stringify(conns.map((c) => c.connection_id));
  const same = async () => {
    for (const p of pages) {
      const now = await peersOf(p);
      check(ids(now) === ids(before[p.name]),
        `${p.name} keeps the same RTCPeerConnection (${now.map((c) => `${c.connection_id} ${c.connectionState}`).join(', ')})`);
      check(now.every((c) => c.connectionState === 'connected'), `${p.name}'s connection is still connected`);
    }
  };
  return { before, same };
}

/// A lobby made on the server at `port`, and two pages of it (alice, bob)
/// in a new browser with fake media playing `wav`.
async function voiceRoom(port, name, wav) {
  const created = await api(port, 'POST', '/api/lobby', { name });
  check(created.status === 201, `the lobby was created (${created.status})`);
  const lobbyId = created.body.id;
  const origin = `http://127.0.0.1:${port}`;
  const browser = await launchBrowser({ args: voiceFlags(wav) });
  const alice = await openPage(browser, origin, lobbyId, 'alice');
  const bob = await openPage(browser, origin, lobbyId, 'bob');
  return { lobbyId, browser, alice, bob };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/// Runs one step; a failure names it and adds what each page shows and
/// sent (screenshots `${ctx.shots}-failed-NAME.png`), and the end of the
/// logs of ctx.server, ctx.turn (coturn) and ctx.procs (more processes).
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
        await screenshot(p.page, `${ctx.shots || 'web-voice'}-failed-${p.name}.png`);
      } catch (e) {
        state += `\n(${p.name}: ${e})`;
      }
    }
    for (const proc of [ctx.server, ctx.turn, ...(ctx.procs || [])]) {
      if (proc) state += `\n${proc.name} log (last 25 lines):\n  ${proc.lines.slice(-25).join('\n  ')}`;
    }
    err.message = `stopped at step "${name}": ${err.message}${state}`;
    throw err;
  }
}

/// Runs main() with an overall time limit, then exits 0 (pass) or 1.
function run(main, limitMs = 110000) {
  const guard = setTimeout(() => {
    console.error(`FAIL: the browser test took longer than ${limitMs / 1000} s`);
    process.exit(1);
  }, limitMs);
  const sanitizerReports = () => {
    const bad = allProcs.filter((p) => p.sanitizerReport);
    for (const p of bad) console.error(`sanitizer report from ${p.name}:\n${p.lines.join('\n')}`);
    return bad.length > 0;
  };
  main().then(() => {
    clearTimeout(guard);
    if (sanitizerReports()) {
      console.error('FAIL: sanitizer report');
      process.exit(1);
    }
    log('PASS');
    process.exit(0);
  }, (err) => {
    sanitizerReports();
    console.error('FAIL:', err && err.stack ? err.stack : err);
    process.exit(1);
  });
}

module.exports = {
  SKIP, BUILD, SERVER, PROVIDER, CHROMIUM, BASE, NO_QUOTAS,
  log, skip, check, requireBinaries, Proc, startServer, api, until, fakeProvider, registerFake,
  launchBrowser, screenshot, run,
  sleep, makeSpeech, voiceFlags, openPage, peersOf, statsOf, welcomed, sentSince, joinVoice, connected, hears,
  startSampler, stopSampler, largestGap, sampleDuring, checkAudioGap, keepConnections, voiceRoom, median, stepOf,
};
