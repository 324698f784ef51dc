// The voice part of the lobby page (SPEC §9): a person joins the lobby with
// a nick, says hello on the lobby WebSocket that app.js keeps open, and
// holds one RTCPeerConnection per voice peer. The server only relays
// signaling, so the media goes on while that socket is down (a restart).
//
// Signal data, our own choice (the server relays `data` unchanged; the
// bots use the same shape):
//   {"description": {"type": "offer"|"answer", "sdp": "…"}}
//   {"candidate": {"candidate": "…", "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "…"}}
// The end of candidates is not sent.
'use strict';

(() => {
  const STORAGE_PREFIX = 'voicebot.voice.'; // + lobby id, in sessionStorage
  const SEND_LIMIT = 40;        // messages a second; the server closes a socket past signal_rate (50)
  const OUTBOX_MAX = 1000;      // signals kept while the socket is down
  const OFFER_RETRY_MS = 5000;  // an offer lost on the way (peer_offline) is sent again
  const METER_MS = 100;         // the microphone's meter (an AnalyserNode)
  const STATS_MS = 200;         // the peers' meters: what each connection received (getStats)
  const SPEAKING_RMS = 0.02;    // the microphone: RMS over about 20 ms, about -34 dBFS
  // A peer: sqrt(energy / duration) of its inbound-rtp audio over STATS_MS.
  // Chrome's energy is from each 10 ms frame's peak, so this sits above an
  // RMS; 0.03 is about -30 dBFS (measured with espeak-ng speech through the
  // fake microphone: 0.2 to 0.7 while it speaks, 0.02 between words, 0 muted).
  const SPEAKING_LEVEL = 0.03;
  const SPEAKING_HOLD_MS = 500; // no flicker between words
  const LEFT_RECENTLY_MS = 10000; // a peer_left this recent: it was a voice peer when it moved
  const VOICE_BACK_MS = 15000;  // "voice back" shows at least this long (and until 2 min after the move)
  const MOVED_MS = 120000;      // a bot's "moved" mark stays this long (app.js shows it too)
  const VOICE_TYPES = new Set(['welcome', 'peer_joined', 'peer_left', 'signal', 'replaced']);
  const VOICE_ERRORS = {
    bad_token: 'the server no longer knows this voice session (bad or expired token)',
    voice_full: 'the voice room of this lobby is full',
    not_a_peer: 'a signal was refused: this page is not a voice peer now',
    peer_not_found: 'a signal was refused: that peer is not in the voice room',
    peer_offline: 'a signal could not be delivered: that peer is offline for now',
  };
  // Tells this page's connections from those of the page before a reload.
  const PAGE_ID = Math.random().toString(36).slice(2, 8);
  // `?ice=relay` in the page's address: media only through TURN (a test of the relay, or peers' addresses kept private).
  const ICE_POLICY = new URLSearchParams(location.search).get('ice') === 'relay' ? 'relay' : 'all';

  const room = {
    lobbyId: null,      // the lobby on screen
    session: null,      // {lobby_id, session_id, session_token, nick} while joined
    mic: null,          // the local MediaStream; null: listening only
    ready: false,       // the microphone question is answered: hello may go
    full: false,        // the last hello got voice_full
    socket: null,       // the lobby WebSocket app.js has now
    welcomed: false,    // that socket got its welcome: signals may go
    iceServers: [],
    known: new Map(),   // session_id -> {session_id, nick, is_bot, bot_name} of voice peers
    conns: new Map(),   // session_id -> connection record (openConnection)
    outbox: [],         // {to, data} waiting for a welcomed socket or the rate limit
    sentAt: [],         // times of the sends of the last second
    audio: null,        // the AudioContext of the microphone's meter
    localMeter: null,
    mine: { level: 0, speaking: false }, // the microphone, last read
    leftAt: new Map(),  // session_id -> performance.now() of its last peer_left
    moves: new Map(),   // session_id -> {at, back} of a bot voice peer that moved (member_moved)
    generation: 0,      // bumped when a session ends: late async work is dropped
  };
  let connCount = 0;
  let pumpTimer = null;
  let meterTimer = null;
  let statsTimer = null;
  let sampling = false;         // a getStats() round is under way
  let onChange = () => {};

  const $ = (sel) => document.querySelector(sel);
  const me = () => (room.session ? room.session.session_id : null);
  const isCurrent = (conn) => room.conns.get(conn.peerId) === conn;
  const micTrack = () => (room.mic ? room.mic.getAudioTracks()[0] : undefined);
  const socketOpen = () => !!room.socket && room.socket.readyState === WebSocket.OPEN;
  const peerName = (id) => (room.known.has(id) ? room.known.get(id).nick : `${String(id).slice(0, 8)}…`);

  // -- what the page says -------------------------------------------------------

  function setStatus(text, kind = '') {
    $('#voice-state').textContent = text;
    $('#voice-state').className = `voice-state ${kind}`;
  }

  /// One line about something that went wrong but is not fatal.
  function note(text) {
    $('#voice-note').textContent = `${new Date().toLocaleTimeString()}: ${text}`;
  }

  function showControls() {
    const joined = !!room.session;
    $('#voice-join').hidden = joined;
    $('#voice-controls').hidden = !joined;
    $('#voice-retry').hidden = !(joined && room.full);
    $('#voice-me').textContent = joined ? room.session.nick : '';
    const track = micTrack();
    const mute = $('#voice-mute');
    mute.disabled = !track;
    mute.textContent = track && !track.enabled ? 'Unmute' : 'Mute';
    mute.title = track ? '' : 'no microphone: listening only';
  }

  function changed() {
    showControls();
    onChange();
  }

  // -- the session: stored per lobby, rejoined on reload, ended here ----------------------

  function loadStored(lobbyId) {
    try {
      const s = JSON.parse(sessionStorage.getItem(STORAGE_PREFIX + lobbyId) || 'null');
      return s && s.session_id && s.session_token && s.lobby_id === lobbyId ? s : null;
    } catch (_) {
      return null;
    }
  }

  /// A session app.js just got (201): stored for reloads, then joined.
  function start(s) {
    sessionStorage.setItem(STORAGE_PREFIX + s.lobby_id, JSON.stringify(s));
    if (s.lobby_id === room.lobbyId && !room.session) startSession(s);
  }

  /// Asks for the microphone once, then says hello when the socket is open.
  async function startSession(s) {
    const generation = ++room.generation;
    Object.assign(room, { session: s, ready: false, full: false, welcomed: false });
    setStatus('asking for the microphone…');
    changed();
    const mic = await askMicrophone();
    if (generation !== room.generation) { // left meanwhile
      if (mic) mic.getTracks().forEach((t) => t.stop());
      return;
    }
    room.mic = mic;
    room.localMeter = mic ? makeMeter(mic) : null;
    ensureAudio();
    room.ready = true;
    if (!meterTimer) meterTimer = setInterval(tickMeters, METER_MS);
    if (!statsTimer) statsTimer = setInterval(sampleConnections, STATS_MS);
    changed();
    if (socketOpen()) sendHello();
    else setStatus('waiting for the lobby socket…');
  }

  /// The local stream, or null with the reason on the page: the page then
  /// joins as a listener.
  async function askMicrophone() {
    const say = (text) => { $('#voice-mic').textContent = text; };
    say('');
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say('no microphone: the browser offers none here (over plain http, only on localhost); listening only');
      return null;
    }
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      const name = err && err.name;
      say(name === 'NotAllowedError' || name === 'SecurityError'
        ? 'microphone blocked: allow it in the browser to speak; listening only'
        : `no microphone (${name || err}); listening only`);
      return null;
    }
  }

  /// Leave: hangs up here and returns the session, which app.js DELETEs.
  function leave() {
    const s = room.session;
    if (s) endLocally('you left the voice room', '');
    return s;
  }

  /// Hangs up here: every connection, the microphone, the stored session.
  function endLocally(why, kind = 'bad', keepStored = false) {
    if (room.session && !keepStored) sessionStorage.removeItem(STORAGE_PREFIX + room.session.lobby_id);
    room.generation++;
    closeAll();
    if (room.mic) room.mic.getTracks().forEach((t) => t.stop());
    if (room.localMeter) room.localMeter.source.disconnect();
    Object.assign(room, { session: null, ready: false, full: false, welcomed: false, mic: null, localMeter: null, outbox: [] });
    room.known.clear();
    room.leftAt.clear();
    room.moves.clear();
    clearInterval(meterTimer);
    clearInterval(statsTimer);
    meterTimer = statsTimer = null;
    room.mine = { level: 0, speaking: false };
    showLevel($('#voice-controls'), room.mine);
    $('#voice-mic').textContent = '';
    setStatus(why, kind);
    changed();
  }

  // -- the socket (opened and reopened by app.js) -------------------------------------

  function sendNow(msg) {
    room.socket.send(JSON.stringify(msg));
    room.sentAt.push(Date.now());
  }

  function sendHello() {
    const s = room.session;
    // resume: this page still holds connections from before its socket dropped.
    sendNow({ type: 'hello', session_id: s.session_id, token: s.session_token, resume: room.conns.size > 0 });
    setStatus('saying hello…');
  }

  function socketOpened(ws) {
    room.socket = ws;
    room.welcomed = false;
    if (room.session && room.ready) sendHello();
  }

  /// The connections stay: a server restart must not cut the call.
  function socketClosed(ws) {
    if (ws !== room.socket) return;
    room.socket = null;
    room.welcomed = false;
    if (room.session && room.ready) setStatus('signaling is down (the call goes on); reconnecting…', 'warn');
    if (room.session) changed();
  }

  /// Takes the voice messages of the lobby socket; false for the others
  /// (lobby events, chat errors), which app.js handles.
  function handle(msg, ws) {
    if (!msg || typeof msg !== 'object') return false;
    const voiceError = msg.type === 'error' && Object.prototype.hasOwnProperty.call(VOICE_ERRORS, msg.code);
    if (!VOICE_TYPES.has(msg.type) && !voiceError) return false;
    if (ws !== room.socket || !room.session) return true; // an old socket, or no session now
    switch (msg.type) {
      case 'welcome': onWelcome(msg); break;
      case 'peer_joined': if (msg.peer) onPeerJoined(msg.peer); break;
      case 'peer_left': onPeerLeft(msg.session_id); break;
      case 'signal': onSignal(msg.from, msg.data); break;
      case 'replaced': endLocally('another tab or window took over this voice session: this page speaks for no one now; join again for a new session'); break;
      default: onVoiceError(msg.code); break;
    }
    return true;
  }

  function onWelcome(msg) {
    if (msg.session_id && msg.session_id !== me()) return;
    room.welcomed = true;
    room.full = false;
    updateIceServers(Array.isArray(msg.ice_servers) ? msg.ice_servers : []);
    const peers = (Array.isArray(msg.peers) ? msg.peers : []).filter((p) => p && p.session_id && p.session_id !== me());
    const listed = new Map(peers.map((p) => [p.session_id, p]));
    // A connection to a peer no longer listed: it ended while our socket was down.
    for (const id of [...room.conns.keys()]) if (!listed.has(id)) closeConnection(id);
    room.known = listed;
    for (const conn of room.conns.values()) {
      if (conn.pc.connectionState === 'failed') conn.pc.restartIce(); // its restart may have been lost
    }
    // The newcomer calls: an offer to each listed peer it has no connection with.
    for (const id of listed.keys()) if (!room.conns.has(id)) addLocalMedia(openConnection(id));
    showPeers();
    pump();
    changed();
  }

  /// The status line counts the other voice peers, as they come and go.
  function showPeers() {
    const n = room.known.size;
    setStatus(n ? `in the voice room with ${n} other${n > 1 ? 's' : ''}` : 'in the voice room (nobody else yet)', 'ok');
  }

  /// Resumed connections get the new TURN credentials for their next ICE restart.
  function updateIceServers(servers) {
    if (JSON.stringify(servers) === JSON.stringify(room.iceServers)) return;
    room.iceServers = servers;
    for (const conn of room.conns.values()) {
      try { conn.pc.setConfiguration({ ...conn.pc.getConfiguration(), iceServers: servers }); } catch (err) {
        note(`the ICE servers of ${peerName(conn.peerId)} stay as they were: ${err.message}`);
      }
    }
  }

  /// It calls us: an old connection to it is dropped, the new one comes with its offer.
  function onPeerJoined(peer) {
    if (peer.session_id === me()) return;
    closeConnection(peer.session_id);
    room.known.set(peer.session_id, peer);
    if (room.welcomed) showPeers();
    changed();
  }

  function onPeerLeft(id) {
    if (room.known.has(id)) room.leftAt.set(id, performance.now());
    closeConnection(id);
    room.known.delete(id);
    if (room.welcomed) showPeers();
    changed();
  }

  function onVoiceError(code) {
    if (code === 'bad_token') {
      endLocally(`${VOICE_ERRORS.bad_token}: join again`);
    } else if (code === 'voice_full') {
      room.full = true;
      setStatus(`${VOICE_ERRORS.voice_full}: you are a member, not in the call`, 'bad');
      changed();
    } else {
      note(VOICE_ERRORS[code]);
    }
  }

  // -- signals out: queued while the socket is down, paced under the server's limit ------

  function sendSignal(to, data) {
    room.outbox.push({ to, data });
    if (room.outbox.length > OUTBOX_MAX) room.outbox.shift();
    pump();
  }

  const canSignal = () => room.welcomed && socketOpen();

  function pump() {
    if (pumpTimer) return;
    // Signals to peers that left while the socket was down go nowhere.
    room.outbox = room.outbox.filter((s) => room.known.has(s.to) || room.conns.has(s.to));
    while (room.outbox.length && canSignal()) {
      const now = Date.now();
      room.sentAt = room.sentAt.filter((t) => now - t < 1000);
      if (room.sentAt.length >= SEND_LIMIT) {
        pumpTimer = setTimeout(() => { pumpTimer = null; pump(); }, 1000 - (now - room.sentAt[0]) + 5);
        return;
      }
      const { to, data } = room.outbox.shift();
      sendNow({ type: 'signal', to, data });
    }
  }

  // -- one RTCPeerConnection per peer: perfect negotiation ---------------------------------

  function openConnection(peerId) {
    const pc = new RTCPeerConnection({ iceServers: room.iceServers, iceTransportPolicy: ICE_POLICY });
    const conn = {
      peerId, pc, id: `${PAGE_ID}-${++connCount}`,
      polite: me() < peerId, // the smaller session_id yields in a glare
      makingOffer: false, ignoreOffer: false, answerPending: false, offerTimer: null, audio: null,
      openedAt: performance.now(),
      // What it received (getStats, every STATS_MS): inbound audio packets, and the
      // energy and duration of the last sample, for the level between two samples.
      packets: 0, energy: null, duration: null, level: 0, speakingUntil: 0,
    };
    room.conns.set(peerId, conn);
    pc.onnegotiationneeded = () => makeOffer(conn);
    pc.onicecandidate = ({ candidate }) => {
      if (candidate && isCurrent(conn)) sendSignal(peerId, { candidate: candidate.toJSON() });
    };
    pc.ontrack = (ev) => playRemote(conn, ev);
    pc.onconnectionstatechange = () => {
      if (!isCurrent(conn)) return;
      if (pc.connectionState === 'failed') pc.restartIce();
      changed();
    };
    return conn;
  }

  /// The caller's side: the microphone, or a receive-only transceiver.
  function addLocalMedia(conn) {
    if (micTrack()) conn.pc.addTrack(micTrack(), room.mic);
    else conn.pc.addTransceiver('audio', { direction: 'recvonly' });
  }

  async function makeOffer(conn) {
    try {
      conn.makingOffer = true;
      await conn.pc.setLocalDescription();
      if (isCurrent(conn)) sendSignal(conn.peerId, { description: conn.pc.localDescription.toJSON() });
      watchOffer(conn);
    } catch (err) {
      if (isCurrent(conn)) note(`offer to ${peerName(conn.peerId)} failed: ${err.message}`);
    } finally {
      conn.makingOffer = false;
    }
  }

  /// An offer still unanswered is sent again (it carries the candidates
  /// gathered so far): the first may have met peer_offline.
  function watchOffer(conn) {
    clearTimeout(conn.offerTimer);
    conn.offerTimer = setTimeout(() => {
      if (!isCurrent(conn) || conn.pc.signalingState !== 'have-local-offer') return;
      if (canSignal()) sendSignal(conn.peerId, { description: conn.pc.localDescription.toJSON() });
      watchOffer(conn);
    }, OFFER_RETRY_MS);
  }

  function onSignal(from, data) {
    if (!from || from === me() || !data || typeof data !== 'object') return;
    if (data.description) onDescription(from, data.description);
    else if (data.candidate) onCandidate(from, data.candidate);
  }

  async function onDescription(from, description) {
    let conn = room.conns.get(from);
    if (!conn) {
      if (description.type !== 'offer') return; // an answer for a connection closed since
      conn = openConnection(from);
      if (micTrack()) conn.pc.addTrack(micTrack(), room.mic); // taken up by the offer's m-line
    }
    const pc = conn.pc;
    if (description.type === 'answer' && pc.signalingState !== 'have-local-offer') return; // a stale or repeated answer
    try {
      const readyForOffer = !conn.makingOffer && (pc.signalingState === 'stable' || conn.answerPending);
      conn.ignoreOffer = !conn.polite && description.type === 'offer' && !readyForOffer;
      if (conn.ignoreOffer) return;
      conn.answerPending = description.type === 'answer';
      await pc.setRemoteDescription(description); // the polite side rolls back here
      conn.answerPending = false;
      if (description.type === 'offer') {
        await pc.setLocalDescription();
        if (isCurrent(conn)) sendSignal(from, { description: pc.localDescription.toJSON() });
      }
    } catch (err) {
      conn.answerPending = false;
      if (isCurrent(conn)) note(`negotiation with ${peerName(from)}: ${err.message}`);
    }
  }

  async function onCandidate(from, candidate) {
    const conn = room.conns.get(from);
    if (!conn) return;
    try {
      await conn.pc.addIceCandidate(candidate);
    } catch (err) {
      if (!conn.ignoreOffer && isCurrent(conn)) note(`a candidate of ${peerName(from)}: ${err.message}`);
    }
  }

  function closeConnection(peerId) {
    const conn = room.conns.get(peerId);
    if (!conn) return;
    room.conns.delete(peerId);
    clearTimeout(conn.offerTimer);
    conn.pc.close();
    if (conn.audio) { conn.audio.srcObject = null; conn.audio.remove(); }
    room.outbox = room.outbox.filter((s) => s.to !== peerId);
  }

  function closeAll() {
    for (const id of [...room.conns.keys()]) closeConnection(id);
  }

  // -- what we hear, and the level meters ------------------------------------------------

  /// One hidden <audio autoplay> per peer (its meter is from getStats: sampleConnections).
  function playRemote(conn, ev) {
    if (!isCurrent(conn)) return;
    const stream = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
    if (!conn.audio) {
      conn.audio = Object.assign(document.createElement('audio'), { autoplay: true });
      conn.audio.dataset.sessionId = conn.peerId;
      $('#voice-audio').append(conn.audio);
    }
    if (conn.audio.srcObject !== stream) conn.audio.srcObject = stream;
    conn.audio.play().catch((err) => {
      if (err && err.name === 'NotAllowedError') $('#voice-sound').hidden = false;
    });
  }

  /// The browser wants a click before it plays sound (a reload has none).
  function enableSound() {
    if (room.audio) room.audio.resume().catch(() => {});
    for (const a of document.querySelectorAll('#voice-audio audio')) a.play().catch(() => {});
    $('#voice-sound').hidden = true;
  }

  function ensureAudio() {
    if (!room.audio && typeof AudioContext === 'function') room.audio = new AudioContext();
    if (room.audio && room.audio.state === 'suspended') {
      // Without a click (a reload) Chrome keeps this pending: offer the button meanwhile.
      $('#voice-sound').hidden = false;
      room.audio.resume().then(() => { $('#voice-sound').hidden = true; }, () => {});
    }
    return room.audio;
  }

  /// The microphone's meter: an AnalyserNode on the local stream.
  function makeMeter(stream) {
    const ctx = ensureAudio();
    if (!ctx) return null;
    const source = ctx.createMediaStreamSource(stream);
    const analyser = Object.assign(ctx.createAnalyser(), { fftSize: 1024 });
    source.connect(analyser); // not to the speakers
    return { source, analyser, buf: new Float32Array(analyser.fftSize), speakingUntil: 0 };
  }

  /// The microphone: {level 0..1, speaking} from the RMS of the last
  /// samples; muted (or none), silent whatever the analyser hears.
  function readMic(m, now) {
    const track = micTrack();
    if (!m || !track || !track.enabled) {
      if (m) m.speakingUntil = 0;
      return { level: 0, speaking: false };
    }
    m.analyser.getFloatTimeDomainData(m.buf);
    let sum = 0;
    for (const v of m.buf) sum += v * v;
    const rms = Math.sqrt(sum / m.buf.length);
    if (rms > SPEAKING_RMS) m.speakingUntil = now + SPEAKING_HOLD_MS;
    return { level: Math.min(1, rms / 0.25), speaking: now < m.speakingUntil };
  }

  /// A connection's inbound audio in one getStats() report: packets, the
  /// energy and duration of what was decoded, and how long since the last packet.
  function inboundAudio(report) {
    const a = { packets: 0, energy: 0, duration: 0, sinceLastPacket: null };
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
      a.packets += s.packetsReceived || 0;
      a.energy += s.totalAudioEnergy || 0;
      a.duration += s.totalSamplesDuration || 0;
      // By the browser's own clock (a late sampler cannot stretch it).
      if (s.lastPacketReceivedTimestamp) a.sinceLastPacket = Math.max(a.sinceLastPacket || 0, s.timestamp - s.lastPacketReceivedTimestamp);
    });
    return a;
  }

  /// Every STATS_MS: each peer's level is what its connection received and
  /// decoded since the last sample (a bot's voice like a person's, whatever
  /// made it), then whether a moved bot's voice is back.
  async function sampleConnections() {
    if (sampling) return;
    sampling = true;
    try {
      await Promise.all([...room.conns.values()].map(async (conn) => {
        let a;
        try { a = inboundAudio(await conn.pc.getStats()); } catch (_) { return; } // closed meanwhile
        if (!isCurrent(conn)) return;
        const dt = conn.duration === null ? 0 : a.duration - conn.duration;
        const level = dt > 0 ? Math.sqrt(Math.max(0, a.energy - conn.energy) / dt) : 0;
        Object.assign(conn, { packets: a.packets, energy: a.energy, duration: a.duration, level: Math.min(1, level) });
        if (level > SPEAKING_LEVEL) conn.speakingUntil = performance.now() + SPEAKING_HOLD_MS;
      }));
    } finally {
      sampling = false;
    }
    checkMoves();
  }

  /// Whether this connection is to receive audio (a bot that only listens sends none).
  const receives = (pc) => pc.getTransceivers().some((t) => t.currentDirection === 'sendrecv' || t.currentDirection === 'recvonly');

  /// A moved bot's voice is back once a connection made since the move is
  /// connected and carries its audio (or is connected, when it sends none);
  /// "voice back" then shows VOICE_BACK_MS, and until MOVED_MS after the move.
  function checkMoves() {
    const now = performance.now();
    let change = false;
    for (const [id, mv] of room.moves) {
      const conn = room.conns.get(id);
      if (!mv.back && conn && conn.openedAt > mv.at && conn.pc.connectionState === 'connected' &&
          (conn.packets > 0 || !receives(conn.pc))) {
        mv.back = now;
        change = true;
      } else if (mv.back && now > Math.max(mv.back + VOICE_BACK_MS, mv.at + MOVED_MS)) {
        room.moves.delete(id);
        change = true;
      }
    }
    if (change) changed();
  }

  /// A level bar (`.level > span`), and the speaking mark: the `speaking`
  /// class and a `.speaking-mark` shown (text, not colour alone).
  function showLevel(target, { level, speaking }) {
    if (!target) return;
    const bar = target.querySelector('.level > span');
    if (bar) bar.style.width = `${Math.round(level * 100)}%`;
    target.classList.toggle('speaking', speaking);
    const mark = target.querySelector('.speaking-mark');
    if (mark) mark.hidden = !speaking;
  }

  /// Every METER_MS: the microphone's level, and every voice peer's beside the members.
  function tickMeters() {
    room.mine = readMic(room.localMeter, performance.now());
    showLevel($('#voice-controls'), room.mine);
    for (const li of document.querySelectorAll('#members li[data-session-id]')) {
      const v = memberVoice(li.dataset.sessionId);
      if (v) showLevel(li, v);
    }
  }

  function toggleMute() {
    if (micTrack()) micTrack().enabled = !micTrack().enabled; // silence, same connections
    showControls();
    tickMeters(); // muted: not speaking, at once
  }

  // -- for app.js: the lobby on screen and its members list -----------------------------

  /// The lobby on screen changed (or was opened again): a stored session of
  /// it is rejoined, a call in another lobby is hung up here (kept stored).
  function showLobby(lobbyId) {
    if (room.session && room.session.lobby_id !== lobbyId) endLocally('', '', true);
    room.lobbyId = lobbyId;
    const stored = room.session ? null : loadStored(lobbyId);
    if (stored) startSession(stored); // a reload: the same session, no new POST
    changed();
  }

  /// A member_left for our own session: it ended on the server (a DELETE
  /// from elsewhere, the idle timeout).
  function memberLeft(sessionId) {
    room.moves.delete(sessionId);
    if (sessionId && sessionId === me()) endLocally('your voice session ended on the server; join again');
  }

  /// A member_moved (SPEC §7): a bot that was a voice peer here (the
  /// peer_left of the move may come before or after) is followed until its
  /// new run says hello (peer_joined), calls, and its audio arrives.
  function memberMoved(sessionId) {
    if (!room.session || !sessionId || sessionId === me()) return;
    const left = room.leftAt.get(sessionId);
    const now = performance.now();
    if (room.known.has(sessionId) || (left !== undefined && now - left < LEFT_RECENTLY_MS)) {
      room.moves.set(sessionId, { at: now, back: 0 });
    } else {
      room.moves.delete(sessionId); // it moved again, and had no voice in between
    }
  }

  /// The voice of a moved bot on the members list: 'reconnecting' (from the
  /// move until its voice is back), 'back', or null (no move followed here).
  function movedVoice(sessionId) {
    const mv = room.moves.get(sessionId);
    return mv ? (mv.back ? 'back' : 'reconnecting') : null;
  }

  /// How the members list shows a session: null when it is not a voice peer
  /// now, else {mine, state, level, speaking} (state: its connection's, or
  /// why there is none; level and speaking: what we hear of it, or our microphone).
  function memberVoice(sessionId) {
    if (sessionId && sessionId === me()) return { mine: true, state: room.welcomed ? 'connected' : 'waiting for the server', ...room.mine };
    const conn = room.conns.get(sessionId);
    if (conn) return { mine: false, state: conn.pc.connectionState, level: conn.level, speaking: performance.now() < conn.speakingUntil };
    return room.known.has(sessionId) ? { mine: false, state: 'waiting for its call', level: 0, speaking: false } : null;
  }

  /// Voice peers the members list does not have (yet): shown all the same.
  const extraMembers = (present) => [...room.known.values()].filter((p) => !present.has(p.session_id));

  function init(hooks) {
    onChange = hooks.onChange || onChange;
    $('#voice-mute').addEventListener('click', toggleMute);
    // After voice_full: hello again (a peer may have left since).
    $('#voice-retry').addEventListener('click', () => { if (room.session && room.ready && socketOpen()) sendHello(); });
    $('#voice-sound').addEventListener('click', enableSound);
    showControls();
  }

  // -- for tests: read-only, audio judged from getStats() ---------------------------------

  async function stats() {
    return Promise.all([...room.conns.values()].map(async (conn) => {
      const row = { session_id: conn.peerId, connection_id: conn.id, packetsReceived: 0, totalAudioEnergy: 0,
        localCandidateType: null, remoteCandidateType: null, level: conn.level };
      const report = await conn.pc.getStats();
      report.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) {
          // The pair ICE chose: its candidates' types say whether the media goes through TURN ("relay").
          const pair = report.get(s.selectedCandidatePairId);
          row.localCandidateType = pair ? (report.get(pair.localCandidateId) || {}).candidateType || null : null;
          row.remoteCandidateType = pair ? (report.get(pair.remoteCandidateId) || {}).candidateType || null : null;
        }
      });
      const a = inboundAudio(report);
      row.packetsReceived = a.packets;
      row.totalAudioEnergy = a.energy;
      if (a.sinceLastPacket !== null) row.sinceLastPacket = a.sinceLastPacket;
      return row;
    }));
  }

  window.voiceRoom = Object.freeze({
    init, showLobby, start, leave, say: setStatus, socketOpened, socketClosed, handle, memberLeft, memberMoved,
    memberVoice, movedVoice, showLevel, extraMembers, MOVED_MS,
  });
  Object.defineProperty(window, 'voice', {
    enumerable: true,
    value: Object.freeze({
      sessionId: me,
      welcomed: () => room.welcomed,
      peers: () => [...room.conns.values()].map((c) => ({
        session_id: c.peerId, connection_id: c.id, connectionState: c.pc.connectionState, polite: c.polite })),
      stats,
    }),
  });
})();
