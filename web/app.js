// The lobby page of voicebot-server: lobbies, bots and providers, and one
// lobby live over a WebSocket (docs/lobby-events.md). Every URL is relative
// to the page, so the page works under any --base-path. The voice room of
// the lobby (SPEC §9) is voice.js's; this file posts the person's session,
// routes the socket's voice messages there and marks voice peers.
'use strict';

const $ = (sel) => document.querySelector(sel);

const state = {
  lobby: null,          // {id, name} of the lobby on screen
  socket: null,         // its WebSocket
  members: new Map(),   // session_id -> session
  joining: new Set(),   // "lobby/bot/nick" of joins in flight
  providers: new Map(), // provider_id -> provider, from the last catalog
  moved: new Map(),     // session_id -> unix s this page saw it move
};

/// How long a bot member that moved to another provider keeps its marker.
const MOVED_NOTE_SECONDS = voiceRoom.MOVED_MS / 1000; // one duration for both files

// -- small helpers --------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  for (const c of children) e.append(c);
  return e;
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/// fetch() with JSON in and out; never throws: {status, headers, body} or
/// {status: 0, error} when the server could not be reached.
async function call(method, path, body) {
  try {
    const res = await fetch(path, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
    return { status: res.status, headers: res.headers, body: json };
  } catch (err) {
    return { status: 0, error: String(err) };
  }
}

/// What an error answer says, in one line.
function detail(res) {
  if (res.status === 0) return 'no answer (server unreachable)';
  const d = res.body && res.body.detail;
  if (typeof d === 'string') return `${res.status} ${d}`;
  if (Array.isArray(d)) return `${res.status} ` + d.map((e) => `${(e.loc || []).slice(1).join('.')}: ${e.msg}`).join('; ');
  return `${res.status}`;
}

/// Seconds to wait from a Retry-After header (seconds or a date); 1 when absent.
function retryAfter(res) {
  const h = res.headers ? res.headers.get('Retry-After') : null;
  if (!h) return 1;
  const secs = Number(h);
  if (Number.isFinite(secs) && secs >= 0) return Math.min(secs, 60);
  const date = Date.parse(h);
  if (!Number.isNaN(date)) return Math.min(Math.max(0, (date - Date.now()) / 1000), 60);
  return 1;
}

function ago(unixSeconds) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - unixSeconds));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

// -- server, bots and providers -------------------------------------------------

async function refreshHealth() {
  const res = await call('GET', 'api/health');
  const badge = $('#health');
  if (res.status === 200) {
    badge.textContent = `server ${res.body.version} up ${Math.round(res.body.uptime_s)} s`;
    badge.className = 'badge ok';
  } else {
    badge.textContent = 'server unreachable';
    badge.className = 'badge bad';
  }
}

/// The provider states of SPEC §7: each shown as its name in its own colour,
/// with what it means as the tooltip.
const PROVIDER_STATES = {
  online: 'takes joins',
  suspect: 'heartbeats are late: gets joins only when no provider of the bot is online',
  unreachable: 'its link dropped or a dispatch to it failed',
  draining: 'takes no new joins; keeps its bot members until they move or end',
};

function providerName(id) {
  const p = state.providers.get(id);
  return p ? p.name : id ? `${id.slice(0, 8)}…` : '?';
}

function clock(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString();
}

/// "35 %" and "cap 4" where the provider announced them, "—" otherwise.
function loadText(p) {
  const parts = [];
  if (typeof p.load === 'number') parts.push(`${Math.round(p.load * 100)} %`);
  if (typeof p.capacity === 'number') parts.push(`cap ${p.capacity}`);
  return parts.length ? parts.join(' · ') : '—';
}

function providerRow(p) {
  const status = p.status || 'online';
  const notes = [PROVIDER_STATES[status] || status];
  if (typeof p.heartbeat_interval === 'number') notes.push(`heartbeat every ${p.heartbeat_interval} s`);
  if (typeof p.lease_expires_at === 'number') notes.push(`lease until ${clock(p.lease_expires_at)}`);
  const tr = el('tr', {},
    el('td', { className: 'name', title: p.provider_id }, p.name, ' ', el('span', { className: 'transport', textContent: p.transport })),
    el('td', { className: 'status' }, el('span', { className: `state status-${status}`, textContent: status, title: notes.join('; ') })),
    el('td', { className: 'load', textContent: loadText(p) }),
    el('td', { className: 'runs', textContent: typeof p.active_runs === 'number' ? String(p.active_runs) : '—' }),
    el('td', { className: 'seen', textContent: typeof p.last_seen === 'number' ? ago(p.last_seen) : '—' }),
    el('td', { className: 'bots', textContent: (p.bots || []).map((b) => b.name).join(', ') }));
  tr.dataset.providerId = p.provider_id;
  tr.dataset.status = status;
  return tr;
}

async function refreshCatalog() {
  const [providers, bots] = await Promise.all([call('GET', 'api/bots/providers'), call('GET', 'api/bots')]);
  if (providers.status === 200) {
    state.providers = new Map(providers.body.providers.map((p) => [p.provider_id, p]));
    $('#provider-table tbody').replaceChildren(...providers.body.providers.map(providerRow));
    if (!providers.body.providers.length) {
      $('#provider-table tbody').append(el('tr', { className: 'empty' }, el('td', { colSpan: 6, textContent: 'no provider registered' })));
    }
    if (state.lobby) renderMembers(); // provider names and states on the members
  }
  if (bots.status === 200) {
    // One line per bot, however many providers offer it.
    const byName = new Map();
    for (const b of bots.body.bots) {
      const seen = byName.get(b.name) || { description: b.description, providers: 0 };
      seen.providers += 1;
      byName.set(b.name, seen);
    }
    const names = [...byName.keys()].sort();
    $('#bot-list').replaceChildren(...names.map((n) => {
      const b = byName.get(n);
      const more = b.providers > 1 ? ` (${b.providers} providers)` : '';
      return el('li', { textContent: `${n}${b.description ? ' — ' + b.description : ''}${more}` });
    }));
    const select = $('#bot-select');
    const chosen = select.value;
    select.replaceChildren(...names.map((n) => el('option', { value: n, textContent: n })));
    if (names.includes(chosen)) select.value = chosen;
  }
}

/// At most one catalog refresh in flight, soon after lobby events that
/// change what providers run (a move, an orphan).
let catalogSoon = null;
function refreshCatalogSoon() {
  if (catalogSoon) return;
  catalogSoon = setTimeout(async () => {
    try { await refreshCatalog(); } finally { catalogSoon = null; }
  }, 300);
}

// -- lobbies ------------------------------------------------------------------------

async function refreshLobbies() {
  const res = await call('GET', 'api/lobby');
  if (res.status !== 200) return;
  $('#lobby-list').replaceChildren(...res.body.lobbies.map((l) => {
    const li = el('li', { textContent: `${l.name} (${l.members})` });
    li.dataset.id = l.id;
    if (state.lobby && state.lobby.id === l.id) li.className = 'current';
    li.addEventListener('click', () => openLobby(l.id, l.name));
    return li;
  }));
}

async function createLobby(event) {
  event.preventDefault();
  const name = $('#lobby-name').value.trim();
  const res = await call('POST', 'api/lobby', { name, private: $('#lobby-private').checked });
  if (res.status === 200 || res.status === 201) {
    $('#lobby-error').textContent = '';
    $('#lobby-name').value = '';
    openLobby(res.body.id, res.body.name);
    refreshLobbies();
  } else {
    $('#lobby-error').textContent = `Could not create the lobby: ${detail(res)}`;
  }
}

/// Shows one lobby and follows it live; the WebSocket reconnects on its own
/// (a server restart) and the members come again on each connect.
function openLobby(id, name) {
  if (state.socket) state.socket.close();
  state.lobby = { id, name };
  voiceRoom.showLobby(id); // a stored voice session of this lobby is rejoined
  state.members.clear();
  state.moved.clear();
  location.hash = `lobby=${encodeURIComponent(id)}`;
  $('#lobby-panel').hidden = false;
  $('#lobby-title').textContent = name || id;
  $('#chat').replaceChildren();
  $('#join-log').replaceChildren();
  renderMembers();
  connect(id, 0);
  refreshLobbies();
}

function connect(id, failures) {
  const url = new URL(`ws/lobby/${encodeURIComponent(id)}`, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url);
  state.socket = ws;
  let opened = false;
  ws.onopen = () => { opened = true; setLive(true); voiceRoom.socketOpened(ws); };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (!voiceRoom.handle(msg, ws)) onEvent(msg); // by type: voice messages or lobby events
  };
  ws.onclose = async () => {
    voiceRoom.socketClosed(ws); // the calls go on; hello again once reconnected
    if (state.socket !== ws) return; // another lobby was opened
    setLive(false);
    const n = opened ? 0 : failures + 1;
    if (n > 0 && (await call('GET', `api/lobby/${encodeURIComponent(id)}`)).status === 404) {
      $('#live').textContent = 'lobby not found';
      return;
    }
    await sleep(Math.min(1000 * 2 ** Math.min(n, 3), 5000) / 2);
    if (state.socket === ws) connect(id, n);
  };
}

function setLive(on) {
  $('#live').textContent = on ? 'live' : 'reconnecting…';
  $('#live').className = on ? 'badge ok' : 'badge bad';
}

function onEvent(ev) {
  switch (ev.type) {
    case 'members':
      state.members = new Map(ev.members.map((m) => [m.session_id, m]));
      state.lobby.name = ev.name;
      $('#lobby-title').textContent = ev.name;
      break;
    case 'member_joined':
      state.members.set(ev.member.session_id, ev.member);
      break;
    case 'member_left':
      state.members.delete(ev.member.session_id);
      state.moved.delete(ev.member.session_id);
      voiceRoom.memberLeft(ev.member.session_id);
      break;
    case 'member_moved':
      // Same session_id and nick, a new provider_id and run_id: replaced in
      // place (a Map keeps the member's position).
      state.members.set(ev.member.session_id, ev.member);
      state.moved.set(ev.member.session_id, Date.now() / 1000); // the page's clock, as below
      voiceRoom.memberMoved(ev.member.session_id); // its voice, followed until it is back
      refreshCatalogSoon();
      break;
    case 'member_orphaned':
      state.members.set(ev.member.session_id, { ...ev.member, orphaned: true });
      refreshCatalogSoon();
      break;
    case 'chat':
      addChat(ev.member, ev.text);
      return;
    case 'error':
      addChat({ nick: 'server' }, `refused: ${detail({ status: 422, body: ev })}`);
      return;
    default:
      return;
  }
  renderMembers();
}

/// When the bot member moved last, as this page knows it (the server's
/// moved_at, or the member_moved event it saw); 0: never.
function movedAt(m) {
  return Math.max(m.moved_at || 0, state.moved.get(m.session_id) || 0);
}

function memberItem(m) {
  const li = el('li', {}, el('span', { className: 'nick', textContent: m.nick }));
  li.className = m.is_bot ? 'bot' : 'person';
  li.dataset.sessionId = m.session_id;
  if (!m.is_bot) return li;
  li.append(` (${m.bot_name})`, el('span', { className: 'kind', textContent: 'bot' }));
  li.dataset.providerId = m.provider_id || '';
  li.dataset.runId = m.run_id || '';
  if (m.orphaned) {
    li.classList.add('orphaned');
    li.append(el('span', { className: 'badge orphaned', textContent: 'waiting for a provider',
      title: 'its provider was lost and no other provider of this bot could take it yet' }));
    return li;
  }
  const p = state.providers.get(m.provider_id);
  const where = el('span', { className: 'where', textContent: ` on ${providerName(m.provider_id)}`,
    title: `provider ${m.provider_id}, run ${m.run_id}` });
  if (!p && state.providers.size) where.append(' (not registered now)');
  if (p && p.status && p.status !== 'online') {
    where.append(' ', el('span', { className: `state status-${p.status}`, textContent: p.status,
      title: PROVIDER_STATES[p.status] || '' }));
  }
  li.append(where);
  const moved = movedAt(m);
  // The move's voice, when this page is in the voice room and the bot was a
  // voice peer: shown as long as it reconnects, and "voice back" for a while.
  const voice = voiceRoom.movedVoice(m.session_id);
  if (voice || (moved && Date.now() / 1000 - moved < MOVED_NOTE_SECONDS)) {
    li.classList.add('moved');
    const how = MOVED_VOICE[voice];
    li.append(el('span', { className: `badge moved${voice ? ` voice-${voice}` : ''}`,
      textContent: `moved to provider ${providerName(m.provider_id)}${how ? ` — ${how.text}` : ''}`,
      title: `at ${clock(moved || Date.now() / 1000)}${how ? `; ${how.title}` : ''}` }));
  }
  return li;
}

/// The voice part of the "moved" badge (voice.js's movedVoice).
const MOVED_VOICE = {
  reconnecting: { text: 'reconnecting voice', title: 'its old run\'s voice is gone; waiting for the new run to call this page' },
  back: { text: 'voice back', title: 'the new run called this page and its audio arrives' },
};

/// Voice peers now (welcome, peer_joined, peer_left) and this page's own
/// session: a badge, a level meter and a "speaking" mark (voice.js moves
/// both, from what this page receives of each peer, and from its microphone),
/// and the connection's state while it is not connected. A member without a
/// voice socket gets none of it.
function markVoice(li, sessionId) {
  const v = voiceRoom.memberVoice(sessionId);
  if (!v) return li;
  li.classList.add('voice');
  if (v.mine) li.classList.add('me');
  const label = v.mine ? 'you, in the voice room' : `in the voice room (${v.state})`;
  li.append(el('span', { className: `badge voice${v.mine ? ' me' : ''}`, title: label },
    v.mine ? 'you · voice' : 'voice', el('span', { className: 'sr-only', textContent: `: ${label}` })),
  el('span', { className: 'level', title: v.mine ? 'your microphone\'s level' : 'the level heard from it' }, el('span')),
  el('span', { className: 'speaking-mark', textContent: 'speaking' }));
  if (v.state !== 'connected') li.append(el('span', { className: 'conn-state', textContent: v.state }));
  voiceRoom.showLevel(li, v);
  return li;
}

function renderMembers() {
  const present = new Set(state.members.keys());
  const members = [...state.members.values(), ...voiceRoom.extraMembers(present)];
  const items = members.map((m) => markVoice(memberItem(m), m.session_id));
  $('#members').replaceChildren(...items);
  const current = $('#lobby-list li.current');
  if (current && state.lobby) current.textContent = `${state.lobby.name} (${items.length})`;
  if (!items.length) $('#members').append(el('li', { className: 'empty', textContent: 'nobody yet' }));
}

function addChat(member, text) {
  const li = el('li', {}, el('span', { className: 'nick', textContent: member.nick }), `: ${text}`);
  li.className = member.is_bot ? 'bot' : 'person';
  const list = $('#chat');
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function sendChat(event) {
  event.preventDefault();
  const nick = $('#chat-nick').value.trim();
  const text = $('#chat-text').value;
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
    addChat({ nick: 'page' }, 'not connected: the line was not sent');
    return;
  }
  localStorage.setItem('nick', nick);
  state.socket.send(JSON.stringify({ type: 'chat', nick, text }));
  $('#chat-text').value = '';
}

// -- joining the voice room as a person: the session here, the call in voice.js -------

function sessionsPath(lobbyId, sessionId = '') {
  const base = `api/lobby/${encodeURIComponent(lobbyId)}/sessions`;
  return sessionId ? `${base}/${encodeURIComponent(sessionId)}` : base;
}

async function joinVoice(event) {
  event.preventDefault();
  if (!state.lobby) return;
  const lobbyId = state.lobby.id;
  const nick = $('#voice-nick').value.trim();
  $('#voice-join-button').disabled = true;
  voiceRoom.say('joining…');
  try {
    const res = await call('POST', sessionsPath(lobbyId), { nick });
    if (res.status !== 201 && res.status !== 200) {
      voiceRoom.say(`could not join: ${detail(res)}`, 'bad');
    } else if (!res.body.session_token) {
      voiceRoom.say('this server offers no voice (no session_token)', 'bad');
      call('DELETE', sessionsPath(lobbyId, res.body.session_id)); // no member left behind
    } else {
      localStorage.setItem('nick', nick);
      if (!$('#chat-nick').value) $('#chat-nick').value = nick;
      voiceRoom.start({ lobby_id: lobbyId, session_id: res.body.session_id, session_token: res.body.session_token, nick });
    }
  } finally {
    $('#voice-join-button').disabled = false;
  }
}

async function leaveVoice() {
  const s = voiceRoom.leave(); // connections closed, sessionStorage cleared
  if (!s) return;
  const res = await call('DELETE', sessionsPath(s.lobby_id, s.session_id));
  if (res.status === 0) voiceRoom.say('left here; the server did not answer, so the session ends after its idle timeout', 'warn');
}

// -- adding a bot: retried on 503, 404, a proxy's 502/504 or no answer -------------------

const MAX_RETRIES = 3;

function logJoin(text, cls) {
  $('#join-log').append(el('li', { textContent: text, className: cls || '' }));
}

async function addBot(event) {
  event.preventDefault();
  if (!state.lobby) return;
  const lobbyId = state.lobby.id;
  const bot = $('#bot-select').value;
  const nick = $('#bot-nick').value.trim() || bot; // the server's default
  if (!bot) return;
  const key = `${lobbyId}/${bot}/${nick}`;
  // Never the same bot twice: not while its join is in flight, not when it
  // is a member already.
  if (state.joining.has(key)) return;
  const member = [...state.members.values()].find((m) => m.is_bot && m.bot_name === bot && m.nick === nick);
  if (member) {
    logJoin(`${nick} (${bot}) is already in this lobby: not added again`, 'note');
    return;
  }
  state.joining.add(key);
  $('#add-bot-button').disabled = true;
  try {
    await joinWithRetries(lobbyId, bot, nick);
  } finally {
    state.joining.delete(key);
    $('#add-bot-button').disabled = state.joining.size > 0;
  }
}

async function joinWithRetries(lobbyId, bot, nick) {
  for (let attempt = 1; ; attempt++) {
    const res = await call('POST', `api/bots/${encodeURIComponent(bot)}/join`, { lobby_id: lobbyId, nick });
    if (res.status === 200) {
      logJoin(`${nick} (${bot}) joined on attempt ${attempt}`, 'joined');
      return true;
    }
    // 502 and 504: a reverse proxy whose server is restarting.
    const retriable = [503, 404, 502, 504, 0].includes(res.status);
    if (!retriable || attempt > MAX_RETRIES) {
      const why = retriable ? `gave up after ${attempt} attempts` : 'not retried';
      logJoin(`${nick} (${bot}), attempt ${attempt}: ${detail(res)}; ${why}: ${nick} was not added`, 'failed');
      return false;
    }
    const wait = retryAfter(res);
    logJoin(`${nick} (${bot}), attempt ${attempt}: ${detail(res)}; retrying in ${wait} s`, 'retry');
    await sleep(wait * 1000);
  }
}

// -- start ----------------------------------------------------------------------------

function start() {
  $('#create-lobby').addEventListener('submit', createLobby);
  $('#add-bot').addEventListener('submit', addBot);
  $('#chat-form').addEventListener('submit', sendChat);
  $('#voice-join').addEventListener('submit', joinVoice);
  $('#voice-leave').addEventListener('click', leaveVoice);
  voiceRoom.init({ onChange: renderMembers });
  $('#chat-nick').value = localStorage.getItem('nick') || '';
  $('#voice-nick').value = localStorage.getItem('nick') || '';
  const every = (ms, fn) => { fn(); setInterval(fn, ms); };
  every(5000, refreshHealth);
  every(5000, refreshCatalog);
  every(5000, refreshLobbies);
  const m = /lobby=([^&]+)/.exec(location.hash);
  if (m) openLobby(decodeURIComponent(m[1]), '');
}

start();
