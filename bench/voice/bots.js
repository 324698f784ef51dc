// voicebot-provider's bots as voice peers (SPEC §9, docs/voice-bots.md),
// measured with the setup of tests/browser/web_voice_bots.test.js: the real
// voicebot-server on loopback (CAF gateway, `--cleanup-interval 0.5
// --stale-after 1`), real voicebot-provider processes (`--ice-address
// 127.0.0.1`, heartbeats every 0.5 s), pages of one headless Chromium whose
// fake microphone plays speech (harness.js's makeSpeech, looped).
//
//   node bench/voice/bots.js [--parts first,gap,cpu,scale] [--runs 5]
//        [--first-bots greeter,echo] [--gap-bot greeter|echo]
//        [--idle 10] [--speaking 4] [--window 20]
//        [--steps 1,2,4,8,12,16] [--step-window 10] [--pin]
//        [--per-page 4] [--ui-pages]
//
// The parts (each prints its runs and a summary line; all share one server,
// one browser and the providers):
//
// first  A bot join's 200 to the first audio packet at the page from that
//        bot, and to the first packet with energy. Each run: a fresh lobby,
//        a fresh page that joins the voice room, then the page itself posts
//        `POST /api/bots/BOT/join` (fetch, same origin) so the 200 and the
//        samples share the page's clock; the page samples
//        window.voice.stats() every 20 ms after the last sample ended. Also
//        the page's connection to the bot "connected". The member leaves at
//        the end of the run. greeter speaks "hello, NICK" once connected;
//        echo's energy is the page's own speech 500 ms later.
// gap    The voice gap when the provider of a speaking bot is killed (-9).
//        Each run: a fresh victim voicebot-provider (`victim-N`, hosting
//        the bot), a fresh lobby and page, the bot joined on the victim
//        (provider_id preference) and heard (energy); a random 0 to 0.5 s
//        pause (any phase of the heartbeats), then SIGKILL. Measured from
//        the kill: `member_moved` on the page's WebSocket (the frame's
//        arrival in node; then GET /api/lobby must show the new
//        provider_id), the page's new RTCPeerConnection to the same
//        session_id "connected", its first packet and first packet with
//        energy (the page's clock: the kill's time is read in the page
//        right before the signal). The staying provider's log gives when
//        the new run started, was welcomed and connected. `greeter` by
//        default: it speaks on each new connection, so its energy marks the
//        new provider's voice without depending on where the page's
//        looped speech is (`--gap-bot echo`: the page speaks, echo returns
//        it 500 ms later).
// cpu    CPU of one voicebot-provider (`cpu`, hosting echo), from
//        /proc/PID/stat utime+stime over --window seconds: with no run
//        (the baseline, before and after the idle runs), with --idle echo
//        runs in lobbies without a person (idle runs), and with --speaking
//        echo runs, each in its own lobby with one person speaking into it
//        (speaking runs). Per run: (CPU - baseline) / runs.
// scale  Simultaneous speaking runs on the `cpu` provider, stepped up
//        (--steps): each step adds lobbies, each with its own person and
//        an echo, waits until every person hears its echo, then over
//        --step-window seconds reads each person's inbound-rtp (getStats):
//        packets/s, packetsLost, jitter and concealed samples, and the CPU
//        of the provider (and its busiest threads), the server, Chromium
//        (every process of the browser) and the machine (/proc/stat). A
//        step breaks when a person gets under 45 packets/s or its
//        packetsLost rises; the steps stop at the first step that breaks.
//
// The persons of cpu and scale are not the lobby page: one lobby page costs
// Chromium about a third of a core here (its meters, lists and audio
// graph, rendered in software), so a dozen of them would measure
// Chromium. A light person (LIGHT_PERSON below) is a minimal voice peer of
// SPEC §9 in a blank page of the server's origin: a session, hello on the
// lobby WebSocket, an answer to the bot's offer with the fake microphone
// (without Chromium's echo canceller, noise suppression and gain control),
// ICE candidates both ways, and an <audio> element playing what it gets (so
// Chromium decodes it and counts energy and concealment). --per-page N puts
// N persons in one page (default 4; they share the page's capture; 1: each
// its own page); --ui-pages uses lobby pages instead. --pin runs the
// provider on CPU 0 and everything else this script starts (server,
// Chromium) on CPU 1 (taskset), so the persons' cost does not take the
// provider's core (other work on the machine still does: the machine's busy
// share is printed beside).
//
// VB_BUILD_DIR (default build/) holds voicebot-server and voicebot-provider;
// /usr/bin/chromium.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const {
  PROVIDER, BASE, NO_QUOTAS, log, requireBinaries, startServer, api, until, launchBrowser, run,
  sleep, makeSpeech, voiceFlags, joinVoice, median, Proc,
} = require('../../tests/browser/harness');

// -- arguments ----------------------------------------------------------------------

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  if (typeof def === 'boolean') return true;
  return process.argv[i + 1];
}
const PARTS = arg('parts', 'first,gap,cpu,scale').split(',');
const RUNS = Number(arg('runs', '5'));
const FIRST_BOTS = arg('first-bots', 'greeter,echo').split(',');
const GAP_BOT = arg('gap-bot', 'greeter');
const IDLE = Number(arg('idle', '10'));
const SPEAKING = Number(arg('speaking', '4'));
const WINDOW_S = Number(arg('window', '20'));
const STEPS = arg('steps', '1,2,4,8,12,16').split(',').map(Number);
const STEP_WINDOW_S = Number(arg('step-window', '10'));
const PIN = arg('pin', false);
const UI_PAGES = arg('ui-pages', false);
const PER_PAGE = Number(arg('per-page', '4'));
const POLL_MS = 20;
const SERVER_FLAGS = ['--cleanup-interval', '0.5', '--stale-after', '1'];
const HEARTBEAT_S = 0.5;
const MIN_RATE = 45; // packets/s: Opus frames of 20 ms are 50 a second

// -- /proc ----------------------------------------------------------------------------

const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/// utime + stime of a process in ms (0 when it is gone).
function cpuMs(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICK;
  } catch (_) {
    return 0;
  }
}

function status(pid, key) {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch (_) {
    return null;
  }
}

/// Every descendant of `root` (pids).
function descendants(root) {
  const kids = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(d));
    } catch (_) { /* gone */ }
  }
  const out = [];
  const walk = (p) => { for (const k of kids.get(p) || []) { out.push(k); walk(k); } };
  walk(root);
  return out;
}

/// A process's CPU by thread name (digits dropped: "queue3:src" -> "queue:src"), ms.
function threadsCpu(pid) {
  const out = new Map();
  let tids = [];
  try { tids = fs.readdirSync(`/proc/${pid}/task`); } catch (_) { return out; }
  for (const t of tids) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')).replace(/\d+/g, '');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      out.set(t, { name, ms: ((Number(f[11]) + Number(f[12])) * 1000) / TICK });
    } catch (_) { /* gone */ }
  }
  return out;
}

/// The busiest thread names of `pid` between two threadsCpu() (ms/s, top `k`).
function busiest(a, b, seconds, k = 6) {
  const by = new Map();
  for (const [t, x] of b) {
    const d = x.ms - (a.has(t) ? a.get(t).ms : 0);
    by.set(x.name, (by.get(x.name) || 0) + d / seconds);
  }
  return [...by].sort((x, y) => y[1] - x[1]).slice(0, k).map(([n, v]) => `${n} ${v.toFixed(0)}`).join(', ');
}

/// The machine's CPU: [busy ms, total ms] over all cores.
function machine() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3] + (f[4] || 0);
  return [((total - idle) * 1000) / TICK, (total * 1000) / TICK];
}

/// The load average, and the share of the last 10 s in which a task waited for a CPU (PSI).
const loadavg = () => {
  const l = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  let psi = '';
  try { psi = `, CPU pressure ${/avg10=([\d.]+)/.exec(fs.readFileSync('/proc/pressure/cpu', 'utf8'))[1]} %`; } catch (_) { /* no PSI */ }
  return l + psi;
};

/// CPU of named processes (and the browser's whole tree) over `fn`.
async function cpuOver(who, browserPids, fn) {
  const take = () => {
    const r = {};
    for (const [k, pid] of Object.entries(who)) r[k] = cpuMs(pid);
    r.chromium = new Map(browserPids().map((p) => [p, cpuMs(p)]));
    r.machine = machine();
    r.t = Date.now();
    return r;
  };
  const a = take();
  const out = await fn();
  const b = take();
  const s = (b.t - a.t) / 1000;
  const res = { seconds: s, out };
  for (const k of Object.keys(who)) res[k] = (b[k] - a[k]) / s; // ms of CPU per s
  // Only the browser processes alive at both ends (a page opened or closed meanwhile
  // would count its whole life).
  let chromium = 0;
  for (const [p, ms] of b.chromium) if (a.chromium.has(p)) chromium += ms - a.chromium.get(p);
  res.chromium = chromium / s;
  res.machineBusy = (b.machine[0] - a.machine[0]) / s; // ms per s over all cores
  res.cores = (b.machine[1] - a.machine[1]) / s / 1000;
  return res;
}

// -- processes --------------------------------------------------------------------------

function providerArgs(tmp, name, cafPort, bots) {
  return ['--server-host', '127.0.0.1', '--server-port', String(cafPort), '--name', name,
    '--state-file', path.join(tmp, `${name}.json`), '--heartbeat-interval', String(HEARTBEAT_S),
    '--ice-address', '127.0.0.1', '--bots', bots, '--max-backoff', '1'];
}

async function startProvider(tmp, name, cafPort, bots, cpus = null) {
  const args = providerArgs(tmp, name, cafPort, bots);
  // taskset execs the provider: the pid is the provider's.
  const p = cpus === null ? new Proc(name, PROVIDER, args) : new Proc(name, 'taskset', ['-c', cpus, PROVIDER, ...args]);
  const m = await p.waitFor(/registered as ([0-9a-f-]+)/);
  p.id = m[1];
  p.pid = p.proc.pid;
  return p;
}

/// The time of a provider log line (its local-time prefix) as epoch ms.
function lineTime(line) {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})/.exec(line);
  return m ? new Date(m[1]).getTime() : null;
}

function firstLine(p, rx, after = 0) {
  for (const l of p.lines) {
    if (!rx.test(l)) continue;
    const t = lineTime(l);
    if (t !== null && t >= after) return t;
  }
  return null;
}

// -- pages ------------------------------------------------------------------------------

/// Records every RTCPeerConnection the page makes (window.benchPcs), for
/// getStats() fields window.voice.stats() does not give (packetsLost, jitter);
/// window.benchInbound(pcs) sums the inbound audio of live connections.
const RECORD_PCS = `(() => {
  window.benchInbound = async (pcs) => {
    const r = { packetsReceived: 0, packetsLost: 0, jitter: 0, concealed: 0, samples: 0, energy: 0, conns: 0, t: performance.now() };
    for (const pc of pcs) {
      if (pc.connectionState === 'closed') continue;
      r.conns++;
      (await pc.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
        r.t = s.timestamp; // when the browser took these figures (ms)
        r.packetsReceived += s.packetsReceived || 0;
        r.packetsLost += s.packetsLost || 0;
        r.jitter = Math.max(r.jitter, s.jitter || 0);
        r.concealed += s.concealedSamples || 0;
        r.samples += s.totalSamplesReceived || 0;
        r.energy += s.totalAudioEnergy || 0;
      });
    }
    return r;
  };
  const Orig = window.RTCPeerConnection;
  if (!Orig) return;
  window.benchPcs = [];
  window.RTCPeerConnection = class extends Orig {
    constructor(...a) { super(...a); window.benchPcs.push(this); }
  };
})();`;

/// harness.openPage with the init script, and without a viewport's worth of work.
async function openPage(browser, origin, lobbyId, name) {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  await context.grantPermissions(['microphone'], { origin });
  await context.addInitScript({ content: RECORD_PCS });
  const page = await context.newPage();
  const p = { name, page, context, errors: [], sent: [], got: [] };
  const parse = (x) => { try { return JSON.parse(String(x)); } catch (_) { return {}; } };
  page.on('pageerror', (e) => p.errors.push(String(e)));
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => p.sent.push({ at: Date.now(), msg: parse(f.payload) }));
    ws.on('framereceived', (f) => p.got.push({ at: Date.now(), msg: parse(f.payload) }));
  });
  page.setDefaultTimeout(30000);
  await page.goto(`${origin}${BASE}/#lobby=${encodeURIComponent(lobbyId)}`);
  await page.locator('#live', { hasText: 'live' }).waitFor();
  return p;
}

const closePage = (p) => p.context.close().catch(() => {});

/// In the page: posts the join, then samples window.voice.stats() every
/// POLL_MS until `bot`'s session has sent a packet with energy. Answers the
/// join's body; window.benchFirst holds the times (page clock, ms).
function joinAndWatch(p, bot, lobbyId, nick, providerId) {
  return p.page.evaluate(async ({ bot, lobbyId, nick, providerId, base, pollMs }) => {
    const w = { sent: null, ok: null, connected: null, packet: null, energy: null, samples: 0, done: false };
    window.benchFirst = w;
    w.sent = performance.now();
    const res = await fetch(`${base}/api/bots/${bot}/join`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(providerId ? { lobby_id: lobbyId, nick, provider_id: providerId } : { lobby_id: lobbyId, nick }),
    });
    const body = await res.json();
    w.ok = performance.now();
    if (res.status !== 200) { w.done = true; return { status: res.status, body }; }
    const id = body.session_id;
    const tick = async () => {
      const began = performance.now();
      const rows = await window.voice.stats();
      const t = performance.now();
      w.samples++;
      if (w.connected === null && window.voice.peers().some((c) => c.session_id === id && c.connectionState === 'connected')) w.connected = t;
      const r = rows.find((x) => x.session_id === id);
      if (r && w.packet === null && r.packetsReceived > 0) w.packet = t;
      if (r && w.energy === null && r.totalAudioEnergy > 0) w.energy = t;
      if (w.energy !== null && w.connected !== null) { w.done = true; return; }
      setTimeout(tick, Math.max(0, pollMs - (performance.now() - began)));
    };
    tick();
    return { status: res.status, body };
  }, { bot, lobbyId, nick, providerId, base: BASE, pollMs: POLL_MS });
}

/// In the page: samples stats() every POLL_MS until `sessionId` has a
/// connection other than `oldConn` that received a packet with energy.
function watchNewConnection(p, sessionId, oldConn) {
  return p.page.evaluate(({ sessionId, oldConn, pollMs }) => {
    const w = { newConn: null, connected: null, packet: null, energy: null, samples: 0, done: false, lastOld: null };
    window.benchGap = w;
    const tick = async () => {
      const began = performance.now();
      const rows = await window.voice.stats();
      const t = performance.now();
      w.samples++;
      const c = window.voice.peers().find((x) => x.session_id === sessionId);
      if (c && c.connection_id !== oldConn) {
        if (w.newConn === null) w.newConn = t;
        if (w.connected === null && c.connectionState === 'connected') w.connected = t;
        const r = rows.find((x) => x.connection_id === c.connection_id);
        if (r && w.packet === null && r.packetsReceived > 0) w.packet = t;
        if (r && w.energy === null && r.totalAudioEnergy > 0) w.energy = t;
      } else {
        const r = rows.find((x) => x.connection_id === oldConn);
        if (r) w.lastOld = { t, packets: r.packetsReceived, since: r.sinceLastPacket };
      }
      if (w.energy !== null && w.connected !== null) { w.done = true; return; }
      setTimeout(tick, Math.max(0, pollMs - (performance.now() - began)));
    };
    tick();
  }, { sessionId, oldConn, pollMs: POLL_MS });
}

/// A person without the lobby page (its meters and lists cost a third of a
/// core per page on this machine, headless, software rendering): a minimal
/// voice peer of SPEC §9 in a blank page of the server's origin. It makes a
/// session, says hello, answers the bots' offers with its fake microphone,
/// trades ICE candidates and plays what it gets in an <audio> element (so
/// Chromium decodes it: energy and concealment are counted). It never
/// offers: bots call the people of their welcome. window.persons[k].
const LIGHT_PERSON = `(async ({ base, lobbyId, nick }) => {
  window.persons = window.persons || [];
  const me = { nick, conns: new Map(), welcomed: false, errors: [], events: [] };
  const ev = (what) => me.events.push(Math.round(performance.now()) + ' ' + what);
  window.persons.push(me);
  const r = await fetch(base + '/api/lobby/' + lobbyId + '/sessions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ nick }) });
  const s = await r.json();
  if (r.status !== 201 && r.status !== 200) throw new Error('session: ' + r.status + ' ' + JSON.stringify(s));
  me.sessionId = s.session_id;
  // No echo canceller, noise suppression or gain control: what they cost
  // is Chromium's, not the bots'.
  // The persons of one page share its capture.
  window.personsMic = window.personsMic || navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  const mic = await window.personsMic;
  const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + base + '/ws/lobby/' + lobbyId);
  me.ws = ws;
  const send = (m) => { if (ws.readyState === 1) ws.send(JSON.stringify(m)); };
  const connect = (from) => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    const c = { pc, audio: null };
    pc.onicecandidate = (e) => { if (e.candidate) send({ type: 'signal', to: from, data: { candidate: e.candidate.toJSON() } }); };
    pc.ontrack = (e) => {
      if (!c.audio) { c.audio = document.createElement('audio'); c.audio.autoplay = true; document.body.appendChild(c.audio); }
      c.audio.srcObject = e.streams[0] || new MediaStream([e.track]);
    };
    pc.onconnectionstatechange = () => ev('connection ' + pc.connectionState);
    me.conns.set(from, c);
    ev('new connection to ' + from.slice(0, 8));
    return c;
  };
  const drop = (from) => {
    const c = me.conns.get(from);
    if (!c) return;
    c.pc.close();
    if (c.audio) c.audio.remove();
    me.conns.delete(from);
  };
  let chain = Promise.resolve(); // one message at a time, in order
  const handle = async (m) => {
    if (m.type === 'welcome') me.welcomed = true;
    if (m.type === 'peer_left') { ev('peer_left ' + m.session_id.slice(0, 8)); drop(m.session_id); }
    if (m.type === 'peer_joined') ev('peer_joined ' + m.peer.session_id.slice(0, 8));
    if (m.type !== 'signal') return;
    const d = m.data || {};
    if (d.description && d.description.type === 'offer') {
      let c = me.conns.get(m.from) || connect(m.from);
      try {
        await c.pc.setRemoteDescription(d.description);
      } catch (err) { // a new pipeline (new DTLS certificate): a new connection
        ev('offer refused by the connection (' + err.message + '): a new one');
        drop(m.from);
        c = connect(m.from);
        await c.pc.setRemoteDescription(d.description);
      }
      if (!c.pc.getSenders().some((x) => x.track)) c.pc.addTrack(mic.getAudioTracks()[0], mic);
      await c.pc.setLocalDescription(await c.pc.createAnswer());
      send({ type: 'signal', to: m.from, data: { description: { type: 'answer', sdp: c.pc.localDescription.sdp } } });
    } else if (d.candidate) {
      const c = me.conns.get(m.from);
      if (c) await c.pc.addIceCandidate(d.candidate).catch((err) => me.errors.push(String(err)));
    }
  };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    chain = chain.then(() => handle(m)).catch((err) => me.errors.push(String(err)));
  };
  await new Promise((done, fail) => {
    ws.onopen = () => { send({ type: 'hello', session_id: s.session_id, token: s.session_token, resume: false }); };
    ws.onerror = () => fail(new Error('the lobby socket failed'));
    const t = setInterval(() => { if (me.welcomed) { clearInterval(t); done(); } }, 20);
  });
  return s.session_id;
})`;

/// Light persons' inbound audio, one row per person (its live connections).
function personsInbound(page) {
  return page.evaluate(async () => Promise.all((window.persons || []).map(async (me) =>
    Object.assign(await window.benchInbound([...me.conns.values()].map((c) => c.pc)), {
      errors: me.errors.slice(-3), events: me.events.slice(-8), now: Math.round(performance.now()) }))));
}

/// The page's inbound audio over its live RTCPeerConnections (getStats).
function inbound(p) {
  return p.page.evaluate(() => window.benchInbound(window.benchPcs || []));
}

// -- the bench ----------------------------------------------------------------------------

class Bench {
  constructor(tmp) {
    this.tmp = tmp;
    this.sites = {}; // kind -> { server, providers }: 'gap' with SERVER_FLAGS, 'main' with the defaults
    this.site = null;
    this.browser = null;
    this.pages = new Set();
    this.light = [];
    this.lobbies = 0;
    this.report = [];
  }

  get server() { return this.site.server; }
  get providers() { return this.site.providers; }
  get port() { return this.server.port; }
  get origin() { return `http://127.0.0.1:${this.port}`; }

  async start() {
    const wav = makeSpeech(this.tmp);
    const restCpus = PIN ? '1' : null;
    if (PIN) execFileSync('taskset', ['-apc', restCpus, String(process.pid)]); // the servers and Chromium inherit it
    this.browser = await launchBrowser({ args: voiceFlags(wav) });
  }

  /// The server of a part: the gap's evicts a provider 1 s unseen (the
  /// test's flags); the others' never do (the defaults: a loaded machine
  /// would otherwise evict the provider under measure now and then).
  async use(kind) {
    if (!this.sites[kind]) {
      const server = await startServer(path.join(this.tmp, `data-${kind}`), 0, 0,
        { caf: true, extra: [...(kind === 'gap' ? SERVER_FLAGS : []), ...NO_QUOTAS], name: `voicebot-server (${kind})` });
      this.sites[kind] = { kind, server, providers: {} };
    }
    this.site = this.sites[kind];
  }

  async provider(name, bots, cpus = null) {
    if (!this.providers[name]) this.providers[name] = await startProvider(this.tmp, `${this.site.kind}-${name}`, this.server.cafPort, bots, cpus);
    return this.providers[name];
  }

  async lobby(name) {
    const r = await api(this.port, 'POST', '/api/lobby', { name });
    if (r.status !== 201) throw new Error(`the lobby was not created (${r.status})`);
    return r.body.id;
  }

  async page(lobbyId, nick) {
    const p = await openPage(this.browser, this.origin, lobbyId, nick);
    this.pages.add(p);
    p.sessionId = await joinVoice(p, nick);
    return p;
  }

  async drop(p) {
    this.pages.delete(p);
    await closePage(p);
  }

  async join(bot, lobbyId, nick, providerId) {
    const body = { lobby_id: lobbyId, nick };
    if (providerId) body.provider_id = providerId;
    const r = await api(this.port, 'POST', `/api/bots/${bot}/join`, body);
    if (r.status !== 200) throw new Error(`${bot} join: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  leave(member) {
    return api(this.port, 'POST', '/api/bots/leave', { session_id: member.session_id, lobby_id: member.lobby_id });
  }

  browserPids() {
    const known = new Set();
    for (const site of Object.values(this.sites)) {
      known.add(site.server.proc.pid);
      for (const p of Object.values(site.providers)) known.add(p.pid);
    }
    return descendants(process.pid).filter((p) => !known.has(p));
  }

  // -- 1. join's 200 to the first audio -----------------------------------------------

  async first() {
    await this.provider('voice-a', 'echo,greeter,listener');
    const rows = {};
    for (const bot of FIRST_BOTS) {
      rows[bot] = [];
      for (let i = 1; i <= RUNS; i++) {
        const lobbyId = await this.lobby(`first ${bot} ${++this.lobbies}`);
        const p = await this.page(lobbyId, 'alice');
        const joined = await joinAndWatch(p, bot, lobbyId, `${bot}-${i}`, this.providers['voice-a'].id);
        if (joined.status !== 200) throw new Error(`${bot} join: ${joined.status} ${JSON.stringify(joined.body)}`);
        const w = await until(`${bot}'s audio with energy`, async () => {
          const x = await p.page.evaluate(() => window.benchFirst);
          return x.done ? x : null;
        }, 30000);
        const r = {
          post: w.ok - w.sent, connected: w.connected - w.ok, packet: w.packet - w.ok, energy: w.energy - w.ok, samples: w.samples,
        };
        rows[bot].push(r);
        console.log(`first ${bot} run ${i}: from the join's 200 (the POST took ${r.post.toFixed(0)} ms): connected ${r.connected.toFixed(0)} ms, `
          + `first packet ${r.packet.toFixed(0)} ms, first packet with energy ${r.energy.toFixed(0)} ms (${r.samples} samples)`);
        await this.leave(joined.body);
        await this.drop(p);
      }
      const m = (k) => median(rows[bot].map((r) => r[k])).toFixed(0);
      const line = `first ${bot}: median of ${RUNS}: first packet ${m('packet')} ms, first packet with energy ${m('energy')} ms, `
        + `connected ${m('connected')} ms after the join's 200 (the POST itself ${m('post')} ms)`
        + ` [packet ${rows[bot].map((r) => r.packet.toFixed(0)).join(', ')}; energy ${rows[bot].map((r) => r.energy.toFixed(0)).join(', ')}]`;
      console.log(line);
      this.report.push(line);
    }
  }

  // -- 2. the voice gap when a speaking bot's provider is killed ----------------------

  async gap() {
    await this.provider('voice-b', 'echo,greeter,listener'); // where the bot moves (or voice-a, when there)
    const rows = [];
    let attempts = 0;
    for (let i = 1; i <= RUNS; i++) {
      if (++attempts > 2 * RUNS) throw new Error(`${attempts - 1} attempts for ${RUNS} kills`);
      const victim = await startProvider(this.tmp, `${this.site.kind}-victim-${attempts}`, this.server.cafPort, GAP_BOT);
      victim.pid = victim.proc.pid;
      const lobbyId = await this.lobby(`gap ${++this.lobbies}`);
      const p = await this.page(lobbyId, 'alice');
      const member = await this.join(GAP_BOT, lobbyId, `${GAP_BOT}-${i}`, victim.id);
      if (member.provider_id !== victim.id) throw new Error(`the join went to ${member.provider_id}, not the victim`);
      const before = await until(`${GAP_BOT} heard from the victim`, async () => {
        const c = (await p.page.evaluate(() => window.voice.peers())).find((x) => x.session_id === member.session_id);
        const r = (await p.page.evaluate(() => window.voice.stats())).find((x) => x.session_id === member.session_id);
        return c && r && c.connectionState === 'connected' && r.totalAudioEnergy > 0 ? c : null;
      }, 30000);
      await sleep(1500 + Math.random() * HEARTBEAT_S * 1000); // greeter's hello is over; any phase of the heartbeats
      await watchNewConnection(p, member.session_id, before.connection_id);
      const killedPage = await p.page.evaluate(() => performance.now());
      const killedAt = Date.now();
      victim.proc.kill('SIGKILL');
      // On a loaded machine the victim may have missed its heartbeats (evicted 1 s
      // unseen): then its member moved before the kill, and the run says nothing.
      const early = p.got.find((f) => f.msg.type === 'member_moved' && f.msg.member.session_id === member.session_id);
      if (early) {
        console.log(`gap attempt ${attempts}: ${GAP_BOT} moved ${killedAt - early.at} ms before the kill (the victim missed `
          + `its heartbeats: ${victim.lines.filter((l) => /heartbeat|link|registered/.test(l)).slice(-3).join(' | ')}); again`);
        await this.leave({ session_id: member.session_id, lobby_id: lobbyId });
        await this.drop(p);
        await victim.kill('SIGKILL');
        i--;
        continue;
      }
      const moved = await until('member_moved', async () =>
        p.got.find((f) => f.at >= killedAt && f.msg.type === 'member_moved' && f.msg.member.session_id === member.session_id), 30000);
      const lobby = await api(this.port, 'GET', `/api/lobby/${lobbyId}`);
      const now = lobby.body.sessions.find((s) => s.session_id === member.session_id);
      const to = Object.values(this.providers).find((x) => now && x.id === now.provider_id);
      if (!now || !to) {
        console.log(`gap attempt ${attempts}: disturbed, the lobby shows ${JSON.stringify(now)} after member_moved `
          + `${JSON.stringify(moved.msg.member)}; again`);
        await this.leave({ session_id: member.session_id, lobby_id: lobbyId });
        await this.drop(p);
        i--;
        continue;
      }
      if (now.provider_id !== moved.msg.member.provider_id) log(`the lobby shows ${now.provider_id} already (moved again?)`);
      const w = await until('audio with energy from the new provider', async () => {
        const x = await p.page.evaluate(() => window.benchGap);
        return x.done ? x : null;
      }, 30000);
      // A loaded machine: the staying provider too may miss heartbeats, be evicted
      // and its member moved again (or orphaned): such a run measures the load.
      const moves = p.got.filter((f) => f.at >= killedAt && ['member_moved', 'member_orphaned'].includes(f.msg.type)
        && f.msg.member && f.msg.member.session_id === member.session_id);
      if (moves.length > 1) {
        console.log(`gap attempt ${attempts}: disturbed, the member moved again after the kill (${moves.map((f) =>
          `${f.at - killedAt} ms ${f.msg.type}`).join(', ')}: a provider missed its heartbeats); again`);
        await this.leave({ session_id: member.session_id, lobby_id: lobbyId });
        await this.drop(p);
        i--;
        continue;
      }
      const runId = now.run_id;
      const started = firstLine(to, new RegExp(`run ${runId} started`));
      const welcomed = firstLine(to, new RegExp(`voice of run ${runId}: welcomed`));
      const conn = firstLine(to, new RegExp(`voice of run ${runId}: connected to`));
      const leftAt = p.got.find((f) => f.at >= killedAt && f.msg.type === 'peer_left' && f.msg.session_id === member.session_id);
      const joinedAt = p.got.find((f) => f.at >= killedAt && f.msg.type === 'peer_joined' && f.msg.peer.session_id === member.session_id);
      const r = {
        moved: moved.at - killedAt,
        peerLeft: leftAt ? leftAt.at - killedAt : null,
        peerJoined: joinedAt ? joinedAt.at - killedAt : null,
        started: started ? started - killedAt : null,
        welcomed: welcomed ? welcomed - killedAt : null,
        botConnected: conn ? conn - killedAt : null,
        pageConnected: w.connected - killedPage,
        packet: w.packet - killedPage,
        energy: w.energy - killedPage,
        lastOld: w.lastOld ? w.lastOld.t - killedPage : null,
      };
      r.voiceAdds = r.energy - r.moved;
      r.packetAdds = r.packet - r.moved;
      rows.push(r);
      const f = (x) => (x === null ? '-' : x.toFixed(0));
      console.log(`gap run ${i} (${GAP_BOT}): from the kill: member_moved ${f(r.moved)} ms (peer_left ${f(r.peerLeft)}, `
        + `peer_joined ${f(r.peerJoined)}; new run started ${f(r.started)}, welcomed ${f(r.welcomed)}, its webrtcbin connected `
        + `${f(r.botConnected)} by the provider's log); the page: new connection connected ${f(r.pageConnected)} ms, first packet `
        + `${f(r.packet)} ms, first packet with energy ${f(r.energy)} ms: the voice adds ${f(r.voiceAdds)} ms to member_moved `
        + `(${f(r.packetAdds)} ms to the first packet)`);
      if (r.voiceAdds > 3000) {
        // What took long: the new run's log and what the page's socket got.
        console.log(`  ${to.name}'s log of run ${runId}:\n    ${to.lines.filter((l) => l.includes(runId)).slice(0, 30).join('\n    ')}`);
        console.log(`  the page got after the kill: ${p.got.filter((f) => f.at >= killedAt).slice(0, 40)
          .map((f) => `${f.at - killedAt} ${f.msg.type}${f.msg.data ? `(${Object.keys(f.msg.data)}${f.msg.data.description ? ` ${f.msg.data.description.type}` : ''})` : ''}`).join(', ')}`);
        console.log(`  the page sent after the kill: ${p.sent.filter((f) => f.at >= killedAt).slice(0, 40)
          .map((f) => `${f.at - killedAt} ${f.msg.type}${f.msg.data ? `(${Object.keys(f.msg.data)}${f.msg.data.description ? ` ${f.msg.data.description.type}` : ''})` : ''}`).join(', ')}`);
      }
      await this.leave({ session_id: member.session_id, lobby_id: lobbyId });
      await this.drop(p);
      await victim.kill('SIGKILL');
    }
    const m = (k) => median(rows.map((r) => r[k])).toFixed(0);
    const line = `gap ${GAP_BOT}: median of ${RUNS} kills (${attempts} attempts): member_moved ${m('moved')} ms, new connection's first packet ${m('packet')} ms, `
      + `first packet with energy ${m('energy')} ms after the kill: the voice adds ${m('voiceAdds')} ms (first packet: ${m('packetAdds')} ms) `
      + `[member_moved ${rows.map((r) => r.moved.toFixed(0)).join(', ')}; energy ${rows.map((r) => r.energy.toFixed(0)).join(', ')}; `
      + `adds ${rows.map((r) => r.voiceAdds.toFixed(0)).join(', ')}] (target: adds < 1500 ms)`;
    console.log(line);
    this.report.push(line);
  }

  // -- 3. CPU per idle and per speaking run ------------------------------------------

  /// A person speaking into lobby `lobbyId`: the lobby page (--ui-pages) or
  /// a light person (LIGHT_PERSON), PER_PAGE of them to a page.
  async person(lobbyId, nick) {
    if (UI_PAGES) {
      const p = await this.page(lobbyId, nick);
      return { page: p, ui: true };
    }
    let lp = this.light.find((x) => x.n < PER_PAGE);
    if (!lp) {
      const context = await this.browser.newContext({ viewport: { width: 320, height: 240 } });
      await context.grantPermissions(['microphone'], { origin: this.origin });
      await context.addInitScript({ content: RECORD_PCS });
      const page = await context.newPage();
      lp = { page, context, name: `light page ${this.light.length}`, errors: [], n: 0 };
      page.on('pageerror', (e) => lp.errors.push(String(e)));
      page.on('crash', () => { lp.crashed = true; log(`${lp.name} crashed`); });
      await page.goto(`${this.origin}${BASE}/api/health`);
      this.light.push(lp);
    }
    const idx = lp.n++;
    await lp.page.evaluate(`${LIGHT_PERSON}(${JSON.stringify({ base: BASE, lobbyId, nick })})`);
    return { page: lp, ui: false, idx };
  }

  /// The inbound audio of each person (same order), one evaluate per page.
  async inboundOf(persons) {
    const byPage = new Map();
    const dead = { packetsReceived: 0, packetsLost: 0, jitter: 0, concealed: 0, samples: 0, energy: 0, conns: 0, t: 0, dead: true };
    for (const x of persons) {
      if (x.ui || byPage.has(x.page)) continue;
      // A page that crashed (or closed) counts as persons hearing nothing.
      byPage.set(x.page, personsInbound(x.page.page).catch((err) => {
        x.page.crashed = x.page.crashed || String(err).split('\n')[0];
        return Array(x.page.n).fill(dead);
      }));
    }
    return Promise.all(persons.map(async (x) => (x.ui ? inbound(x.page) : (await byPage.get(x.page))[x.idx])));
  }

  async speakingRun(cpu, i) {
    const lobbyId = await this.lobby(`speaking ${++this.lobbies}`);
    const person = await this.person(lobbyId, `person${i}`);
    const member = await this.join('echo', lobbyId, `echo-${i}`, cpu.id);
    if (member.provider_id !== cpu.id) throw new Error('the echo went to another provider');
    return { person, member };
  }

  /// Waits until every person hears its echo; answers null, or (`lenient`)
  /// after the time limit, what the persons that do not hear it show.
  async hearEcho(runs, lenient = false) {
    const limit = 60000 + 5000 * runs.length;
    const hears = (a) => a.conns > 0 && a.packetsReceived > 25 && a.energy > 0;
    const deadline = Date.now() + limit;
    for (;;) {
      const rows = await this.inboundOf(runs.map((r) => r.person));
      if (rows.every(hears)) return null;
      if (Date.now() > deadline) {
        const deaf = rows.map((a, k) => ({ k, a })).filter((x) => !hears(x.a));
        const what = `${deaf.length} of ${runs.length} persons do not hear their echo after ${limit / 1000} s: `
          + deaf.slice(0, 6).map((x) => `person ${x.k}: ${x.a.conns} connections, ${x.a.packetsReceived} packets, energy `
            + `${x.a.energy.toFixed(3)}, events ${JSON.stringify(x.a.events)}`).join('; ');
        if (!lenient) throw new Error(what);
        return what;
      }
      await sleep(500);
    }
  }

  async endRuns(runs) {
    for (const r of runs) {
      await this.leave(r.member);
      if (r.person.ui) await this.drop(r.person.page);
    }
    for (const lp of this.light) await lp.context.close().catch(() => {});
    this.light = [];
  }

  async cpu() {
    const cpu = await this.provider('cpu', 'echo', PIN ? '0' : null);
    const who = { provider: cpu.pid, server: this.server.proc.pid };
    const measure = (what) => cpuOver(who, () => this.browserPids(), () => sleep(WINDOW_S * 1000)).then((c) => {
      log(`${what}: provider ${c.provider.toFixed(1)} ms/s, server ${c.server.toFixed(1)}, chromium ${c.chromium.toFixed(1)}, `
        + `machine ${c.machineBusy.toFixed(0)} of ${(c.cores * 1000).toFixed(0)} (load ${loadavg()})`);
      return c;
    });
    await sleep(5000); // past its start-up
    const base = await measure('no run');
    const idle = [];
    const welcomedBefore = cpu.lines.filter((l) => /welcomed with 0 peers/.test(l)).length;
    for (let i = 0; i < IDLE; i++) idle.push(await this.join('echo', await this.lobby(`idle ${++this.lobbies}`), `idle-${i}`, cpu.id));
    await until('the idle runs welcomed', async () =>
      cpu.lines.filter((l) => /welcomed with 0 peers/.test(l)).length >= welcomedBefore + IDLE, 30000);
    await sleep(2000);
    const idleCpu = await measure(`${IDLE} idle runs`);
    for (const m of idle) await this.leave(m);
    await sleep(2000);
    const base2 = await measure('no run, after the idle runs');
    const runs = [];
    for (let i = 0; i < SPEAKING; i++) runs.push(await this.speakingRun(cpu, i));
    await this.hearEcho(runs);
    await sleep(2000);
    const a = await this.inboundOf(runs.map((r) => r.person));
    const speakCpu = await measure(`${SPEAKING} speaking runs`);
    const b = await this.inboundOf(runs.map((r) => r.person));
    const rates = runs.map((_, k) => (b[k].packetsReceived - a[k].packetsReceived) / ((b[k].t - a[k].t) / 1000));
    await this.endRuns(runs);
    const baseline = (base.provider + base2.provider) / 2;
    const perIdle = (idleCpu.provider - baseline) / IDLE;
    const perSpeaking = (speakCpu.provider - baseline) / SPEAKING;
    const line = `cpu: voicebot-provider with no run ${base.provider.toFixed(1)} and ${base2.provider.toFixed(1)} ms/s; `
      + `${IDLE} idle runs ${idleCpu.provider.toFixed(1)} ms/s = ${perIdle.toFixed(2)} ms/s per idle run; `
      + `${SPEAKING} speaking runs (echo, each with a ${UI_PAGES ? 'lobby page' : 'light person'} speaking; `
      + `${rates.map((x) => x.toFixed(1)).join(', ')} packets/s) ${speakCpu.provider.toFixed(1)} ms/s = ${perSpeaking.toFixed(1)} ms/s `
      + `per speaking run (beside: server ${speakCpu.server.toFixed(1)} ms/s, chromium ${speakCpu.chromium.toFixed(0)} ms/s, machine `
      + `${speakCpu.machineBusy.toFixed(0)} of ${(speakCpu.cores * 1000).toFixed(0)} ms/s busy; ${WINDOW_S} s windows)`;
    console.log(line);
    this.report.push(line);
  }

  // -- 4. how many speaking runs one provider holds -------------------------------------

  async scale() {
    const cpu = await this.provider('cpu', 'echo', PIN ? '0' : null);
    const who = { provider: cpu.pid, server: this.server.proc.pid };
    const runs = [];
    const table = [];
    for (const n of STEPS) {
      const t0 = Date.now();
      while (runs.length < n) runs.push(await this.speakingRun(cpu, runs.length));
      const deaf = await this.hearEcho(runs, true);
      const setup = (Date.now() - t0) / 1000;
      if (deaf) {
        console.log(`scale ${n} speaking runs: BROKEN before the window: ${deaf} (load ${loadavg()})`);
        console.log(`  ${cpu.name}'s log (last 20 lines):\n    ${cpu.lines.slice(-20).join('\n    ')}`);
        table.push({ n, broken: true, minRate: 0, lost: 0, deaf: true, provider: 0, chromium: 0 });
        break;
      }
      await sleep(2000);
      const persons = runs.map((r) => r.person);
      // Each person's stats every second of the window: the rate over the window,
      // and its worst second.
      const samples = [];
      const ta = threadsCpu(cpu.pid);
      const c = await cpuOver(who, () => this.browserPids(), async () => {
        const end = Date.now() + STEP_WINDOW_S * 1000;
        do {
          const t = Date.now();
          samples.push(await this.inboundOf(persons));
          await sleep(Math.max(0, 1000 - (Date.now() - t)));
        } while (Date.now() < end);
        samples.push(await this.inboundOf(persons));
      });
      const tb = threadsCpu(cpu.pid);
      const a = samples[0];
      const b = samples[samples.length - 1];
      const worstSecond = (k) => {
        let worst = Infinity;
        for (let j = 1; j < samples.length; j++) {
          const x = samples[j - 1][k];
          const y = samples[j][k];
          worst = Math.min(worst, y.dead || x.dead ? 0 : (y.packetsReceived - x.packetsReceived) / ((y.t - x.t) / 1000));
        }
        return worst;
      };
      const per = runs.map((_, k) => {
        const s = (b[k].t - a[k].t) / 1000;
        const samples = b[k].samples - a[k].samples;
        return {
          rate: b[k].dead || a[k].dead ? 0 : (b[k].packetsReceived - a[k].packetsReceived) / s,
          lost: b[k].packetsLost - a[k].packetsLost,
          jitter: b[k].jitter * 1000,
          concealed: samples > 0 ? (b[k].concealed - a[k].concealed) / samples : 0,
          energy: b[k].energy - a[k].energy,
          worst: worstSecond(k),
        };
      });
      const row = {
        n, setup,
        minRate: Math.min(...per.map((x) => x.rate)),
        medRate: median(per.map((x) => x.rate)),
        worst: Math.min(...per.map((x) => x.worst)),
        lost: per.reduce((x, y) => x + y.lost, 0),
        pagesLosing: per.filter((x) => x.lost > 0).length,
        jitter: Math.max(...per.map((x) => x.jitter)),
        concealed: Math.max(...per.map((x) => x.concealed)),
        silent: per.filter((x) => x.energy <= 0).length,
        provider: c.provider, server: c.server, chromium: c.chromium, machine: c.machineBusy, cores: c.cores,
        threads: status(cpu.pid, 'Threads'), rss: status(cpu.pid, 'VmRSS'), load: loadavg(),
        busiest: busiest(ta, tb, c.seconds),
      };
      row.broken = row.minRate < MIN_RATE || row.lost > 0;
      table.push(row);
      console.log(`scale ${n} speaking runs (set up in ${setup.toFixed(1)} s): packets/s at the persons min ${row.minRate.toFixed(1)} `
        + `median ${row.medRate.toFixed(1)}, worst second ${row.worst.toFixed(0)}; packetsLost +${row.lost} at ${row.pagesLosing} persons; jitter max ${row.jitter.toFixed(1)} ms; `
        + `concealed max ${(row.concealed * 100).toFixed(1)} %; persons without echo energy ${row.silent}; CPU ms/s: provider `
        + `${row.provider.toFixed(0)} (${row.threads} threads, ${row.rss} kB), server ${row.server.toFixed(0)}, chromium ${row.chromium.toFixed(0)}, `
        + `machine ${row.machine.toFixed(0)} of ${(row.cores * 1000).toFixed(0)}; load ${row.load}${row.broken ? ': BROKEN' : ''}`);
      console.log(`  the provider's busiest threads (ms/s): ${row.busiest}`);
      if (row.broken) {
        per.forEach((x, k) => {
          if (x.rate >= MIN_RATE && x.lost <= 0) return;
          const secs = samples.slice(1).map((y, j) => ((y[k].packetsReceived - samples[j][k].packetsReceived)
            / ((y[k].t - samples[j][k].t) / 1000)).toFixed(0)).join(' ');
          console.log(`  person ${k}: ${x.rate.toFixed(1)} packets/s (each second: ${secs}), lost +${x.lost}; its connections ${b[k].conns}; page time `
            + `${b[k].now}; events ${JSON.stringify(b[k].events)}; errors ${JSON.stringify(b[k].errors)}`);
        });
        for (const lp of this.light) if (lp.crashed) console.log(`  ${lp.name} crashed or closed: ${lp.crashed}`);
        console.log(`  ${cpu.name}'s log (last 20 lines):\n    ${cpu.lines.slice(-20).join('\n    ')}`);
      }
      if (row.broken) break;
    }
    await this.endRuns(runs);
    const ok = table.filter((r) => !r.broken);
    const bad = table.find((r) => r.broken);
    const line = `scale: ${ok.length ? `held ${ok[ok.length - 1].n} speaking runs` : 'held none'}`
      + `${bad ? `; broke at ${bad.n} (${bad.deaf ? 'not every person heard its echo' : `min ${bad.minRate.toFixed(1)} packets/s, packetsLost +${bad.lost}`})`
        : `; no step of ${STEPS.join(',')} broke`}`
      + `${PIN ? ' (provider on CPU 0, the rest on CPU 1)' : ''}: `
      + table.filter((r) => !r.deaf).map((r) => `${r.n}: provider ${r.provider.toFixed(0)} ms/s, chromium ${r.chromium.toFixed(0)}, min ${r.minRate.toFixed(1)}/s, lost +${r.lost}`).join('; ');
    console.log(line);
    this.report.push(line);
  }

  /// Warnings in the providers' logs (GStreamer's, and ours).
  providerWarnings() {
    const out = [];
    for (const site of Object.values(this.sites)) {
      for (const p of Object.values(site.providers)) {
        const bad = p.lines.filter((l) => /GStreamer-(WARNING|CRITICAL)|GLib-.*(WARNING|CRITICAL)| (warn|error|critical) /.test(l));
        if (bad.length) out.push(`${p.name}: ${bad.length} lines, e.g. ${[...new Set(bad.map((l) => l.replace(/^\S+ /, '').replace(/\d+/g, 'N')))].slice(0, 3).join(' | ')}`);
      }
    }
    return out;
  }

  async close() {
    if (this.browser) await this.browser.close().catch(() => {});
    for (const site of Object.values(this.sites)) {
      for (const p of Object.values(site.providers)) await p.kill('SIGTERM');
      await site.server.kill('SIGTERM');
    }
  }
}

async function main() {
  requireBinaries();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-bots-bench-'));
  const bench = new Bench(tmp);
  try {
    log(`load average ${loadavg()}; ${os.cpus().length} CPUs; parts ${PARTS.join(',')}; the gap's server flags ${SERVER_FLAGS.join(' ')} `
      + `(the others' server: the defaults, no eviction); `
      + `providers heartbeat every ${HEARTBEAT_S} s${PIN ? '; pinned: provider CPU 0, the rest CPU 1' : ''}`);
    await bench.start();
    for (const part of PARTS) {
      if (!['first', 'gap', 'cpu', 'scale'].includes(part)) throw new Error(`unknown part ${part}`);
      log(`part ${part} (load average ${loadavg()})`);
      await bench.use(part === 'gap' ? 'gap' : 'main');
      await bench[part]();
    }
    console.log(`\nsummary (load average at the end ${loadavg()}):`);
    for (const l of bench.report) console.log(`  ${l}`);
    for (const p of bench.pages) if (p.errors.length) throw new Error(`script errors on ${p.name}: ${p.errors.join('; ')}`);
  } finally {
    await bench.close();
    // After the providers stopped: their last lines are the teardowns'.
    for (const w of bench.providerWarnings()) console.log(`warnings in the log of ${w}`);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

run(main, 3600000);
