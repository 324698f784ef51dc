// Voice across a cluster (SPEC §8, §9; docs/voice.md, "Cluster mode"): two
// instances of voicebot-server share one lobby through a real etcd, one page
// of a headless Debian Chromium on each, and they hear each other. The
// signals go from one instance to the other over the cluster port; the
// media goes page to page. Everything on 127.0.0.1.
//
//   node web_voice_cluster.test.js        (tests/browser/run voice-cluster)
//
// Scenario: Debian's etcd (one member, free ports, a temp data dir), then
// instances A and B with their own data dirs. A lobby is created on A and
// awaited in B's list; alice opens it on A, bob on B, both join with voice,
// and each hears the other, judged by getStats() (inbound-rtp audio: packets
// rise, energy above 0). Then B is killed (-9): alice, whose socket is on A,
// and bob, whose socket was on B, keep receiving audio (sampled every 100 ms
// in the pages, no gap of 500 ms). B comes back on the same HTTP port and
// data dir: bob's page says hello again with resume on B, both pages keep
// the very same RTCPeerConnections, sign nothing anew, and the audio goes
// on. A screenshot is saved under $VB_BUILD_DIR/artifacts/. Skipped (77)
// when etcd is not installed.
'use strict';

const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const {
  log, skip, check, requireBinaries, Proc, startServer, api, until, launchBrowser, screenshot, run,
  sleep, makeSpeech, voiceFlags, openPage, peersOf, welcomed, sentSince, joinVoice, connected, hears,
  sampleDuring, checkAudioGap, keepConnections, stepOf,
} = require('./harness');

const PREFIX = '/vbweb/';  // --etcd-prefix of both instances
const TTL = 4;             // --instance-ttl of both instances, in seconds
const DOWNTIME_MS = 4000;  // B stays down this long
const MAX_GAP_MS = 500;    // the largest gap between rising packet counts allowed meanwhile

// -- etcd ---------------------------------------------------------------------------------------

/// Debian's etcd on the PATH (tests/integration/etcd_cluster.py looks the same way), or null.
function findEtcd() {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const file = path.join(dir || '.', 'etcd');
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch (_) { /* not in this directory */ }
  }
  return null;
}

/// A free TCP port on 127.0.0.1 (etcd cannot be given port 0 and tell us which one it took).
function freePort() {
  return new Promise((done, fail) => {
    const srv = net.createServer().once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => done(port));
    });
  });
}

/// One etcd member on loopback with its data in `dir`; resolves once its
/// /health says true (it has a leader: itself). `etcd.url` is its client URL.
async function startEtcd(file, dir) {
  const clientUrl = `http://127.0.0.1:${await freePort()}`;
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  const etcd = new Proc('etcd', file, [
    '--name', 'vbweb', '--data-dir', dir, '--logger=zap', '--log-outputs=stderr',
    '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `vbweb=${peerUrl}`, '--initial-cluster-state', 'new',
    '--initial-cluster-token', 'vb-web-test']);
  etcd.url = clientUrl;
  await until(`etcd healthy at ${clientUrl}`, async () => {
    if (etcd.proc.exitCode !== null || etcd.proc.signalCode !== null) {
      throw new Error(`etcd exited (${etcd.proc.exitCode ?? etcd.proc.signalCode}):\n${etcd.lines.join('\n')}`);
    }
    try {
      const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
      return res.ok && (await res.json()).health === 'true';
    } catch (_) {
      return false; // not listening yet
    }
  }, 30000);
  return etcd;
}

// -- the scenario --------------------------------------------------------------------------------

async function main() {
  requireBinaries();
  const ETCD = findEtcd();
  if (!ETCD) skip('etcd is not installed (Debian\'s etcd-server; scripts/setup-deps installs it): voice across a cluster untested');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-voice-cluster-'));
  const ctx = { shots: 'web-voice-cluster', etcd: null, a: null, b: null, pages: [] };
  // stepOf prints the end of each one's log when a step fails.
  Object.defineProperty(ctx, 'procs', { get: () => [ctx.a, ctx.b, ctx.etcd].filter(Boolean) });
  let browser = null;
  const cleanup = async () => {
    if (browser) await browser.close().catch(() => {});
    for (const p of [ctx.a, ctx.b, ctx.etcd]) if (p) await p.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const step = (name, fn) => stepOf(ctx, name, fn);
  // An instance of the cluster; `port` 0 picks a free one. Up to 60 s: it first waits for its lease in etcd.
  const instance = (name, port) => startServer(path.join(tmp, name), port, 0, {
    name: `voicebot-server ${name.toUpperCase()}`,
    timeoutMs: 60000,
    extra: ['--etcd-endpoints', ctx.etcd.url, '--etcd-prefix', PREFIX, '--instance-ttl', String(TTL),
      '--cluster-host', '127.0.0.1', '--cluster-port', '0'],
  });
  try {
    const wav = makeSpeech(tmp);
    ctx.etcd = await step('etcd starts on loopback', () => startEtcd(ETCD, path.join(tmp, 'etcd')));
    log(`etcd at ${ctx.etcd.url}`);

    const lobbyId = await step('two instances share a lobby', async () => {
      ctx.a = await instance('a', 0);
      ctx.b = await instance('b', 0);
      log(`instance A on port ${ctx.a.port}, B on port ${ctx.b.port}`);
      const created = await api(ctx.a.port, 'POST', '/api/lobby', { name: 'Voice cluster test lobby' });
      check(created.status === 201, `the lobby was created on A (${created.status})`);
      const id = created.body.id;
      await until('B to list the lobby', async () => {
        const listed = await api(ctx.b.port, 'GET', '/api/lobby');
        return listed.status === 200 && listed.body.lobbies.some((l) => l.id === id);
      }, 10000);
      check(true, `B lists the lobby ${id}`);
      return id;
    });

    browser = await launchBrowser({ args: voiceFlags(wav) });
    const portB = ctx.b.port;
    const alice = await openPage(browser, `http://127.0.0.1:${ctx.a.port}`, lobbyId, 'alice');
    const bob = await openPage(browser, `http://127.0.0.1:${portB}`, lobbyId, 'bob');
    ctx.pages.push(alice, bob);

    const [aliceId, bobId] = await step('alice joins on A, bob on B', async () => {
      const a = await joinVoice(alice, 'alice');
      const b = await joinVoice(bob, 'bob');
      check(a && b && a !== b, 'two sessions');
      for (const [name, port] of [['A', ctx.a.port], ['B', portB]]) {
        // Each instance sees both members: the record of the other came through etcd.
        await until(`both members on ${name}`, async () => {
          const lobby = await api(port, 'GET', `/api/lobby/${lobbyId}`);
          return lobby.status === 200 && lobby.body.sessions.filter((s) => !s.is_bot && (s.session_id === a || s.session_id === b)).length === 2;
        }, 10000);
        check(true, `both are people members of the lobby on ${name}`);
      }
      return [a, b];
    });

    await step('each hears the other across the instances', async () => {
      await connected(alice, bobId);
      await connected(bob, aliceId);
      await hears(alice, bobId, 'bob');
      await hears(bob, aliceId, 'alice');
      await alice.page.locator(`#members li.voice[data-session-id="${bobId}"]`).waitFor();
      await bob.page.locator(`#members li.voice[data-session-id="${aliceId}"]`).waitFor();
      check(true, 'each page\'s members list marks the other as a voice peer');
    });
    // Bob's page: the lobby as B serves it, alice's voice heard from A.
    await screenshot(bob.page, 'web-voice-cluster.png');

    const { same: sameConnections } = await keepConnections([alice, bob]);

    await step('B is killed: the call goes on', async () => {
      const [sa, sb] = await sampleDuring([alice, bob], async () => {
        await ctx.b.kill('SIGKILL');
        log('instance B killed');
        await sleep(DOWNTIME_MS);
      });
      checkAudioGap(alice, sa, bobId, MAX_GAP_MS, DOWNTIME_MS / 100 * 0.5);
      checkAudioGap(bob, sb, aliceId, MAX_GAP_MS, DOWNTIME_MS / 100 * 0.5);
      check(await welcomed(alice), 'alice\'s socket on A stayed up');
      check(!(await welcomed(bob)), 'bob noticed his socket on B dropped');
      await sameConnections();
    });

    const restartedAt = Date.now();
    await step('B is back on the same port: bob resumes, same connections', async () => {
      ctx.b = await instance('b', portB);
      check(ctx.b.port === portB, `instance B started again on port ${ctx.b.port}`);
      await until('bob in the voice room again', () => welcomed(bob), 30000);
      const hellos = sentSince(bob, restartedAt, 'hello');
      check(hellos.length >= 1 && hellos.every((f) => f.msg.resume === true), 'bob said hello with resume: true');
      // The audio went on through the resume.
      const [sa, sb] = await sampleDuring([alice, bob], () => sleep(2000));
      for (const [p, samples, from] of [[alice, sa, bobId], [bob, sb, aliceId]]) {
        const g = checkAudioGap(p, samples, from, MAX_GAP_MS);
        check(g.rises > 0, `${p.name}: packets rose after the resume (${g.rises} rises)`);
      }
      await sameConnections();
      for (const p of [alice, bob]) {
        check(sentSince(p, restartedAt, 'signal').length === 0, `${p.name} sent no signal after the resume`);
      }
    });

    for (const p of [alice, bob]) check(p.errors.length === 0, `no script errors on ${p.name}'s page ${p.errors.join('; ')}`);
  } finally {
    await cleanup();
  }
}

run(main, 150000);
