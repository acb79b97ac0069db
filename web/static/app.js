// Concord join page: preflight (camera and microphone), the session rules,
// the lobby, and the room: signaling over one WebSocket, two
// RTCPeerConnections (`pub` we offer, `sub` the server offers), tiles for
// the others, the mode (joint session or private meeting), chat, and for
// mediators the console (lobby, modes, controls, notes, outcome).
// See signaling/PROTOCOL.md.

import { t, applyDom, wireSwitch, onLangChange } from './i18n.js';
import { Signal, signalURL } from './signal.js';

const $ = (id) => document.getElementById(id);

const RESULTS = ['settled', 'partially_settled', 'not_settled', 'withdrawn', 'adjourned'];
// Server error codes after which reconnecting cannot help.
const TERMINAL = new Set(['invalid_token', 'token_expired', 'not_found', 'replaced', 'removed', 'room_locked']);
const JOIN_TIMEOUT_MS = 15000;
const MAX_BACKOFF_MS = 15000;
const MAX_CHAT = 1000;

const state = {
  phase: 'preflight',
  stage: null, // the last stage reached: 'consent' | 'lobby' | 'room'
  token: readToken(),
  localStream: null,
  self: null,
  session: null,
  participants: new Map(), // id -> participant from joined (name, role, side, online)
  room: null, // the latest `room` view
  streams: new Map(), // participant id -> remote MediaStream
  iceServers: [],
  signal: null,
  joinTimer: 0,
  everJoined: false,
  attempt: 0,
  reconnectTimer: 0,
  ended: null, // { result } once the session has ended
  left: false,
  fatal: null, // { code } for a terminal error
  mediaProblem: null, // i18n keys of the preflight problem
  pcs: { pub: null, sub: null },
  chain: { pub: Promise.resolve(), sub: Promise.resolve() },
  remoteQueue: { pub: [], sub: [] },
  localQueue: { pub: [], sub: [] },
  localReady: { pub: false, sub: false },
  needSoundTap: false,
  outcome: null, // the recorded outcome (mediator)
  consentSent: false,
  chat: [], // { from, text, at } — in memory only, never stored
  notes: [], // mediators: { from, text, at }
  unmuteRequest: null, // { from }
  pendingRemove: null, // { id, kind: 'remove' | 'deny' }
  timer: 0,
  agreement: null, // the agreement shown (full, from the API)
  agrLoaded: false, // fetched the case's agreements since joining
  agrDirty: false, // mediator: the editor has unsaved changes
  agrMode: null, // mediator: the mode the visibility default follows
  agrBusy: false,
  speaker: '', // the active speaker among those we may hear
  screen: null, // our screen share: { track, stream, sender }
  pubOffering: false, // a pub offer awaits its answer
  pubAgain: false, // renegotiate pub once that answer is in
  weakNet: false, // the connection looks too weak for video
};

// A shared screen arrives in a stream whose id is the sharer's id with
// this suffix (camera and microphone: the id alone).
const SCREEN_SUFFIX = '.screen';

// For tests: the current peer connections.
window.concord = { pub: null, sub: null };

function readToken() {
  return location.hash.replace(/^#/, '').trim();
}

function isMediatorRole(role) {
  return role === 'mediator' || role === 'co_mediator';
}

function selfId() {
  return (state.room && state.room.self && state.room.self.id) || (state.self && state.self.id) || '';
}

function amMediator() {
  const role = (state.room && state.room.self && state.room.self.role) || (state.self && state.self.role);
  return isMediatorRole(role);
}

// ---------------------------------------------------------------- phases

const STATUS_KEY = {
  preflight: 'status.preflight',
  joining: 'status.joining',
  consent: 'status.consent',
  lobby: 'status.lobby',
  'in-room': 'status.connected',
  reconnecting: 'status.reconnecting',
  ended: 'status.ended',
  error: 'status.error',
};
const STATUS_STATE = {
  preflight: 'preflight',
  joining: 'joining',
  consent: 'connected',
  lobby: 'connected',
  'in-room': 'connected',
  reconnecting: 'reconnecting',
  ended: 'ended',
  error: 'error',
};
const STAGE_OF_PHASE = { consent: 'consent', lobby: 'lobby', 'in-room': 'room' };

function setPhase(phase) {
  const prev = state.phase;
  state.phase = phase;
  if (STAGE_OF_PHASE[phase]) state.stage = STAGE_OF_PHASE[phase];
  document.body.dataset.state = phase;
  renderStatus();
  // While reconnecting, keep showing the stage the person was at.
  const between = phase === 'reconnecting' || (phase === 'joining' && state.everJoined);
  const stage = STAGE_OF_PHASE[phase] || (between ? state.stage : null);
  $('preflight-view').hidden = !(phase === 'preflight' || (phase === 'joining' && !state.everJoined) || (between && !stage));
  $('consent-view').hidden = stage !== 'consent';
  $('lobby-view').hidden = stage !== 'lobby';
  $('room-view').hidden = stage !== 'room';
  $('controls').hidden = !(stage === 'lobby' || stage === 'room');
  $('ended-view').hidden = phase !== 'ended';
  $('error-view').hidden = phase !== 'error';
  document.body.dataset.stage = stage || '';
  if (stage === 'room') startTimer(); else stopTimer();
  if (prev !== phase) {
    const focus = { ended: 'ended-heading', error: 'error-heading', consent: 'consent-heading', lobby: 'lobby-heading' }[phase]
      || (phase === 'in-room' && (prev === 'lobby' || prev === 'consent') ? 'room-heading' : null);
    if (focus) requestAnimationFrame(() => $(focus).focus());
  }
}

function renderStatus() {
  let key = STATUS_KEY[state.phase];
  if (state.phase === 'ended' && state.left) key = 'status.left';
  if (state.phase === 'preflight' && state.mediaProblem) key = 'status.blocked';
  if (state.phase === 'error' && state.fatal && t('status.' + state.fatal.code) !== 'status.' + state.fatal.code) key = 'status.' + state.fatal.code;
  $('status').dataset.state = STATUS_STATE[state.phase];
  $('status-text').textContent = t(key);
}

// ---------------------------------------------------------------- alert

let alertState = null; // { key, vars } or { text }; info: true for news, not problems
let alertTimer = 0;

function showAlert(a) {
  alertState = a;
  renderAlert();
}

function clearAlert() {
  alertState = null;
  renderAlert();
}

function renderAlert() {
  const text = !alertState ? '' : alertState.text !== undefined ? alertState.text : t(alertState.key, alertState.vars);
  $('alert').textContent = text;
  $('alert-bar').classList.toggle('show', text !== '');
  $('alert-bar').classList.toggle('info', !!(alertState && alertState.info));
  clearTimeout(alertTimer);
  // Information (not a problem) goes away by itself.
  if (alertState && alertState.info) alertTimer = setTimeout(clearAlert, 5000);
}

// ---------------------------------------------------------------- preflight

function setMediaProblem(titleKey, helpKey, buttons) {
  state.mediaProblem = titleKey ? { titleKey, helpKey } : null;
  $('media-problem').hidden = !titleKey;
  // An empty black preview helps nobody once the camera is refused.
  $('preview').hidden = !!titleKey;
  renderMediaProblem();
  renderStatus();
  const show = new Set(buttons || []);
  $('preflight-actions').hidden = show.size === 0;
  $('media-retry').hidden = !show.has('retry');
  $('media-audio-only').hidden = !show.has('audio');
  $('media-none').hidden = !show.has('none');
}

function renderMediaProblem() {
  const p = state.mediaProblem;
  $('media-problem-title').textContent = p && p.titleKey ? t(p.titleKey) : '';
  $('media-problem-help').textContent = p && p.helpKey ? t(p.helpKey) : '';
}

async function preflight(mode) {
  setPhase('preflight');
  setMediaProblem(null, null, []);
  if (!state.token) {
    fail('no_token', t('preflight.notoken'));
    return;
  }
  if (mode === 'none') {
    useStream(new MediaStream());
    connect();
    return;
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setMediaProblem('preflight.denied', 'preflight.insecure', ['none']);
    return;
  }
  $('preview-note').hidden = false;
  const video = { width: { ideal: 640 }, height: { ideal: 360 }, facingMode: 'user' };
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(mode === 'audio' ? { audio: true, video: false } : { audio: true, video });
  } catch (err) {
    const name = err && err.name;
    if (mode === 'av' && (name === 'NotFoundError' || name === 'OverconstrainedError')) {
      // No camera at all: a microphone may still be there.
      return preflight('audio');
    }
    if (mode === 'av') {
      setMediaProblem('preflight.denied', 'preflight.denied.help', ['retry', 'audio']);
    } else {
      setMediaProblem('preflight.denied', 'preflight.nomic', ['retry', 'none']);
    }
    $('preview-note').hidden = true;
    return;
  }
  useStream(stream);
  checkNetwork();
  connect();
}

const SELF_VIDEOS = ['self-preview', 'self-view', 'lobby-preview'];

function useStream(stream) {
  if (state.localStream && state.localStream !== stream) {
    for (const tr of state.localStream.getTracks()) tr.stop();
  }
  state.localStream = stream;
  for (const id of SELF_VIDEOS) {
    const v = $(id);
    v.srcObject = stream;
    v.play().catch(() => {});
  }
  $('preview-note').hidden = stream.getVideoTracks().length > 0;
  renderControls();
  // Device labels and the full list come once the camera is allowed.
  if (stream.getVideoTracks().length > 0 && navigator.mediaDevices.enumerateDevices) countCameras();
}

function stopLocal() {
  stopScreen();
  clearInterval(netTimer);
  setWeak(false);
  if (!state.localStream) return;
  for (const tr of state.localStream.getTracks()) tr.stop();
  for (const id of SELF_VIDEOS) $(id).srcObject = null;
}

function setLocalAudio(on) {
  const tracks = state.localStream ? state.localStream.getAudioTracks() : [];
  for (const tr of tracks) tr.enabled = on;
  renderControls();
}

// ---------------------------------------------------------------- signaling

function connect() {
  clearTimeout(state.reconnectTimer);
  clearTimeout(state.joinTimer);
  if (state.signal) state.signal.close();
  teardownPeers();
  if (state.phase !== 'reconnecting') setPhase('joining');
  const sig = new Signal(signalURL(), {
    onOpen: () => {
      sig.send({ type: 'join', token: state.token });
      state.joinTimer = setTimeout(() => {
        if (state.signal === sig && !state.room) {
          sig.close();
          scheduleReconnect();
        }
      }, JOIN_TIMEOUT_MS);
    },
    onMessage: (msg) => { if (state.signal === sig) handleMessage(msg); },
    onClose: () => { if (state.signal === sig) onSocketClosed(); },
  });
  state.signal = sig;
}

function send(msg) {
  return state.signal ? state.signal.send(msg) : false;
}

function onSocketClosed() {
  state.signal = null;
  clearTimeout(state.joinTimer);
  if (state.ended || state.left || state.fatal) return;
  scheduleReconnect();
}

function scheduleReconnect() {
  if (state.ended || state.left || state.fatal) return;
  clearTimeout(state.reconnectTimer);
  teardownPeers();
  clearTiles();
  state.room = null;
  setPhase('reconnecting');
  const base = Math.min(1000 * 2 ** state.attempt, MAX_BACKOFF_MS);
  state.attempt += 1;
  state.reconnectTimer = setTimeout(connect, base / 2 + Math.random() * base / 2);
}

window.addEventListener('online', () => {
  if (state.phase === 'reconnecting' && !state.signal) connect();
});

function handleMessage(msg) {
  switch (msg.type) {
    case 'joined': return onJoined(msg);
    case 'room':
      if (msg.room && msg.room.self) {
        const r = msg.room;
        if (!Array.isArray(r.participants)) r.participants = [];
        if (!r.mode) r.mode = { caucus: false };
        onRoom(r);
      }
      return;
    case 'participant_joined':
      if (msg.participant && msg.participant.id) {
        state.participants.set(msg.participant.id, { ...msg.participant, online: true });
        renderPeople();
      }
      return;
    case 'participant_left':
      if (msg.participantId) {
        const p = state.participants.get(msg.participantId);
        if (p) p.online = false;
        renderPeople();
        renderTiles();
      }
      return;
    case 'offer':
      if (msg.pc === 'sub' && typeof msg.sdp === 'string') onSubOffer(msg.sdp);
      return;
    case 'answer':
      if (msg.pc === 'pub' && typeof msg.sdp === 'string') onPubAnswer(msg.sdp);
      return;
    case 'candidate':
      if ((msg.pc === 'pub' || msg.pc === 'sub') && msg.candidate) onRemoteCandidate(msg.pc, msg.candidate);
      return;
    case 'chat':
      if (typeof msg.text === 'string') addChat(msg);
      return;
    case 'note':
      if (typeof msg.text === 'string') {
        state.notes = [...state.notes, { from: msg.from, text: msg.text, at: msg.at }];
        renderNotes();
      }
      return;
    case 'unmute_requested':
      state.unmuteRequest = { from: msg.from || '' };
      renderSelfAudio();
      return;
    case 'active_speaker':
      state.speaker = typeof msg.participantId === 'string' ? msg.participantId : '';
      renderSpeaker();
      return;
    case 'agreement_updated':
      if (msg.agreement && msg.agreement.id) fetchAgreement(msg.agreement.id);
      return;
    case 'session_ended':
      return endSession(msg.result);
    case 'error':
      return onServerError(msg);
    default:
      return;
  }
}

function onJoined(msg) {
  state.attempt = 0;
  state.everJoined = true;
  state.self = msg.self || null;
  state.session = msg.session || null;
  state.iceServers = Array.isArray(msg.iceServers) ? msg.iceServers : [];
  state.participants = new Map();
  for (const p of Array.isArray(msg.participants) ? msg.participants : []) {
    if (p && p.id) state.participants.set(p.id, p);
  }
  if (state.self && state.self.id) {
    state.participants.set(state.self.id, { ...state.participants.get(state.self.id), ...state.self, online: true });
  }
  if (alertState && alertState.transient) clearAlert();
  // Media is set up at once: the server forwards nothing until the room
  // allows it, and an identity check in the lobby needs our camera.
  setupPeers();
  renderPeople();
  renderControls();
  state.agrLoaded = false;
  // The `room` message that follows says where we are: rules, lobby or room.
}

function onRoom(room) {
  clearTimeout(state.joinTimer);
  const prev = state.room;
  state.room = room;
  const self = room.self;
  if (self.state === 'removed') {
    fail('removed', '');
    return;
  }
  if (isMediatorRole(self.role)) state.notes = Array.isArray(room.notes) ? room.notes : [];
  // The mediator muted us: the server stops forwarding our audio, and the
  // microphone button shows it.
  const wasMuted = !!(prev && prev.self && prev.self.muted);
  if (self.muted && !wasMuted) setLocalAudio(false);
  if (self.state === 'admitted') {
    if (state.phase !== 'in-room') setPhase('in-room');
    if (!state.agrLoaded) loadAgreements();
  } else if (self.consented || state.consentSent) {
    // Agreed on this page already, but the server does not know (it
    // restarted, say): say so again rather than ask again.
    if (!self.consented) send({ type: 'consent' });
    if (state.phase !== 'lobby') setPhase('lobby');
  } else if (state.phase !== 'consent') {
    setPhase('consent');
  }
  if (state.pendingRemove && !room.participants.some((p) => p.id === state.pendingRemove.id && p.state !== 'removed')) {
    state.pendingRemove = null;
  }
  renderRoom();
}

function onServerError(msg) {
  const code = String(msg.code || '');
  const serverText = typeof msg.message === 'string' && msg.message ? msg.message : '';
  if (code === 'session_ended') {
    endSession(null);
    return;
  }
  if (TERMINAL.has(code) && msg.fatal) {
    fail(code, serverText);
    return;
  }
  // Everything else: tell the user, in their language when we can; a
  // fatal one is followed by the server closing the socket, and we
  // reconnect. A control that names someone no longer known is not_found
  // too, but not fatal.
  const key = 'err.' + code + (code === 'not_found' && !msg.fatal ? '.person' : '');
  if (t(key) !== key) showAlert({ key, transient: true });
  else if (serverText) showAlert({ text: serverText, transient: true });
  else showAlert({ key: 'err.unknown', vars: { message: code }, transient: true });
}

function fail(code, serverText) {
  if (state.fatal) return;
  state.fatal = { code };
  clearTimeout(state.reconnectTimer);
  clearTimeout(state.joinTimer);
  if (state.signal) { state.signal.close(); state.signal = null; }
  teardownPeers();
  clearTiles();
  stopLocal();
  const key = 'err.' + code;
  state.fatal.key = t(key) !== key ? key : null;
  state.fatal.text = serverText;
  renderError();
  clearAlert();
  setPhase('error');
}

function renderError() {
  if (!state.fatal) return;
  const code = state.fatal.code;
  const hk = 'err.' + code + '.heading';
  $('error-heading').textContent = t(hk) !== hk ? t(hk) : t('status.error');
  $('error-text').textContent = state.fatal.key ? t(state.fatal.key) : state.fatal.text || t('err.internal');
  $('error-retry').hidden = code !== 'room_locked';
  document.body.dataset.error = code;
}

// ---------------------------------------------------------------- WebRTC

function newPC(name) {
  const pc = new RTCPeerConnection({ iceServers: state.iceServers });
  state.pcs[name] = pc;
  window.concord[name] = pc;
  state.chain[name] = Promise.resolve();
  state.remoteQueue[name] = [];
  state.localQueue[name] = [];
  state.localReady[name] = false;
  pc.addEventListener('icecandidate', (ev) => {
    if (!ev.candidate || state.pcs[name] !== pc) return;
    const c = ev.candidate.toJSON();
    if (state.localReady[name]) send({ type: 'candidate', pc: name, candidate: c });
    else state.localQueue[name].push(c);
  });
  pc.addEventListener('connectionstatechange', () => {
    if (state.pcs[name] !== pc) return;
    if (pc.connectionState === 'failed' && state.signal && state.room) {
      // Media cannot get through: start over with a fresh join.
      state.signal.close();
      state.signal = null;
      scheduleReconnect();
    }
  });
  return pc;
}

// run serialises the steps on one connection.
function run(name, pc, fn) {
  state.chain[name] = state.chain[name].then(async () => {
    if (state.pcs[name] !== pc) return;
    try {
      await fn();
    } catch (err) {
      if (state.pcs[name] === pc) console.warn(`concord: ${name}:`, err);
    }
  });
}

function flushLocal(name) {
  state.localReady[name] = true;
  for (const c of state.localQueue[name]) send({ type: 'candidate', pc: name, candidate: c });
  state.localQueue[name] = [];
}

async function flushRemote(name, pc) {
  const queued = state.remoteQueue[name];
  state.remoteQueue[name] = [];
  for (const c of queued) {
    try { await pc.addIceCandidate(c); } catch (err) { console.warn('concord: candidate:', err); }
  }
}

function setupPeers() {
  teardownPeers();
  const sub = newPC('sub');
  sub.addEventListener('track', onTrack);

  const tracks = state.localStream ? state.localStream.getTracks() : [];
  const screen = state.screen && state.screen.track.readyState === 'live' ? state.screen : null;
  if (tracks.length > 0 || screen) {
    const pub = ensurePub();
    for (const tr of tracks) pub.addTrack(tr, state.localStream);
    // A screen shared before the connection dropped goes on.
    if (screen) screen.sender = pub.addTrack(screen.track, screen.stream);
    negotiatePub();
  }
}

function ensurePub() {
  if (state.pcs.pub) return state.pcs.pub;
  state.pubOffering = false;
  state.pubAgain = false;
  return newPC('pub');
}

// negotiatePub offers the current local tracks; while an offer awaits
// its answer, the next one waits for it. screenTracks names the tracks
// that are a shared screen.
function negotiatePub() {
  const pub = state.pcs.pub;
  if (!pub) return;
  if (state.pubOffering) {
    state.pubAgain = true;
    return;
  }
  state.pubOffering = true;
  run('pub', pub, async () => {
    try {
      const offer = await pub.createOffer();
      await pub.setLocalDescription(offer);
      const msg = { type: 'offer', pc: 'pub', sdp: pub.localDescription.sdp };
      const screen = state.screen && state.screen.sender && state.screen.track.readyState === 'live' ? [state.screen.track.id] : [];
      if (screen.length > 0) msg.screenTracks = screen;
      send(msg);
      flushLocal('pub');
    } catch (err) {
      state.pubOffering = false;
      throw err;
    }
  });
}

function teardownPeers() {
  for (const name of ['pub', 'sub']) {
    const pc = state.pcs[name];
    state.pcs[name] = null;
    window.concord[name] = null;
    if (pc) {
      try { pc.close(); } catch (_) { /* ignore */ }
    }
  }
}

function onPubAnswer(sdp) {
  const pc = state.pcs.pub;
  if (!pc) return;
  run('pub', pc, async () => {
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp });
      await flushRemote('pub', pc);
    } finally {
      state.pubOffering = false;
      if (state.pubAgain) {
        state.pubAgain = false;
        negotiatePub();
      }
    }
  });
}

function onSubOffer(sdp) {
  const pc = state.pcs.sub;
  if (!pc) return;
  run('sub', pc, async () => {
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await flushRemote('sub', pc);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    send({ type: 'answer', pc: 'sub', sdp: pc.localDescription.sdp });
    flushLocal('sub');
    // Tracks the offer took away are gone now.
    renderTiles();
  });
}

function onRemoteCandidate(name, cand) {
  const pc = state.pcs[name];
  if (!pc) return;
  run(name, pc, async () => {
    if (!pc.remoteDescription) {
      state.remoteQueue[name].push(cand);
      return;
    }
    try { await pc.addIceCandidate(cand); } catch (err) { console.warn('concord: candidate:', err); }
  });
}

// ---------------------------------------------------------------- tiles

const watchedTracks = new WeakSet();

function onTrack(ev) {
  const stream = ev.streams && ev.streams[0];
  if (!stream) return;
  const id = stream.id;
  if (state.streams.get(id) !== stream) {
    state.streams.set(id, stream);
    stream.addEventListener('removetrack', () => renderTiles());
    stream.addEventListener('addtrack', () => renderTiles());
  }
  if (!watchedTracks.has(ev.track)) {
    // A receiver's track comes back after a private meeting: watch it once.
    watchedTracks.add(ev.track);
    ev.track.addEventListener('mute', () => renderTiles());
    ev.track.addEventListener('unmute', () => renderTiles());
    ev.track.addEventListener('ended', () => renderTiles());
  }
  renderTiles();
}

function liveStream(id) {
  const s = state.streams.get(id);
  return s && s.getTracks().some((tr) => tr.readyState === 'live') ? s : null;
}

function isScreenId(streamId) {
  return streamId.endsWith(SCREEN_SUFFIX);
}

// caucusSide is the side a participant belongs to for private meetings:
// an interpreter follows the side it is attached to.
function caucusSide(p) {
  return (p.role === 'interpreter' && p.attachedSide) || p.side || 'neutral';
}

function takesPartInCaucus(p, mode) {
  if (isMediatorRole(p.role)) return true;
  const side = caucusSide(p);
  return side === mode.side || (side === 'neutral' && !!p.caucusGuest);
}

// mayReceive mirrors the room policy (rooms.Room.MayReceive) from the
// room view: whether the server currently lets us receive id's media.
// The server enforces it; the page uses it so as to show no tile (or
// frozen last frame) of someone whose tracks are paused for us.
function mayReceive(id) {
  const r = state.room;
  if (!r) return true;
  const p = r.participants.find((q) => q.id === id);
  if (!p) return !isWaitingOutside();
  if (p.role === 'observer' || !p.present) return false;
  if (p.state === 'waiting' && p.checking) return amMediator();
  if (p.state !== 'admitted') return false;
  const mode = r.mode || {};
  if (!mode.caucus) return true;
  const meIn = amMediator() || !!r.inCaucus;
  const pIn = takesPartInCaucus(p, mode);
  if (meIn || pIn) return meIn && pIn;
  // Both wait outside: people of one side may still talk together.
  const side = caucusSide(r.self);
  return side === caucusSide(p) && side !== 'neutral';
}

// tileIds lists whom to show a tile for: the others admitted and present,
// waiting people under an identity check (mediators), and anyone whose
// media arrives. A party waiting outside a private meeting gets no tile
// of those in it: the waiting panel stands in for them.
function tileIds() {
  const me = selfId();
  const ids = [];
  const room = state.room;
  const outside = isWaitingOutside();
  if (room) {
    const list = [...room.participants].sort((a, b) => Number(isMediatorRole(b.role)) - Number(isMediatorRole(a.role)));
    for (const p of list) {
      if (p.id === me || !p.present || p.role === 'observer') continue;
      if (outside && !mayReceive(p.id)) continue;
      if (p.state === 'admitted' || (p.state === 'waiting' && p.checking)) ids.push(p.id);
    }
  }
  for (const id of state.streams.keys()) {
    if (id === me || isScreenId(id) || ids.includes(id) || !liveStream(id)) continue;
    if (room && (outside || room.participants.some((p) => p.id === id))) continue;
    ids.push(id);
  }
  return ids;
}

// screenIds lists the shared screens to show: live, and from someone we
// may receive now.
function screenIds() {
  if (state.stage !== 'room' || !state.pcs.sub) return [];
  const out = [];
  for (const sid of state.streams.keys()) {
    if (!isScreenId(sid)) continue;
    const pid = sid.slice(0, -SCREEN_SUFFIX.length);
    const s = liveStream(sid);
    if (pid === selfId() || !s || s.getVideoTracks().length === 0 || !mayReceive(pid)) continue;
    out.push(sid);
  }
  return out;
}

function renderScreens() {
  const box = $('screens');
  const want = screenIds();
  for (const tile of [...box.children]) {
    if (!want.includes(tile.dataset.streamId)) dropTile(tile);
  }
  for (const sid of want) {
    let tile = [...box.children].find((c) => c.dataset.streamId === sid);
    if (!tile) {
      tile = el('figure', 'tile screen-tile');
      tile.dataset.streamId = sid;
      tile.dataset.screenOf = sid.slice(0, -SCREEN_SUFFIX.length);
      const video = document.createElement('video');
      video.autoplay = true;
      video.playsInline = true;
      video.muted = true; // a screen has no sound; muted, it may always play
      video.setAttribute('playsinline', '');
      const cap = el('figcaption', 'tile-caption');
      cap.append(el('span', 'tile-name'));
      tile.append(video, cap);
      box.append(tile);
    }
    const video = tile.querySelector('video');
    const stream = liveStream(sid);
    if (video.srcObject !== stream) {
      video.srcObject = stream;
      video.play().catch(() => {});
    }
    const label = t('screen.of', { name: nameOf(tile.dataset.screenOf) });
    setText(tile.querySelector('.tile-name'), label);
    video.setAttribute('aria-label', label);
  }
  box.hidden = want.length === 0;
  $('stage').dataset.screens = String(want.length);
}

function renderTiles() {
  const tiles = $('tiles');
  const want = state.stage === 'room' && state.pcs.sub ? tileIds() : [];
  for (const tile of [...tiles.children]) {
    if (!want.includes(tile.dataset.participantId)) dropTile(tile);
  }
  want.forEach((id, i) => {
    const tile = ensureTile(id);
    if (tiles.children[i] !== tile) {
      tiles.insertBefore(tile, tiles.children[i] || null);
      // Moving a video element pauses it.
      const v = tile.querySelector('video');
      if (v.srcObject) v.play().catch(() => {});
    }
    renderTile(tile);
  });
  renderScreens();
  for (const id of [...state.streams.keys()]) {
    if (!want.includes(id) && !liveStream(id)) state.streams.delete(id);
  }
  renderTileCount();
  renderSpeaker();
}

// renderSpeaker marks the active speaker's tile and name.
function renderSpeaker() {
  for (const node of document.querySelectorAll('#tiles [data-participant-id], #participants [data-participant-id]')) {
    node.classList.toggle('speaking', !!state.speaker && node.dataset.participantId === state.speaker);
  }
}

function ensureTile(id) {
  const tiles = $('tiles');
  let tile = tiles.querySelector(`[data-participant-id="${CSS.escape(id)}"]`);
  if (tile) return tile;
  tile = document.createElement('figure');
  tile.className = 'tile no-video';
  tile.dataset.participantId = id;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.setAttribute('playsinline', '');
  const avatar = document.createElement('div');
  avatar.className = 'tile-avatar';
  avatar.setAttribute('aria-hidden', 'true');
  const cap = document.createElement('figcaption');
  cap.className = 'tile-caption';
  const name = document.createElement('span');
  name.className = 'tile-name';
  const role = document.createElement('span');
  role.className = 'tile-role';
  const status = document.createElement('span');
  status.className = 'tile-status';
  cap.append(name, role, status);
  tile.append(video, avatar, cap);
  tiles.append(tile);
  return tile;
}

function renderTile(tile) {
  const id = tile.dataset.participantId;
  const p = person(id);
  const name = p && p.name ? p.name : '…';
  const video = tile.querySelector('video');
  // A paused track (a private meeting, say) keeps its last frame: show
  // nothing of whom the room does not let us receive now.
  const allowed = mayReceive(id);
  const stream = allowed ? liveStream(id) : null;
  if (stream) {
    if (video.srcObject !== stream) {
      video.srcObject = stream;
      playTile(video);
    }
  } else if (video.srcObject) {
    video.srcObject = null;
  }
  const hasVideo = !!stream && stream.getVideoTracks().some((tr) => tr.readyState === 'live' && !tr.muted);
  tile.classList.toggle('no-video', !hasVideo);
  // Someone whose media does not reach us because of a private meeting.
  let status = '';
  const room = state.room;
  const rp = room && room.participants.find((q) => q.id === id);
  const away = (!allowed || !stream) && room && room.mode && room.mode.caucus;
  if (rp && rp.state === 'waiting' && rp.checking) status = t('room.identityCheck');
  else if (away) status = amMediator() || room.inCaucus ? t('tile.outside') : t('tile.away');
  else if (!stream) status = t('tile.connecting');
  tile.classList.toggle('away', !!away);
  tile.classList.toggle('checking', !!(rp && rp.state === 'waiting'));
  tile.querySelector('.tile-name').textContent = name;
  tile.querySelector('.tile-role').textContent = p ? roleLabel(p) : '';
  tile.querySelector('.tile-status').textContent = status;
  tile.querySelector('.tile-avatar').textContent = initial(name);
  video.setAttribute('aria-label', [name, p ? roleLabel(p) : '', status].filter(Boolean).join(', '));
}

function playTile(video) {
  video.muted = false;
  const p = video.play();
  if (!p) return;
  p.catch((err) => {
    if (err && err.name === 'AbortError') return; // replaced by a newer stream
    // Autoplay with sound was refused: play muted, ask for a tap.
    video.muted = true;
    video.play().catch(() => {});
    state.needSoundTap = true;
    $('sound-on').hidden = false;
  });
}

function dropTile(tile) {
  tile.querySelector('video').srcObject = null;
  tile.remove();
}

function clearTiles() {
  for (const tile of [...$('tiles').children]) dropTile(tile);
  for (const tile of [...$('screens').children]) dropTile(tile);
  $('screens').hidden = true;
  state.streams.clear();
  renderTileCount();
}

function renderTileCount() {
  const n = $('tiles').children.length;
  $('tiles').dataset.count = String(n);
  $('room-waiting').hidden = n > 0 || isWaitingOutside();
  // The mediator alone in the room: say who waits in the lobby.
  const waiting = amMediator() && state.room
    ? state.room.participants.filter((p) => p.state === 'waiting' && p.present).length : 0;
  $('room-waiting').textContent = waiting > 0 ? t('room.lobbyWaiting', { n: waiting }) : t('room.waiting');
  if (n === 0) {
    state.needSoundTap = false;
    $('sound-on').hidden = true;
  }
}

$('sound-on').addEventListener('click', () => {
  for (const v of $('tiles').querySelectorAll('video')) {
    v.muted = false;
    v.play().catch(() => {});
  }
  state.needSoundTap = false;
  $('sound-on').hidden = true;
});

function initial(name) {
  const s = String(name || '').trim();
  return s ? [...s][0].toUpperCase() : '?';
}

function roleLabel(p) {
  if (isMediatorRole(p.role)) return t('role.mediator');
  const k = 'side.' + (p.side || 'neutral');
  return t(k) !== k ? t(k) : t('side.neutral');
}

// person is what we know of a participant: the room's view first, then
// the list from `joined`.
function person(id) {
  const rp = state.room && state.room.participants.find((p) => p.id === id);
  if (rp) return rp;
  if (state.room && state.room.self && state.room.self.id === id) return state.room.self;
  return state.participants.get(id) || null;
}

function nameOf(id) {
  const p = person(id);
  return p && p.name ? p.name : t('chat.someone');
}

// ---------------------------------------------------------------- the room

function isWaitingOutside() {
  const r = state.room;
  return !!(r && r.mode && r.mode.caucus && !r.inCaucus && !amMediator());
}

function modeInfo() {
  const r = state.room;
  if (!r || !r.mode || !r.mode.caucus) return { mode: 'joint', key: 'mode.joint', hint: 'mode.joint.hint', chat: 'chat.scope.joint' };
  if (amMediator()) {
    const side = r.mode.side === 'respondent' ? 'respondent' : 'applicant';
    return { mode: 'caucus-in', key: 'mode.med.' + side, hint: 'mode.med.hint', chat: 'chat.scope.caucus' };
  }
  if (r.inCaucus) return { mode: 'caucus-in', key: 'mode.caucusIn', hint: 'mode.caucusIn.hint', chat: 'chat.scope.caucus' };
  return { mode: 'caucus-waiting', key: 'mode.caucusWaiting', hint: 'mode.caucusWaiting.hint', chat: 'chat.scope.waiting' };
}

function renderRoom() {
  renderMode();
  renderTimer();
  renderSelfAudio();
  renderLobbySelf();
  renderPeople();
  renderTiles();
  renderConsole();
  renderAgreement();
  renderChatScope();
  renderNotes();
  renderControls();
}

function renderMode() {
  const m = modeInfo();
  const label = $('mode-label');
  const text = t(m.key);
  if (label.dataset.mode !== m.mode || label.textContent !== text) {
    label.dataset.mode = m.mode;
    label.textContent = text;
  }
  $('mode-hint').textContent = t(m.hint);
  // Waiting outside, the stage itself says it in more words.
  $('mode-hint').hidden = m.mode === 'joint' || m.mode === 'caucus-waiting';
  document.body.dataset.mode = m.mode;
  $('caucus-wait').hidden = m.mode !== 'caucus-waiting';
}

function renderLobbySelf() {
  const self = state.room && state.room.self;
  $('lobby-checking').hidden = !(self && self.checking);
}

function renderSelfAudio() {
  const self = state.room && state.room.self;
  const inRoom = state.stage === 'room';
  const muted = !!(self && self.muted) && inRoom;
  const req = state.unmuteRequest;
  const asked = !!req && inRoom && (muted || !micOn());
  if (req && !asked && inRoom) state.unmuteRequest = null;
  // One prompt at a time: the mediator's request, or the mute notice.
  $('unmute-request').hidden = !asked;
  $('muted-notice').hidden = !muted || asked;
  // Both texts are live regions: set only when they change, so that they
  // are read out once.
  setText($('unmute-request-text'), asked ? t('room.unmuteRequested', { name: nameOf(req.from) }) : '');
  setText($('muted-text'), muted && !asked ? t('room.mutedByMediator') : '');
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function micOn() {
  const tracks = state.localStream ? state.localStream.getAudioTracks() : [];
  return tracks.some((tr) => tr.enabled);
}

function unmuteSelf() {
  const self = state.room && state.room.self;
  if (self && self.muted) send({ type: 'unmute' });
  setLocalAudio(true);
  state.unmuteRequest = null;
  renderSelfAudio();
}

$('self-unmute').addEventListener('click', unmuteSelf);
$('unmute-accept').addEventListener('click', unmuteSelf);
$('unmute-dismiss').addEventListener('click', () => {
  state.unmuteRequest = null;
  renderSelfAudio();
});

// ---------------------------------------------------------------- timer

function formatDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

function renderTimer() {
  const started = state.room && state.room.startedAt ? Date.parse(state.room.startedAt) : NaN;
  $('session-timer').textContent = Number.isFinite(started) ? formatDuration(Date.now() - started) : '0:00';
}

function startTimer() {
  if (state.timer) return;
  renderTimer();
  state.timer = setInterval(renderTimer, 1000);
}

function stopTimer() {
  clearInterval(state.timer);
  state.timer = 0;
}

// ---------------------------------------------------------------- people

// keepFocus rebuilds part of the page and puts the focus back on the
// same control (by participant and action) if it was inside.
function keepFocus(container, rebuild) {
  const a = document.activeElement;
  let key = null;
  if (a && container.contains(a)) {
    const li = a.closest('[data-participant-id]');
    key = { id: li && li.dataset.participantId, action: a.dataset.action };
  }
  rebuild();
  if (!key || !key.action) return;
  const li = key.id && container.querySelector(`[data-participant-id="${CSS.escape(key.id)}"]`);
  const again = li && li.querySelector(`[data-action="${key.action}"]`);
  if (again && !again.disabled) again.focus();
  else if (li) {
    const first = li.querySelector('button:not([disabled])');
    if (first) first.focus();
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function actionButton(action, label, cls, describedBy) {
  const b = el('button', 'btn small ' + (cls || ''), label);
  b.type = 'button';
  b.dataset.action = action;
  if (describedBy) b.setAttribute('aria-describedby', describedBy);
  return b;
}

function personHead(p, idPrefix) {
  const me = selfId();
  const head = el('div', 'person-head');
  const av = el('span', 'person-avatar', initial(p.name));
  av.setAttribute('aria-hidden', 'true');
  const text = el('span', 'person-text');
  const name = el('span', 'person-name', (p.name || '…') + (p.id === me ? ' ' + t('room.youSuffix') : ''));
  name.id = idPrefix + '-' + p.id;
  const online = p.present !== undefined ? p.present : p.online;
  const bits = [roleLabel(p)];
  if (!online) bits.push(t('room.offline'));
  if (p.muted) bits.push(t('room.mutedBadge'));
  if (p.inCaucus && state.room && state.room.mode && state.room.mode.caucus && !isMediatorRole(p.role)) bits.push(t('room.inCaucusBadge'));
  const role = el('span', 'person-role', bits.join(' · '));
  const sr = el('span', 'visually-hidden', online ? ', ' + t('room.online') : '');
  text.append(name, role, sr);
  const dot = el('span', 'presence');
  dot.setAttribute('aria-hidden', 'true');
  head.append(av, text, dot);
  head.classList.toggle('online', !!online);
  return head;
}

function confirmRow(p) {
  const pr = state.pendingRemove;
  const box = el('div', 'confirm');
  const msg = el('p', '', t(pr.kind === 'deny' ? 'med.confirmDeny' : 'med.confirmRemove', { name: p.name || '…' }));
  msg.id = 'confirm-' + p.id;
  const row = el('div', 'row-actions');
  row.append(
    actionButton('remove-confirm', t(pr.kind === 'deny' ? 'med.deny' : 'med.remove'), 'danger', msg.id),
    actionButton('remove-cancel', t('med.cancel')),
  );
  box.append(msg, row);
  return box;
}

function renderPeople() {
  const ul = $('participants');
  const me = selfId();
  const med = amMediator();
  let list;
  if (state.room) {
    list = state.room.participants.filter((p) => p.state === 'admitted');
    if (!list.some((p) => p.id === me)) list.unshift(state.room.self);
  } else {
    list = [...state.participants.values()];
  }
  list = [...list].sort((a, b) => {
    if (a.id === me) return -1;
    if (b.id === me) return 1;
    return Number(isMediatorRole(b.role)) - Number(isMediatorRole(a.role));
  });
  keepFocus(ul, () => {
    ul.textContent = '';
    for (const p of list) {
      const li = el('li', 'person');
      li.dataset.participantId = p.id;
      const online = p.present !== undefined ? p.present : p.online;
      li.classList.add(online ? 'online' : 'offline');
      li.append(personHead(p, 'pname'));
      if (med && state.room && p.id !== me && !isMediatorRole(p.role)) {
        if (state.pendingRemove && state.pendingRemove.id === p.id) {
          li.append(confirmRow(p));
        } else {
          const row = el('div', 'row-actions');
          const nameId = 'pname-' + p.id;
          const mute = actionButton('mute', t('med.mute'), '', nameId);
          mute.disabled = !!p.muted || !online;
          const ask = actionButton('ask-unmute', t('med.askUnmute'), '', nameId);
          ask.disabled = !online;
          row.append(mute, ask, actionButton('remove', t('med.remove'), 'danger-outline', nameId));
          li.append(row);
        }
      }
      ul.append(li);
    }
  });
  for (const tile of $('tiles').children) renderTile(tile);
  renderSpeaker();
}

$('participants').addEventListener('click', (ev) => onPersonAction(ev, 'remove'));

function onPersonAction(ev, removeKind) {
  const b = ev.target.closest('button[data-action]');
  if (!b || b.disabled) return;
  const li = b.closest('[data-participant-id]');
  const id = li && li.dataset.participantId;
  if (!id) return;
  switch (b.dataset.action) {
    case 'admit': send({ type: 'admit', participantId: id }); break;
    case 'check': send({ type: 'check_identity', participantId: id, on: b.getAttribute('aria-pressed') !== 'true' }); break;
    case 'checked': send({ type: 'identity_checked', participantId: id }); break;
    case 'mute': send({ type: 'mute', participantId: id }); break;
    case 'ask-unmute':
      send({ type: 'ask_unmute', participantId: id });
      showAlert({ key: 'med.asked', vars: { name: nameOf(id) }, transient: true, info: true });
      break;
    case 'remove':
    case 'deny':
      state.pendingRemove = { id, kind: b.dataset.action === 'deny' ? 'deny' : removeKind };
      renderConsole();
      renderPeople();
      focusIn(id, 'remove-confirm');
      break;
    case 'remove-confirm':
      send({ type: 'remove', participantId: id });
      state.pendingRemove = null;
      renderConsole();
      renderPeople();
      break;
    case 'remove-cancel':
      state.pendingRemove = null;
      renderConsole();
      renderPeople();
      focusIn(id, b.closest('#lobby-list') ? 'deny' : 'remove');
      break;
    default:
  }
}

function focusIn(id, action) {
  const li = document.querySelector(`.side [data-participant-id="${CSS.escape(id)}"] [data-action="${action}"]`);
  if (li) li.focus();
}

// ---------------------------------------------------------------- console

function renderConsole() {
  const med = amMediator() && !state.outcome;
  $('mediator-panel').hidden = !med;
  $('notes-panel').hidden = !amMediator();
  if (!med || !state.room) return;
  const room = state.room;
  // The lobby.
  const waiting = room.participants.filter((p) => p.state === 'waiting' && p.present);
  const ul = $('lobby-list');
  keepFocus(ul, () => {
    ul.textContent = '';
    for (const p of waiting) {
      const li = el('li', 'lobby-item');
      li.dataset.participantId = p.id;
      li.dataset.consented = String(!!p.consented);
      li.append(personHead(p, 'lname'));
      const bits = [t(p.consented ? 'med.consented' : 'med.notConsented')];
      if (p.checking) bits.push(t('med.checking'));
      if (p.identityChecked) bits.push(t('med.checked.done'));
      const st = el('p', 'lobby-status' + (p.consented ? ' ok' : ''), bits.join(' · '));
      st.id = 'lstatus-' + p.id;
      li.append(st);
      if (state.pendingRemove && state.pendingRemove.id === p.id) {
        li.append(confirmRow(p));
      } else {
        const nameId = 'lname-' + p.id;
        const row = el('div', 'row-actions');
        const admit = actionButton('admit', t('med.admit'), 'primary', nameId);
        admit.disabled = !p.consented;
        const check = actionButton('check', t(p.checking ? 'med.check.stop' : 'med.check'), '', nameId);
        check.setAttribute('aria-pressed', String(!!p.checking));
        const checked = actionButton('checked', t(p.identityChecked ? 'med.checked.done' : 'med.checked'), '', nameId);
        checked.disabled = !!p.identityChecked;
        row.append(admit, actionButton('deny', t('med.deny'), 'danger-outline', nameId), check, checked);
        li.append(row);
      }
      ul.append(li);
    }
  });
  $('lobby-empty').hidden = waiting.length > 0;
  $('lobby-count').textContent = waiting.length > 0 ? `(${waiting.length})` : '';
  $('admit-all').hidden = waiting.length === 0;
  $('admit-all').disabled = !waiting.some((p) => p.consented);
  // The mode.
  const mode = room.mode || {};
  $('mode-joint').setAttribute('aria-pressed', String(!mode.caucus));
  $('mode-caucus-applicant').setAttribute('aria-pressed', String(!!mode.caucus && mode.side === 'applicant'));
  $('mode-caucus-respondent').setAttribute('aria-pressed', String(!!mode.caucus && mode.side === 'respondent'));
  // The lock.
  const lock = $('lock-room');
  lock.setAttribute('aria-pressed', String(!!room.locked));
  lock.textContent = t(room.locked ? 'med.unlock' : 'med.lock');
  lock.classList.toggle('locked', !!room.locked);
}

$('lobby-list').addEventListener('click', (ev) => onPersonAction(ev, 'deny'));
$('admit-all').addEventListener('click', () => send({ type: 'admit_all' }));
$('mode-joint').addEventListener('click', () => send({ type: 'set_mode', mode: { caucus: false } }));
$('mode-caucus-applicant').addEventListener('click', () => send({ type: 'set_mode', mode: { caucus: true, side: 'applicant' } }));
$('mode-caucus-respondent').addEventListener('click', () => send({ type: 'set_mode', mode: { caucus: true, side: 'respondent' } }));
$('lock-room').addEventListener('click', () => {
  send({ type: 'lock', locked: !(state.room && state.room.locked) });
});

// ---------------------------------------------------------------- chat

function addChat(msg) {
  state.chat.push({ from: msg.from || '', text: msg.text, at: msg.at || new Date().toISOString() });
  const trim = state.chat.length > MAX_CHAT;
  if (trim) state.chat.splice(0, state.chat.length - MAX_CHAT);
  renderChat(trim);
}

function timeOf(at) {
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// renderMessages shows a log of messages. The log is a live region, so it
// only appends what is new (a screen reader then reads just that); force
// redraws it all, for a change of language.
function renderMessages(box, items, emptyKey, mineId, force) {
  const rendered = box.dataset.rendered === undefined ? -1 : Number(box.dataset.rendered);
  if (!force && rendered === items.length) return;
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  let from = rendered;
  if (force || rendered <= 0 || rendered > items.length) {
    box.textContent = '';
    from = 0;
  }
  box.dataset.rendered = String(items.length);
  if (items.length === 0) {
    box.append(el('p', 'log-empty', t(emptyKey)));
    return;
  }
  for (const m of items.slice(from)) {
    const mine = mineId && m.from === mineId;
    const item = el('div', 'msg' + (mine ? ' mine' : ''));
    item.dataset.from = m.from;
    const meta = el('p', 'msg-meta');
    meta.append(el('span', 'msg-from', mine ? t('chat.you') : nameOf(m.from)));
    const time = el('time', 'msg-time', timeOf(m.at));
    time.dateTime = m.at;
    meta.append(' ', time);
    item.append(meta, el('p', 'msg-text', m.text));
    box.append(item);
  }
  // Follow the conversation, unless the reader scrolled up to read back.
  const last = items[items.length - 1];
  if (atEnd || (mineId && last.from === mineId)) box.scrollTop = box.scrollHeight;
}

function renderChat(force) {
  renderMessages($('chat-log'), state.chat, 'chat.empty', selfId(), force);
}

function renderChatScope() {
  $('chat-scope').textContent = t(modeInfo().chat);
}

$('chat-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('chat-input');
  const text = input.value.trim();
  if (!text) return;
  if (send({ type: 'chat', text: text.slice(0, 2000) })) input.value = '';
  input.focus();
});

// ---------------------------------------------------------------- notes

function renderNotes(force) {
  if (!amMediator()) return;
  renderMessages($('notes-log'), state.notes, 'notes.empty', '', force);
}

$('notes-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('notes-input');
  const text = input.value.trim();
  if (!text) return;
  if (send({ type: 'note', text: text.slice(0, 2000) })) input.value = '';
  input.focus();
});

// ---------------------------------------------------------------- consent

$('consent-accept').addEventListener('click', () => {
  if (!send({ type: 'consent' })) return;
  state.consentSent = true;
  setPhase('lobby');
  renderRoom();
});

// ---------------------------------------------------------------- controls

function renderControls() {
  const s = state.localStream;
  const audio = s ? s.getAudioTracks() : [];
  const video = s ? s.getVideoTracks() : [];
  const mic = $('toggle-mic');
  const cam = $('toggle-cam');
  const micOff = audio.length === 0 || audio.every((tr) => !tr.enabled);
  const camOff = video.length === 0 || video.every((tr) => !tr.enabled);
  mic.disabled = audio.length === 0;
  cam.disabled = video.length === 0;
  $('switch-cam').hidden = video.length === 0 || cameraCount < 2;
  // Each button's name says what it does now (no aria-pressed: its label
  // changes instead); data-on says whether the device is on.
  mic.dataset.on = String(!micOff);
  cam.dataset.on = String(!camOff);
  mic.classList.toggle('off', micOff);
  cam.classList.toggle('off', camOff);
  mic.querySelector('.ctl-label').textContent = t(micOff ? 'ctl.unmute' : 'ctl.mute');
  cam.querySelector('.ctl-label').textContent = t(camOff ? 'ctl.camOn' : 'ctl.camOff');
  $('self-tile').classList.toggle('no-video', camOff);
  $('self-tile').querySelector('.tile-avatar').textContent = initial(state.self ? state.self.name : t('room.you'));
  renderScreenControl();
}

$('toggle-mic').addEventListener('click', () => {
  if (micOn()) {
    setLocalAudio(false);
  } else {
    unmuteSelf();
  }
});

$('toggle-cam').addEventListener('click', () => {
  const tracks = state.localStream ? state.localStream.getVideoTracks() : [];
  const on = tracks.some((tr) => tr.enabled);
  for (const tr of tracks) tr.enabled = !on;
  renderControls();
});

// ---------------------------------------------------------------- camera choice

// Phones have a front and a back camera: the switch goes to the next one.
let cameraCount = 0;

async function countCameras() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    cameraCount = devices.filter((d) => d.kind === 'videoinput').length;
  } catch (_) {
    cameraCount = 0;
  }
  renderControls();
}

if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
  navigator.mediaDevices.addEventListener('devicechange', countCameras);
}

// replaceVideo puts track in place of our camera track, on the page and
// on the pub connection; null drops the camera (audio only).
async function replaceVideo(track) {
  const stream = state.localStream;
  if (!stream) return;
  const old = stream.getVideoTracks()[0] || null;
  const pub = state.pcs.pub;
  const sender = pub && old ? pub.getSenders().find((x) => x.track === old) : null;
  if (sender) await sender.replaceTrack(track);
  if (old) {
    stream.removeTrack(old);
    old.stop();
  }
  if (track) {
    if (old) track.enabled = old.enabled;
    stream.addTrack(track);
  }
  for (const id of SELF_VIDEOS) {
    const v = $(id);
    v.srcObject = stream;
    v.play().catch(() => {});
  }
  renderControls();
}

async function switchCamera() {
  const stream = state.localStream;
  const old = stream && stream.getVideoTracks()[0];
  if (!old) return;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
  const current = old.getSettings().deviceId;
  const i = devices.findIndex((d) => d.deviceId === current);
  const next = devices[(i + 1) % devices.length];
  if (!next || next.deviceId === current) return;
  const open = async (deviceId) => {
    const s = await navigator.mediaDevices.getUserMedia({ video: { deviceId: { exact: deviceId }, width: { ideal: 640 }, height: { ideal: 360 } } });
    return s.getVideoTracks()[0];
  };
  let track;
  try {
    track = await open(next.deviceId);
  } catch (_) {
    // Many phones open one camera at a time: let the old one go first.
    old.stop();
    try {
      track = await open(next.deviceId);
    } catch (_) {
      showAlert({ key: 'cam.switchFailed', transient: true });
      try { track = await open(current); } catch (_) { /* no camera at all now */ }
    }
  }
  await replaceVideo(track || null);
}

$('switch-cam').addEventListener('click', () => { switchCamera(); });

// ---------------------------------------------------------------- network check

// A weak connection cannot carry video: the page says so and offers to go
// on with audio only. It looks at what the browser knows of the network
// (navigator.connection, on Android) and, once connected, at the bitrate
// the pub connection may send and its round trip.
const WEAK_BITRATE = 150000; // bits per second
const WEAK_RTT = 1.0; // seconds
let netTimer = 0;
let weakChecks = 0;

function checkNetwork() {
  const c = navigator.connection;
  if (c && (c.effectiveType === 'slow-2g' || c.effectiveType === '2g' || (c.downlink > 0 && c.downlink < 0.3))) setWeak(true);
  clearInterval(netTimer);
  netTimer = setInterval(checkPubStats, 4000);
}

async function checkPubStats() {
  const pub = state.pcs.pub;
  if (!pub || state.ended || state.left || !hasVideo()) return;
  let weak = false;
  try {
    const stats = await pub.getStats();
    stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
        if (s.availableOutgoingBitrate !== undefined && s.availableOutgoingBitrate < WEAK_BITRATE) weak = true;
        if (s.currentRoundTripTime !== undefined && s.currentRoundTripTime > WEAK_RTT) weak = true;
      }
    });
  } catch (_) {
    return;
  }
  // Two bad checks in a row, so that a moment's congestion says nothing.
  weakChecks = weak ? weakChecks + 1 : 0;
  if (weakChecks >= 2) setWeak(true);
}

function hasVideo() {
  return !!state.localStream && state.localStream.getVideoTracks().length > 0;
}

function setWeak(weak) {
  state.weakNet = weak && hasVideo();
  $('weak-net').hidden = !state.weakNet;
}

$('weak-audio-only').addEventListener('click', async () => {
  await replaceVideo(null);
  setWeak(false);
  showAlert({ key: 'net.audioOnly.done', transient: true, info: true });
});
$('weak-keep').addEventListener('click', () => {
  $('weak-net').hidden = true;
  clearInterval(netTimer);
});

$('leave').addEventListener('click', () => {
  state.left = true;
  clearTimeout(state.reconnectTimer);
  send({ type: 'leave' });
  const sig = state.signal;
  state.signal = null;
  // Give the leave frame a moment to go out before closing.
  if (sig) setTimeout(() => sig.close(), 300);
  teardownPeers();
  clearTiles();
  stopLocal();
  renderEnded();
  setPhase('ended');
});

// ---------------------------------------------------------------- screen share

// Screen share is for desktops (a mediator showing a draft agreement, say);
// phone browsers have no getDisplayMedia. The track goes on the pub
// connection; its offer names it in screenTracks, and the others receive
// it in the stream `<our id>.screen`, with the room's visibility.

function canShareScreen() {
  return !!(navigator.mediaDevices && typeof navigator.mediaDevices.getDisplayMedia === 'function');
}

// shareScreen publishes track (a video track: from getDisplayMedia, or
// any other source) as our shared screen, replacing one shared before.
export function shareScreen(track) {
  if (!track || track.kind !== 'video' || track.readyState !== 'live') throw new Error('shareScreen: a live video track is needed');
  if (state.stage !== 'room' || !state.signal) throw new Error('shareScreen: not in the room');
  if (state.screen) stopScreen();
  try { track.contentHint = 'detail'; } catch (_) { /* older browsers */ }
  const stream = new MediaStream([track]);
  const screen = { track, stream, sender: null };
  state.screen = screen;
  // The browser's own "Stop sharing" ends the track.
  track.addEventListener('ended', () => { if (state.screen === screen) stopScreen(); });
  const pub = ensurePub();
  screen.sender = pub.addTrack(track, stream);
  negotiatePub();
  renderScreenControl();
}

// stopScreen stops our screen share, if any.
export function stopScreen() {
  const screen = state.screen;
  if (!screen) return;
  state.screen = null;
  const pub = state.pcs.pub;
  if (pub && screen.sender && pub.getSenders().includes(screen.sender)) {
    try { pub.removeTrack(screen.sender); } catch (_) { /* closed */ }
    negotiatePub();
  }
  screen.track.stop();
  renderScreenControl();
}

async function startScreenShare() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 5, max: 15 } }, audio: false });
  } catch (err) {
    // Cancelled in the browser's picker: nothing to say.
    if (!err || err.name !== 'NotAllowedError' && err.name !== 'AbortError') showAlert({ key: 'screen.failed', transient: true });
    return;
  }
  const track = stream.getVideoTracks()[0];
  for (const tr of stream.getAudioTracks()) tr.stop();
  if (!track) return;
  try {
    shareScreen(track);
  } catch (err) {
    track.stop();
    showAlert({ key: 'screen.failed', transient: true });
  }
}

function renderScreenControl() {
  const b = $('toggle-screen');
  b.hidden = !canShareScreen() || state.stage !== 'room';
  const on = !!state.screen;
  b.dataset.on = String(on);
  b.classList.toggle('active', on);
  setText(b.querySelector('.ctl-label'), t(on ? 'ctl.screenStop' : 'ctl.screen'));
  $('sharing-notice').hidden = !on || state.stage !== 'room';
}

$('toggle-screen').addEventListener('click', () => {
  if (state.screen) stopScreen();
  else startScreenShare();
});
$('sharing-stop').addEventListener('click', stopScreen);

$('rejoin').addEventListener('click', () => location.reload());
$('error-retry').addEventListener('click', () => location.reload());

// ---------------------------------------------------------------- ended

function endSession(result) {
  if (state.ended) return;
  state.ended = { result: RESULTS.includes(result) ? result : null };
  clearTimeout(state.reconnectTimer);
  clearTimeout(state.joinTimer);
  if (state.signal) { state.signal.close(); state.signal = null; }
  teardownPeers();
  clearTiles();
  stopLocal();
  clearAlert();
  renderEnded();
  setPhase('ended');
}

function renderEnded() {
  const heading = $('ended-heading');
  const next = $('ended-next');
  if (state.ended) {
    const r = state.ended.result;
    heading.textContent = r ? t('ended.heading', { result: t('result.' + r) }) : t('ended.heading.plain');
    next.textContent = t(r ? 'next.' + r : 'next.unknown');
    $('rejoin').hidden = true;
    $('ended-close').hidden = false;
  } else if (state.left) {
    heading.textContent = t('ended.left.heading');
    next.textContent = t('ended.left.text');
    $('rejoin').hidden = false;
    $('ended-close').hidden = true;
  }
}

// ---------------------------------------------------------------- mediator: outcome

const form = $('outcome-form');

$('end-session').addEventListener('click', () => {
  const open = form.hidden;
  form.hidden = !open;
  $('end-session').setAttribute('aria-expanded', String(open));
  if (open) {
    syncOutcomeForm();
    $('outcome-result').focus();
    form.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }
});

$('outcome-cancel').addEventListener('click', () => {
  form.hidden = true;
  $('end-session').setAttribute('aria-expanded', 'false');
  $('outcome-error').textContent = '';
  $('end-session').focus();
});

$('outcome-result').addEventListener('change', syncOutcomeForm);

function termsRequired(result) {
  return result === 'settled' || result === 'partially_settled';
}

function syncOutcomeForm() {
  const result = $('outcome-result').value;
  const req = termsRequired(result);
  $('outcome-terms').required = req;
  $('outcome-terms').setAttribute('aria-required', String(req));
  $('terms-required').hidden = !req;
  $('remedies-field').hidden = result !== 'not_settled';
  $('outcome-error').textContent = '';
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const result = $('outcome-result').value;
  const terms = $('outcome-terms').value.trim();
  const remedies = result === 'not_settled'
    ? [...form.querySelectorAll('input[name="remedies"]:checked')].map((i) => i.value)
    : [];
  const err = $('outcome-error');
  err.textContent = '';
  if (termsRequired(result) && !terms) {
    err.textContent = t('med.err.terms');
    $('outcome-terms').focus();
    return;
  }
  if (result === 'not_settled' && remedies.length === 0) {
    err.textContent = t('med.err.remedies');
    form.querySelector('input[name="remedies"]').focus();
    return;
  }
  if (!state.session || !state.session.id) return;
  const submit = $('outcome-submit');
  submit.disabled = true;
  submit.textContent = t('med.saving');
  let res;
  try {
    res = await fetch('/api/v1/sessions/' + encodeURIComponent(state.session.id) + '/end', {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + state.token, 'Content-Type': 'application/json' },
      body: JSON.stringify({ result, terms, remedies }),
    });
  } catch (_) {
    submit.disabled = false;
    submit.textContent = t('med.submit');
    err.textContent = t('med.err.network');
    showAlert({ key: 'med.err.network' });
    return;
  }
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  submit.disabled = false;
  submit.textContent = t('med.submit');
  if (!res.ok) {
    const detail = body && (body.detail || body.title);
    const text = detail || t('med.err.generic', { status: res.status });
    err.textContent = text;
    showAlert({ text });
    return;
  }
  const recorded = (body && body.outcome) || (body && body.case && body.case.outcome) || (body && body.result ? body : null);
  state.outcome = {
    result: (recorded && recorded.result) || result,
    terms: recorded && typeof recorded.terms === 'string' ? recorded.terms : terms,
    remedies: (recorded && Array.isArray(recorded.remedies)) ? recorded.remedies : remedies,
  };
  form.hidden = true;
  $('mediator-panel').hidden = true;
  renderOutcome();
  $('outcome-done').hidden = false;
  endSession(state.outcome.result);
  requestAnimationFrame(() => $('outcome-done').focus());
});

function renderOutcome() {
  const o = state.outcome;
  if (!o) return;
  $('outcome-done-result').textContent = t('result.' + o.result);
  $('outcome-done-terms').textContent = o.terms || '';
  $('outcome-done-terms').hidden = !o.terms;
  $('outcome-done-terms-label').hidden = !o.terms;
  const rem = (o.remedies || []).map((r) => (t('remedy.' + r) !== 'remedy.' + r ? t('remedy.' + r) : r));
  $('outcome-done-remedies').textContent = rem.join(', ');
  $('outcome-done-remedies').hidden = rem.length === 0;
  $('outcome-done-remedies-label').hidden = rem.length === 0;
}

// ---------------------------------------------------------------- agreement

// The mediation agreement: the mediator drafts it from the case's
// template, the parties read the exact text and confirm it, the mediator
// signs last. The server announces every change (`agreement_updated`);
// the page then fetches the agreement. See web/agreement_api.go.

function caseId() {
  return (state.session && state.session.caseId) || '';
}

function agrURL(suffix) {
  return '/api/v1/cases/' + encodeURIComponent(caseId()) + '/agreements' + (suffix || '');
}

// agrFetch calls the agreement API with the join token; it returns
// { res, body } or null when the network failed.
async function agrFetch(suffix, method, payload) {
  const opts = { method: method || 'GET', headers: { Authorization: 'Bearer ' + state.token } };
  if (payload !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(payload);
  }
  let res;
  try {
    res = await fetch(agrURL(suffix), opts);
  } catch (_) {
    return null;
  }
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  return { res, body };
}

function problemText(r) {
  if (!r) return t('med.err.network');
  const b = r.body;
  return (b && (b.detail || b.title)) || t('agr.err.generic', { status: r.res.status });
}

// loadAgreements shows the case's latest agreement the caller may see.
async function loadAgreements() {
  if (!caseId()) return;
  state.agrLoaded = true;
  const r = await agrFetch('', 'GET');
  if (!r || !r.res.ok || !r.body || !Array.isArray(r.body.items)) {
    state.agrLoaded = false;
    return;
  }
  const items = r.body.items.filter((a) => a.status !== 'superseded');
  const list = items.length ? items : r.body.items;
  if (list.length === 0) {
    renderAgreement();
    return;
  }
  const latest = list.reduce((a, b) => ((b.number || 0) > (a.number || 0) ? b : a));
  showAgreement(latest);
}

async function fetchAgreement(id) {
  if (!caseId()) return;
  const r = await agrFetch('/' + encodeURIComponent(id), 'GET');
  if (!r) return;
  if (r.res.status === 404) {
    // No longer visible to us (a draft moved into the other side's caucus).
    if (state.agreement && state.agreement.id === id) {
      state.agreement = null;
      renderAgreement();
    }
    return;
  }
  if (r.res.ok && r.body && r.body.id) showAgreement(r.body);
}

function showAgreement(a) {
  const prev = state.agreement;
  // Fetches can cross: never go back to an older revision.
  if (prev && prev.id === a.id && (a.version || 0) < (prev.version || 0)) return;
  state.agreement = a;
  if (amMediator() && !state.agrDirty && a.status === 'draft') fillEditor(a.content, a.visibleTo);
  renderAgreement();
}

// The editor.

function termRow(term, i) {
  const li = el('li', 'agreement-term');
  li.dataset.term = String(i + 1);
  const n = i + 1;
  const field = (label, input) => {
    const f = el('div', 'field');
    const l = el('label', '', label);
    input.id = 'agreement-term-' + n + '-' + input.dataset.f;
    l.htmlFor = input.id;
    f.append(l, input);
    return f;
  };
  const text = document.createElement('textarea');
  text.rows = 2;
  text.maxLength = 2000;
  text.dataset.f = 'text';
  text.value = term.text || '';
  const obligor = document.createElement('select');
  obligor.dataset.f = 'obligor';
  for (const [v, k] of [['', 'agr.term.none'], ['applicant', 'agr.visible.applicant'], ['respondent', 'agr.visible.respondent']]) {
    const o = el('option', '', k === 'agr.term.none' ? t(k) : t('agr.side.' + v));
    o.value = v;
    obligor.append(o);
  }
  obligor.value = term.obligor || '';
  const amount = document.createElement('input');
  amount.type = 'text';
  amount.inputMode = 'decimal';
  amount.dataset.f = 'amount';
  amount.value = term.amountCents ? (term.amountCents / 100).toFixed(2) : '';
  const method = document.createElement('input');
  method.type = 'text';
  method.maxLength = 200;
  method.dataset.f = 'method';
  method.value = term.method || '';
  const deadline = document.createElement('input');
  deadline.type = 'date';
  deadline.dataset.f = 'deadline';
  deadline.value = term.deadline || '';
  const remove = el('button', 'btn danger-outline', t('agr.removeTerm', { n }));
  remove.type = 'button';
  remove.dataset.action = 'remove-term';
  li.append(field(t('agr.term.text', { n }), text), field(t('agr.term.obligor'), obligor),
    field(t('agr.term.amount'), amount), field(t('agr.term.method'), method),
    field(t('agr.term.deadline'), deadline), remove);
  return li;
}

function readTerms() {
  return [...$('agreement-terms').querySelectorAll('li.agreement-term')].map((li) => {
    const v = (f) => li.querySelector('[data-f="' + f + '"]').value;
    const yuan = parseFloat(v('amount').replace(/[,，\s]/g, ''));
    const term = { text: v('text'), obligor: v('obligor'), method: v('method').trim(), deadline: v('deadline') };
    if (Number.isFinite(yuan) && yuan > 0) term.amountCents = Math.round(yuan * 100);
    return term;
  });
}

function rebuildTerms(terms) {
  const ol = $('agreement-terms');
  ol.textContent = '';
  terms.forEach((term, i) => ol.append(termRow(term, i)));
}

// The content being edited: what the template or the draft gave, with the
// fields of the form put in.
function fillEditor(content, visibleTo) {
  state.agrContent = content || {};
  $('agreement-facts').value = content.facts || '';
  $('agreement-disputed').value = content.disputedMatters || '';
  $('agreement-resp').value = content.responsibilities || '';
  const terms = Array.isArray(content.terms) && content.terms.length ? content.terms : [{}];
  rebuildTerms(terms);
  if (visibleTo) $('agreement-visible').value = visibleTo;
}

function editorContent() {
  const base = state.agrContent || {};
  return {
    parties: Array.isArray(base.parties) ? base.parties : [],
    facts: $('agreement-facts').value,
    disputedMatters: $('agreement-disputed').value,
    responsibilities: $('agreement-resp').value,
    terms: readTerms().filter((tm) => tm.text.trim() || tm.amountCents || tm.method || tm.deadline),
    mediator: base.mediator || '',
    institution: base.institution || '',
  };
}

$('agreement-editor').addEventListener('input', () => { state.agrDirty = true; });
$('agreement-editor').addEventListener('change', () => { state.agrDirty = true; });

$('agreement-add-term').addEventListener('click', () => {
  const terms = readTerms();
  terms.push({});
  rebuildTerms(terms);
  state.agrDirty = true;
  const rows = $('agreement-terms').querySelectorAll('textarea');
  rows[rows.length - 1].focus();
});

$('agreement-terms').addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-action="remove-term"]');
  if (!b) return;
  const i = Number(b.closest('li').dataset.term) - 1;
  const terms = readTerms();
  terms.splice(i, 1);
  rebuildTerms(terms.length ? terms : [{}]);
  state.agrDirty = true;
  $('agreement-add-term').focus();
});

$('agreement-load-template').addEventListener('click', async () => {
  $('agreement-error').textContent = '';
  const r = await agrFetch('/template', 'GET');
  if (!r || !r.res.ok || !r.body) {
    $('agreement-error').textContent = problemText(r);
    return;
  }
  const content = r.body;
  // Keep the terms already written.
  const terms = readTerms().filter((tm) => tm.text.trim());
  if (terms.length) content.terms = terms;
  fillEditor(content, null);
  state.agrDirty = true;
  $('agreement-panel').dataset.template = 'loaded';
  $('agreement-facts').focus();
});

$('agreement-editor').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (state.agrBusy) return;
  const err = $('agreement-error');
  err.textContent = '';
  const a = state.agreement;
  const revision = a && a.status === 'draft' ? a.revision : 0;
  const save = $('agreement-save');
  state.agrBusy = true;
  save.disabled = true;
  save.textContent = t('med.saving');
  const r = await agrFetch('/draft', 'PUT', { content: editorContent(), visibleTo: $('agreement-visible').value, revision });
  state.agrBusy = false;
  save.disabled = false;
  save.textContent = t('agr.save');
  if (r && r.res.status === 409) {
    // Someone else saved first: show theirs.
    state.agrDirty = false;
    err.textContent = t('agr.changed');
    await loadAgreements();
    return;
  }
  if (!r || !r.res.ok || !r.body || !r.body.id) {
    err.textContent = problemText(r);
    return;
  }
  state.agrDirty = false;
  showAgreement(r.body);
});

// The text, the confirmations, the signature.

function confirmedSides(a) {
  const sides = new Set();
  for (const c of Array.isArray(a.confirmations) ? a.confirmations : []) {
    if (c.textHash === a.textHash) sides.add(c.side);
  }
  return sides;
}

function selfSide() {
  return (state.room && state.room.self && state.room.self.side) || (state.self && state.self.side) || '';
}

function renderAgreement() {
  const panel = $('agreement-panel');
  const med = amMediator() && !state.outcome;
  const a = state.agreement;
  const inRoom = state.stage === 'room';
  panel.hidden = !inRoom || (!med && !a);
  $('agreement-editor').hidden = !med || (a && a.status !== 'draft');
  if (med) {
    // In a private meeting a draft is shown only to that side by default.
    const mode = (state.room && state.room.mode) || {};
    const key = mode.caucus ? (mode.side === 'respondent' ? 'respondent' : 'applicant') : 'all';
    if (state.agrMode !== key) {
      state.agrMode = key;
      $('agreement-visible').value = key;
    }
    if (!$('agreement-terms').firstChild) rebuildTerms([{}]);
  }
  const status = $('agreement-status');
  const view = $('agreement-view');
  if (!a) {
    status.textContent = t('agr.none');
    panel.dataset.status = '';
    view.hidden = true;
    return;
  }
  panel.dataset.status = a.status;
  panel.dataset.revision = String(a.revision);
  view.hidden = false;
  const text = $('agreement-text');
  if (text.textContent !== a.text) text.textContent = a.text || '';
  text.dataset.textHash = a.textHash || '';
  const sides = confirmedSides(a);
  panel.dataset.confirmed = [...sides].sort().join(' ');
  const bits = [];
  if (a.status === 'draft') {
    bits.push(a.visibleTo && a.visibleTo !== 'all'
      ? t('agr.st.draftSide', { rev: a.revision, side: t('agr.side.' + a.visibleTo) })
      : t('agr.st.draft', { rev: a.revision }));
  } else if (a.status === 'final') {
    bits.push(t('agr.st.final'));
  } else if (a.status === 'superseded') {
    bits.push(t('agr.st.superseded'));
  }
  for (const side of ['applicant', 'respondent']) {
    bits.push(t('agr.conf.' + side, { state: t(sides.has(side) ? 'agr.conf.yes' : 'agr.conf.no') }));
  }
  const mySide = selfSide();
  if (!amMediator() && sides.has(mySide)) bits.push(t('agr.youConfirmed'));
  status.textContent = bits.join(' ');
  const confirmable = a.status === 'draft' && a.visibleTo === 'all';
  const confirm = $('agreement-confirm');
  confirm.hidden = amMediator() || !confirmable || sides.has(mySide) || (mySide !== 'applicant' && mySide !== 'respondent');
  confirm.disabled = state.agrBusy;
  const sign = $('agreement-sign');
  sign.hidden = !med || a.status !== 'draft';
  sign.disabled = state.agrBusy || !confirmable || !sides.has('applicant') || !sides.has('respondent');
}

// agrAction posts a confirmation or the signature for the text shown.
async function agrAction(kind) {
  const a = state.agreement;
  if (!a || state.agrBusy) return;
  const err = $('agreement-action-error');
  err.textContent = '';
  state.agrBusy = true;
  renderAgreement();
  const textHash = $('agreement-text').dataset.textHash || a.textHash;
  const r = await agrFetch('/' + encodeURIComponent(a.id) + '/' + kind, 'POST', { textHash });
  state.agrBusy = false;
  if (!r || !r.res.ok) {
    err.textContent = problemText(r);
    if (r && r.res.status === 409) await fetchAgreement(a.id);
    renderAgreement();
    return;
  }
  if (r.body && r.body.id) showAgreement(r.body);
  else await fetchAgreement(a.id);
  renderAgreement();
}

$('agreement-confirm').addEventListener('click', () => agrAction('confirmations'));
$('agreement-sign').addEventListener('click', () => agrAction('signature'));

// The PDF: a plain link cannot carry the token, so fetch it and save it
// from a blob URL.
$('agreement-pdf').addEventListener('click', async () => {
  const a = state.agreement;
  if (!a) return;
  const err = $('agreement-action-error');
  err.textContent = '';
  let res;
  try {
    res = await fetch(agrURL('/' + encodeURIComponent(a.id) + '/pdf'), { headers: { Authorization: 'Bearer ' + state.token } });
  } catch (_) {
    err.textContent = t('med.err.network');
    return;
  }
  if (!res.ok) {
    err.textContent = t('agr.err.generic', { status: res.status });
    return;
  }
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = 'agreement-' + (a.caseNumber || 'case') + '-' + (a.number || 1) + '.pdf';
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
});

// ---------------------------------------------------------------- language

function renderAll() {
  renderStatus();
  renderAlert();
  renderMediaProblem();
  renderRoom();
  renderChat(true);
  renderNotes(true);
  renderEnded();
  renderError();
  renderOutcome();
  rebuildTerms(readTerms());
  renderAgreement();
  if (!$('outcome-submit').disabled) $('outcome-submit').textContent = t('med.submit');
}

$('alert-dismiss').addEventListener('click', clearAlert);
$('media-retry').addEventListener('click', () => preflight('av'));
$('media-audio-only').addEventListener('click', () => preflight('audio'));
$('media-none').addEventListener('click', () => preflight('none'));

window.addEventListener('hashchange', () => {
  // A different link pasted into the same tab: start over with it.
  if (readToken() !== state.token) location.reload();
});

window.addEventListener('pagehide', () => {
  if (state.signal && !state.ended) send({ type: 'leave' });
});

applyDom(document);
wireSwitch($('lang-switch'));
onLangChange(renderAll);
renderAll();
syncOutcomeForm();
start();

// start exchanges a short SMS link (/j/CODE redirects to /join#code=CODE)
// for its join token, then begins the preflight.
async function start() {
  const m = /^code=([0-9a-z]+)$/i.exec(readToken());
  if (!m) {
    preflight('av');
    return;
  }
  try {
    const res = await fetch('/api/v1/join/exchange', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code: m[1] }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok || !body.token) {
      fail(body.code || 'invalid_token', body.detail || '');
      return;
    }
    history.replaceState(null, '', '/join#' + body.token);
    state.token = body.token;
    preflight('av');
  } catch (e) {
    fail('invalid_token', String(e));
  }
}
