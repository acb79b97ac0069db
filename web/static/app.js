// Concord join page: preflight (camera and microphone), signaling over
// one WebSocket, two RTCPeerConnections (`pub` we offer, `sub` the server
// offers), tiles for the others, and the mediator's outcome form.
// See signaling/PROTOCOL.md.

import { t, applyDom, wireSwitch, onLangChange } from './i18n.js';
import { Signal, signalURL } from './signal.js';

const $ = (id) => document.getElementById(id);

const RESULTS = ['settled', 'partially_settled', 'not_settled', 'withdrawn', 'adjourned'];
// Server error codes after which reconnecting cannot help.
const TERMINAL = new Set(['invalid_token', 'token_expired', 'not_found', 'replaced']);
const JOIN_TIMEOUT_MS = 15000;
const MAX_BACKOFF_MS = 15000;

const state = {
  phase: 'preflight',
  token: readToken(),
  localStream: null,
  self: null,
  session: null,
  participants: new Map(), // id -> participant (with online)
  iceServers: [],
  signal: null,
  joinTimer: 0,
  everJoined: false,
  attempt: 0,
  reconnectTimer: 0,
  ended: null, // { result } once the session has ended
  left: false,
  fatal: null, // { code, message } for a terminal error
  mediaProblem: null, // i18n keys of the preflight problem
  pcs: { pub: null, sub: null },
  chain: { pub: Promise.resolve(), sub: Promise.resolve() },
  remoteQueue: { pub: [], sub: [] },
  localQueue: { pub: [], sub: [] },
  localReady: { pub: false, sub: false },
  needSoundTap: false,
  outcome: null, // the recorded outcome (mediator)
};

// For tests: the current peer connections.
window.concord = { pub: null, sub: null };

function readToken() {
  const h = location.hash.replace(/^#/, '').trim();
  return h;
}

// ---------------------------------------------------------------- phases

const STATUS_KEY = {
  preflight: 'status.preflight',
  joining: 'status.joining',
  'in-room': 'status.connected',
  reconnecting: 'status.reconnecting',
  ended: 'status.ended',
  error: 'status.error',
};
const STATUS_STATE = {
  preflight: 'preflight',
  joining: 'joining',
  'in-room': 'connected',
  reconnecting: 'reconnecting',
  ended: 'ended',
  error: 'error',
};

function setPhase(phase) {
  state.phase = phase;
  document.body.dataset.state = phase;
  renderStatus();
  const inRoomish = phase === 'in-room' || phase === 'reconnecting' || (phase === 'joining' && state.everJoined);
  $('preflight-view').hidden = !(phase === 'preflight' || (phase === 'joining' && !state.everJoined));
  $('room-view').hidden = !inRoomish;
  $('controls').hidden = !inRoomish;
  $('ended-view').hidden = phase !== 'ended';
  $('error-view').hidden = phase !== 'error';
  if (phase === 'ended' || phase === 'error') {
    const h = $(phase === 'ended' ? 'ended-heading' : 'error-heading');
    requestAnimationFrame(() => h.focus());
  }
}

function renderStatus() {
  const el = $('status');
  let key = STATUS_KEY[state.phase];
  if (state.phase === 'ended' && state.left) key = 'status.left';
  if (state.phase === 'preflight' && state.mediaProblem) key = 'status.blocked';
  el.dataset.state = STATUS_STATE[state.phase];
  $('status-text').textContent = t(key);
}

// ---------------------------------------------------------------- alert

let alertState = null; // { key, vars } or { text }

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
  connect();
}

function useStream(stream) {
  if (state.localStream && state.localStream !== stream) {
    for (const tr of state.localStream.getTracks()) tr.stop();
  }
  state.localStream = stream;
  for (const id of ['self-preview', 'self-view']) {
    const v = $(id);
    v.srcObject = stream;
    v.play().catch(() => {});
  }
  $('preview-note').hidden = stream.getVideoTracks().length > 0;
  renderControls();
}

function stopLocal() {
  if (!state.localStream) return;
  for (const tr of state.localStream.getTracks()) tr.stop();
  for (const id of ['self-preview', 'self-view']) $(id).srcObject = null;
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
        if (state.signal === sig && state.phase !== 'in-room') {
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
    case 'participant_joined':
      if (msg.participant && msg.participant.id) {
        state.participants.set(msg.participant.id, { ...msg.participant, online: true });
        renderParticipants();
      }
      return;
    case 'participant_left':
      if (msg.participantId) {
        const p = state.participants.get(msg.participantId);
        if (p) p.online = false;
        removeTile(msg.participantId);
        renderParticipants();
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
    case 'session_ended':
      return endSession(msg.result);
    case 'error':
      return onServerError(msg);
    default:
      return;
  }
}

function onJoined(msg) {
  clearTimeout(state.joinTimer);
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
  setupPeers();
  setPhase('in-room');
  renderParticipants();
  $('mediator-panel').hidden = !(state.self && state.self.role === 'mediator') || !!state.outcome;
}

function onServerError(msg) {
  const code = String(msg.code || '');
  const serverText = typeof msg.message === 'string' && msg.message ? msg.message : '';
  if (code === 'session_ended') {
    endSession(null);
    return;
  }
  if (TERMINAL.has(code)) {
    fail(code, serverText);
    return;
  }
  // Everything else: tell the user; a fatal one is followed by the
  // server closing the socket, and we reconnect.
  const key = 'err.' + code;
  if (serverText) showAlert({ text: serverText, transient: true });
  else if (t(key) !== key) showAlert({ key, transient: true });
  else showAlert({ key: 'err.unknown', vars: { message: code }, transient: true });
}

function fail(code, serverText) {
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
  showAlert(serverText ? { text: serverText } : { key: state.fatal.key || 'err.internal' });
  setPhase('error');
}

function renderError() {
  if (!state.fatal) return;
  $('error-text').textContent = state.fatal.key ? t(state.fatal.key) : state.fatal.text || '';
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
    if (pc.connectionState === 'failed' && state.phase === 'in-room') {
      // Media cannot get through: start over with a fresh join.
      if (state.signal) state.signal.close();
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
  if (tracks.length > 0) {
    const pub = newPC('pub');
    for (const tr of tracks) pub.addTrack(tr, state.localStream);
    run('pub', pub, async () => {
      const offer = await pub.createOffer();
      await pub.setLocalDescription(offer);
      send({ type: 'offer', pc: 'pub', sdp: pub.localDescription.sdp });
      flushLocal('pub');
    });
  }
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
    await pc.setRemoteDescription({ type: 'answer', sdp });
    await flushRemote('pub', pc);
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

function onTrack(ev) {
  const stream = ev.streams && ev.streams[0];
  if (!stream) return;
  const id = stream.id;
  const tile = ensureTile(id);
  const video = tile.querySelector('video');
  if (video.srcObject !== stream) {
    video.srcObject = stream;
    stream.addEventListener('removetrack', () => {
      if (stream.getTracks().length === 0) removeTile(id);
      else updateTileVideo(tile, stream);
    });
  }
  ev.track.addEventListener('mute', () => updateTileVideo(tile, stream));
  ev.track.addEventListener('unmute', () => updateTileVideo(tile, stream));
  ev.track.addEventListener('ended', () => updateTileVideo(tile, stream));
  updateTileVideo(tile, stream);
  playTile(video);
}

function playTile(video) {
  video.muted = false;
  const p = video.play();
  if (!p) return;
  p.catch(() => {
    // Autoplay with sound was refused: play muted, ask for a tap.
    video.muted = true;
    video.play().catch(() => {});
    state.needSoundTap = true;
    $('sound-on').hidden = false;
  });
}

function updateTileVideo(tile, stream) {
  const live = stream.getVideoTracks().some((tr) => tr.readyState === 'live' && !tr.muted);
  tile.classList.toggle('no-video', !live);
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
  cap.append(name, role);
  tile.append(video, avatar, cap);
  tiles.append(tile);
  renderTile(tile);
  renderTileCount();
  return tile;
}

function renderTile(tile) {
  const p = state.participants.get(tile.dataset.participantId);
  const name = p && p.name ? p.name : '…';
  tile.querySelector('.tile-name').textContent = name;
  tile.querySelector('.tile-role').textContent = p ? roleLabel(p) : '';
  tile.querySelector('.tile-avatar').textContent = initial(name);
  tile.querySelector('video').setAttribute('aria-label', p ? `${name}, ${roleLabel(p)}` : name);
}

function removeTile(id) {
  const tile = $('tiles').querySelector(`[data-participant-id="${CSS.escape(id)}"]`);
  if (!tile) return;
  const v = tile.querySelector('video');
  v.srcObject = null;
  tile.remove();
  renderTileCount();
}

function clearTiles() {
  for (const tile of [...$('tiles').children]) {
    tile.querySelector('video').srcObject = null;
    tile.remove();
  }
  renderTileCount();
}

function renderTileCount() {
  const n = $('tiles').children.length;
  $('tiles').dataset.count = String(n);
  $('room-waiting').hidden = n > 0;
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
  if (p.role === 'mediator') return t('role.mediator');
  const k = 'side.' + (p.side || 'neutral');
  return t(k) !== k ? t(k) : t('side.neutral');
}

// ---------------------------------------------------------------- people

function renderParticipants() {
  const ul = $('participants');
  ul.textContent = '';
  const selfId = state.self && state.self.id;
  const list = [...state.participants.values()].sort((a, b) => {
    if (a.id === selfId) return -1;
    if (b.id === selfId) return 1;
    if ((a.role === 'mediator') !== (b.role === 'mediator')) return a.role === 'mediator' ? -1 : 1;
    return 0;
  });
  for (const p of list) {
    const li = document.createElement('li');
    li.className = 'person ' + (p.online ? 'online' : 'offline');
    li.dataset.participantId = p.id;
    const dot = document.createElement('span');
    dot.className = 'presence';
    dot.setAttribute('aria-hidden', 'true');
    const av = document.createElement('span');
    av.className = 'person-avatar';
    av.setAttribute('aria-hidden', 'true');
    av.textContent = initial(p.name);
    const text = document.createElement('span');
    text.className = 'person-text';
    const name = document.createElement('span');
    name.className = 'person-name';
    name.textContent = (p.name || '…') + (p.id === selfId ? ' ' + t('room.youSuffix') : '');
    const role = document.createElement('span');
    role.className = 'person-role';
    role.textContent = roleLabel(p) + (p.online ? '' : ' · ' + t('room.offline'));
    const sr = document.createElement('span');
    sr.className = 'visually-hidden';
    sr.textContent = p.online ? ', ' + t('room.online') : '';
    text.append(name, role, sr);
    li.append(av, text, dot);
    ul.append(li);
  }
  for (const tile of $('tiles').children) renderTile(tile);
}

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
  mic.setAttribute('aria-pressed', String(micOff && audio.length > 0));
  cam.setAttribute('aria-pressed', String(camOff && video.length > 0));
  mic.classList.toggle('off', micOff);
  cam.classList.toggle('off', camOff);
  mic.setAttribute('aria-label', t(micOff ? 'ctl.unmute' : 'ctl.mute'));
  cam.setAttribute('aria-label', t(camOff ? 'ctl.camOn' : 'ctl.camOff'));
  mic.title = mic.getAttribute('aria-label');
  cam.title = cam.getAttribute('aria-label');
  $('self-tile').classList.toggle('no-video', camOff);
  $('self-tile').querySelector('.tile-avatar').textContent = initial(state.self ? state.self.name : t('room.you'));
}

$('toggle-mic').addEventListener('click', () => {
  const tracks = state.localStream ? state.localStream.getAudioTracks() : [];
  const on = tracks.some((tr) => tr.enabled);
  for (const tr of tracks) tr.enabled = !on;
  renderControls();
});

$('toggle-cam').addEventListener('click', () => {
  const tracks = state.localStream ? state.localStream.getVideoTracks() : [];
  const on = tracks.some((tr) => tr.enabled);
  for (const tr of tracks) tr.enabled = !on;
  renderControls();
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

$('rejoin').addEventListener('click', () => location.reload());

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

// ---------------------------------------------------------------- mediator

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

// ---------------------------------------------------------------- language

function renderAll() {
  renderStatus();
  renderAlert();
  renderMediaProblem();
  renderParticipants();
  renderControls();
  renderEnded();
  renderError();
  renderOutcome();
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
preflight('av');
