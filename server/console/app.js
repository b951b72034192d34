// The agent console: sign-in, the queue of open sessions, live video over WebTransport or
// the WebSocket fallback (transport.js) decoded with WebCodecs, and marks drawn on the
// picture, re-projected once the wearable anchors them in 3D. Wire format in protocol.js,
// camera math in camera.js.

import * as P from './protocol.js';
import { project, fromNormalised, clientToImage } from './camera.js';
import { openLink } from './transport.js';

const $ = (selector) => document.querySelector(selector);
const el = {
  signinView: $('#signin-view'),
  signin: $('#signin'),
  token: $('#token'),
  signinError: $('#signin-error'),
  app: $('#app'),
  me: $('#me'),
  sessionTitle: $('#session-title'),
  frozenBadge: $('#frozen-badge'),
  queue: $('#queue'),
  queueEmpty: $('#queue-empty'),
  participants: $('#participants'),
  tools: $('#tools'),
  stage: $('#stage'),
  frame: $('#frame'),
  placeholder: $('#placeholder'),
  video: $('#video'),
  marks: $('#marks'),
  labelInput: $('#label-input'),
  stats: $('#stats'),
  toast: $('#toast'),
};

const TOKEN_KEY = 'farsight.token';
const QUEUE_REFRESH_MS = 2000;
const MAX_INK_POINTS = 256;
const KEYFRAME_REQUEST_GAP_MS = 500;

const state = {
  token: null,
  link: null, // the open link to the relay (transport.js), or a placeholder while it opens
  welcomed: false, // this connection got Welcome
  signedIn: false, // some connection with this token did: a drop is retried, not shown as a refusal
  role: P.Role.agent,
  me: null, // {id, name}
  session: 0,
  participants: new Map(),
  marks: new Map(), // id → mark (see addMark)
  pendingAnchors: new Map(), // AnchorResolved that arrived before its Annotate
  ownOrder: [],
  selected: null,
  tool: 'arrow',
  frozen: false,
  current: null, // the displayed frame: {frame, capture, pose, intrinsics}
  reconnectDelay: 1000,
  queueTimer: 0,
};

// The stroke being drawn, while the pointer is down.
let drag = null;

// What tests read; kept as plain data.
// paintDelays: capture → painted (the animation frame after the canvas was drawn), µs, for
// the benchmark.
const exposed = { marks: [], lastAnnotate: null, paintDelays: [] };
const MAX_PAINT_SAMPLES = 100_000;
window.farsightConsole = exposed;

// ---- toasts ----

function toast(message, kind = 'error') {
  const item = document.createElement('div');
  item.className = `item ${kind}`;
  item.textContent = message;
  el.toast.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 6000 : 3500);
}

// ---- connection ----

async function connect(token, role = P.Role.agent) {
  state.token = token;
  state.role = role;
  state.welcomed = false;
  const attempt = {};
  state.link = attempt;
  let link;
  const onMessage = (message) => {
    if (state.link !== link) return;
    if (message.kind === 'media') onMedia(message);
    else onControl(message.message);
  };
  const onClose = () => {
    if (state.link !== link && state.link !== attempt) return;
    state.link = null;
    if (!state.signedIn) {
      if (!el.signinError.textContent) showSigninError('Could not reach the server.');
      return;
    }
    if (state.welcomed) toast('Connection lost; reconnecting…', 'info');
    state.welcomed = false;
    resetVideo();
    setTimeout(() => state.signedIn && state.token === token && connect(token, state.role), state.reconnectDelay);
    state.reconnectDelay = Math.min(state.reconnectDelay * 2, 10000);
  };
  try {
    link = await openLink({ onMessage: (m) => guarded(onMessage, m), onClose });
  } catch {
    onClose();
    return;
  }
  if (state.link !== attempt) {
    link.close(); // superseded while connecting (signed out, or another sign-in)
    return;
  }
  state.link = link;
  send({ type: 'Hello', version: P.VERSION, role, token, resume: 0 });
}

// A malformed message from the server is reported, not thrown into the transport's loop.
function guarded(handle, message) {
  try {
    handle(message);
  } catch (e) {
    toast(`Bad message from the server: ${e.message}`);
  }
}

function send(message) {
  if (!state.link?.send) return false;
  state.link.send(P.encodeControl(message));
  return true;
}

function showSigninError(text) {
  el.signinError.textContent = text;
  el.signinError.hidden = false;
}

function onControl(m) {
  switch (m.type) {
    case 'Welcome':
      return onWelcome(m);
    case 'Error':
      return onError(m);
    case 'Joined':
      return onJoined(m);
    case 'Presence':
      return onPresence(m);
    case 'Annotate':
      if (m.session === state.session) addMark(m, false);
      return;
    case 'AnchorResolved':
      if (m.session === state.session) onAnchor(m);
      return;
    case 'Erase':
      if (m.session === state.session) removeMark(m.id);
      return;
    case 'Clear':
      if (m.session === state.session) clearMarks();
      return;
    case 'Freeze':
      if (m.session === state.session) toast(`Another watcher is drawing on frame ${m.frame}`, 'info');
      return;
    case 'Unfreeze':
      if (m.session === state.session) toast('Another watcher is back to live video', 'info');
      return;
    default:
      // KeyframeRequest, BitrateHint and unknown types are not for watchers.
      return;
  }
}

function onWelcome(m) {
  const rejoin = state.session;
  state.welcomed = true;
  state.signedIn = true;
  state.reconnectDelay = 1000;
  state.me = { id: m.participant, name: m.name };
  sessionStorage.setItem(TOKEN_KEY, state.token);
  el.signinError.hidden = true;
  el.signinError.textContent = '';
  el.signinView.hidden = true;
  el.app.hidden = false;
  el.me.textContent = `${m.name} · ${state.role === P.Role.supervisor ? 'supervisor' : 'agent'}`;
  startQueue();
  if (rejoin) join(rejoin, true);
}

function onError(m) {
  if (!state.welcomed) {
    // The page cannot know the token's role; a supervisor token is refused as agent first.
    if (m.code === P.ErrorCode.WrongRole && state.role === P.Role.agent) {
      const token = state.token;
      const old = state.link;
      state.link = null;
      old?.close?.();
      connect(token, P.Role.supervisor);
      return;
    }
    signOut(false);
    showSigninError(m.message || 'Sign-in refused.');
    return;
  }
  toast(m.message || `Error ${m.code}`);
  if (m.code === P.ErrorCode.NoSuchSession || m.code === P.ErrorCode.NotJoined) {
    if (!state.current) leaveLocal();
  }
}

// ---- queue ----

function startQueue() {
  clearInterval(state.queueTimer);
  refreshQueue();
  state.queueTimer = setInterval(refreshQueue, QUEUE_REFRESH_MS);
}

async function refreshQueue() {
  let sessions;
  try {
    const response = await fetch('/v1/sessions', { headers: { Authorization: `Bearer ${state.token}` } });
    if (response.status === 401) {
      toast('The token is no longer accepted.');
      return signOut();
    }
    if (!response.ok) return;
    sessions = await response.json();
  } catch {
    return;
  }
  renderQueue(sessions);
}

const TIER_RANK = { platinum: 4, gold: 3, standard: 2, free: 1 };

// Live ones first, then the highest plan tier, then whoever has waited longest (the server
// sends this order too; sorting here keeps the list stable between refreshes).
function sortQueue(sessions) {
  const rank = (s) => TIER_RANK[s.tier] ?? 0;
  return [...sessions].sort(
    (a, b) => Number(b.live) - Number(a.live) || rank(b) - rank(a) || a.created_at - b.created_at,
  );
}

function waited(createdAtMicros) {
  const seconds = Math.max(0, Math.round((Date.now() * 1000 - createdAtMicros) / 1e6));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function renderQueue(sessions) {
  const items = new Map([...el.queue.children].map((li) => [li.dataset.session, li]));
  const order = sortQueue(sessions);
  order.forEach((s, index) => {
    const key = String(s.id);
    let li = items.get(key);
    if (!li) {
      li = document.createElement('li');
      li.dataset.session = key;
      li.innerHTML =
        '<span class="name"></span><span class="meta routing"></span><span class="meta waiting"></span><span class="meta watchers"></span>';
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'join primary';
      button.dataset.session = key;
      button.addEventListener('click', () => join(Number(key)));
      li.append(button);
    }
    items.delete(key);
    li.querySelector('.name').textContent = s.name || `Session ${s.id}`;
    li.querySelector('.waiting').textContent = `${s.live ? 'live' : 'offline'} · waiting ${waited(s.created_at)}`;
    const routing = [s.tier, s.skill && `needs ${s.skill}`].filter(Boolean).join(' · ');
    li.querySelector('.routing').textContent = routing;
    li.querySelector('.routing').hidden = !routing;
    li.dataset.tier = s.tier ?? '';
    li.querySelector('.watchers').textContent = s.watchers?.length ? `watching: ${s.watchers.join(', ')}` : 'nobody watching';
    const current = s.id === state.session;
    li.classList.toggle('current', current);
    li.classList.toggle('ended', !s.live);
    li.querySelector('.join').textContent = current ? 'Joined' : 'Join';
    if (el.queue.children[index] !== li) el.queue.insertBefore(li, el.queue.children[index] ?? null);
  });
  items.forEach((li) => li.remove());
  el.queueEmpty.hidden = order.length > 0;
}

// ---- membership ----

function join(session, force = false) {
  if (session === state.session && !force) return;
  if (state.session && session !== state.session) send({ type: 'Leave', session: state.session });
  leaveLocal();
  state.session = session;
  el.sessionTitle.textContent = `Session ${session}`;
  el.placeholder.textContent = 'Waiting for the picture…';
  send({ type: 'Join', session });
  requestKeyframe(true);
  refreshQueue();
}

function leaveLocal() {
  state.session = 0;
  state.participants.clear();
  clearMarks();
  setFrozen(false, false);
  resetVideo();
  renderParticipants();
  el.sessionTitle.textContent = 'No session';
}

function onJoined(m) {
  if (m.session !== state.session) return;
  state.participants.clear();
  if (state.me) state.participants.set(state.me.id, { id: state.me.id, role: state.role, name: state.me.name });
  m.participants.forEach((p) => state.participants.set(p.id, p));
  const name = document.querySelector(`#queue li[data-session="${m.session}"] .name`)?.textContent;
  if (name) el.sessionTitle.textContent = name;
  renderParticipants();
}

function onPresence(m) {
  if (m.session !== state.session) return;
  if (m.present) state.participants.set(m.participant.id, m.participant);
  else state.participants.delete(m.participant.id);
  renderParticipants();
  toast(`${m.participant.name} ${m.present ? 'joined' : 'left'}`, 'info');
}

const ROLE_NAMES = { [P.Role.wearable]: 'wearer', [P.Role.agent]: 'agent', [P.Role.supervisor]: 'supervisor' };

function renderParticipants() {
  el.participants.replaceChildren(
    ...[...state.participants.values()].map((p) => {
      const li = document.createElement('li');
      li.dataset.participant = String(p.id);
      const dot = document.createElement('span');
      dot.className = 'dot';
      const name = document.createElement('span');
      name.textContent = p.id === state.me?.id ? `${p.name} (you)` : p.name;
      const role = document.createElement('span');
      role.className = 'role';
      role.textContent = ROLE_NAMES[p.role] ?? '';
      li.append(dot, name, role);
      return li;
    }),
  );
}

// ---- video ----

const video = {
  decoder: null,
  codec: null,
  waitingForKey: true,
  group: -1,
  lastFrame: -1,
  pending: new Map(), // chunk timestamp (frame number) → frame metadata
  lastKeyframeRequest: 0,
  unsupported: false,
};

const stats = { bytes: [], delays: [], decoded: 0, dropped: 0, drawn: 0 };
const videoCtx = el.video.getContext('2d');

function resetVideo() {
  if (video.decoder && video.decoder.state !== 'closed') video.decoder.close();
  video.decoder = null;
  video.codec = null;
  video.waitingForKey = true;
  video.group = -1;
  video.lastFrame = -1;
  video.pending.clear();
  stats.delays.length = 0;
  state.current = null;
  el.video.dataset.frame = '';
  el.frame.hidden = true;
  el.placeholder.hidden = false;
}

function requestKeyframe(force = false) {
  const now = performance.now();
  if (!state.session || (!force && now - video.lastKeyframeRequest < KEYFRAME_REQUEST_GAP_MS)) return;
  video.lastKeyframeRequest = now;
  send({ type: 'KeyframeRequest', session: state.session });
}

function dropFrame() {
  stats.dropped += 1;
}

function onMedia({ header, object }) {
  if (header.session !== state.session || header.track !== 0) return;
  stats.bytes.push([performance.now(), object.payload.length]);
  // An older group still finishing after a newer one began: its frames would be out of order.
  if (header.group < video.group || object.frame <= video.lastFrame) return dropFrame();
  if (header.group > video.group && !object.keyframe) video.waitingForKey = true;
  video.group = header.group;
  if (video.waitingForKey && !object.keyframe) return dropFrame();
  if (typeof VideoDecoder === 'undefined') {
    if (!video.unsupported) toast('This browser has no WebCodecs: open the console over https or localhost in a current Chrome.');
    video.unsupported = true;
    return dropFrame();
  }
  if (object.keyframe && !configure(object.payload)) return dropFrame();
  video.pending.set(object.frame, {
    frame: object.frame,
    capture: object.capture,
    pose: object.pose,
    intrinsics: object.intrinsics,
  });
  try {
    video.decoder.decode(
      new EncodedVideoChunk({
        type: object.keyframe ? 'key' : 'delta',
        timestamp: object.frame,
        data: object.payload,
      }),
    );
    video.waitingForKey = false;
    video.lastFrame = object.frame;
  } catch (e) {
    decoderFailed(e);
  }
}

// (Re)configures on a key frame when the codec changed or the decoder is gone; no
// `description` means the chunks are Annex B, as the wearable sends them.
function configure(payload) {
  const codec = P.avcCodecString(payload);
  if (!codec) return false;
  if (video.decoder && video.decoder.state === 'configured' && codec === video.codec) return true;
  if (video.decoder && video.decoder.state !== 'closed') video.decoder.close();
  const decoder = new VideoDecoder({
    output: onDecoded,
    // A decoder already replaced may still report; only the current one's failure matters.
    error: (e) => decoder === video.decoder && decoderFailed(e),
  });
  video.decoder = decoder;
  video.codec = codec;
  try {
    decoder.configure({ codec, optimizeForLatency: true });
  } catch (e) {
    decoderFailed(e);
    return false;
  }
  return true;
}

function decoderFailed(error) {
  dropFrame();
  if (error?.name === 'NotSupportedError' && !video.unsupported) {
    video.unsupported = true;
    toast(`This browser cannot decode ${video.codec}.`);
  }
  if (video.decoder && video.decoder.state !== 'closed') video.decoder.close();
  video.decoder = null;
  video.codec = null;
  video.waitingForKey = true;
  video.pending.clear();
  requestKeyframe();
}

function onDecoded(videoFrame) {
  const meta = video.pending.get(videoFrame.timestamp);
  for (const key of video.pending.keys()) {
    if (key > videoFrame.timestamp) break;
    video.pending.delete(key);
  }
  stats.decoded += 1;
  // While frozen the decoder keeps going, so unfreezing shows live video at once.
  if (!meta || state.frozen) {
    videoFrame.close();
    return;
  }
  const { width, height } = meta.intrinsics;
  if (el.video.width !== width || el.video.height !== height) {
    el.video.width = width;
    el.video.height = height;
    fitFrame();
  }
  videoCtx.drawImage(videoFrame, 0, 0, width, height);
  videoFrame.close();
  if (el.frame.hidden) {
    el.frame.hidden = false;
    el.placeholder.hidden = true;
    fitFrame();
  }
  state.current = meta;
  stats.drawn += 1;
  stats.delays.push(Date.now() * 1000 - meta.capture);
  if (stats.delays.length > 30) stats.delays.shift();
  const capture = meta.capture;
  requestAnimationFrame(() => {
    if (exposed.paintDelays.length < MAX_PAINT_SAMPLES) exposed.paintDelays.push(Date.now() * 1000 - capture);
  });
  el.video.dataset.frame = String(meta.frame);
  el.video.dataset.framesDrawn = String(stats.drawn);
  renderMarks();
}

// Sizes #frame to the largest box of the stream's aspect ratio that fits the stage. The
// overlay gets the screen's resolution rather than the stream's, so marks stay sharp.
function fitFrame() {
  const w = el.video.width;
  const h = el.video.height;
  const scale = Math.min(el.stage.clientWidth / w, el.stage.clientHeight / h);
  if (!(scale > 0)) return;
  const cssWidth = Math.floor(w * scale);
  const cssHeight = Math.floor(h * scale);
  el.frame.style.width = `${cssWidth}px`;
  el.frame.style.height = `${cssHeight}px`;
  el.marks.width = Math.round(cssWidth * devicePixelRatio);
  el.marks.height = Math.round(cssHeight * devicePixelRatio);
  renderMarks();
}

new ResizeObserver(fitFrame).observe(el.stage);

function median(values) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function renderStats() {
  const now = performance.now();
  while (stats.bytes.length && now - stats.bytes[0][0] > 1000) stats.bytes.shift();
  const kbits = (stats.bytes.reduce((sum, [, n]) => sum + n, 0) * 8) / 1000;
  const delay = median(stats.delays) / 1000;
  const set = (name, text) => {
    el.stats.querySelector(`[data-stat="${name}"]`).textContent = text;
  };
  set('bitrate', `${Math.round(kbits)} kbit/s`);
  set('delay', Number.isFinite(delay) ? `delay ${delay.toFixed(0)} ms` : 'delay – ms');
  set('decoded', `${stats.decoded} decoded`);
  set('dropped', `${stats.dropped} dropped`);
  set('transport', state.link?.kind ?? '–');
}

setInterval(renderStats, 250);

// ---- marks ----

const KIND_BY_TOOL = { arrow: P.Kind.arrow, circle: P.Kind.circle, ink: P.Kind.ink, text: P.Kind.text };
const marksCtx = el.marks.getContext('2d');

function addMark(m, own) {
  state.marks.set(m.id, {
    id: m.id,
    author: m.author,
    kind: m.kind,
    frame: m.frame,
    points: m.points,
    rgba: m.rgba,
    width: m.width,
    text: m.text,
    world: state.pendingAnchors.get(m.id) ?? null,
    own,
  });
  state.pendingAnchors.delete(m.id);
  if (own) state.ownOrder.push(m.id);
  renderMarks();
}

function onAnchor(m) {
  const mark = state.marks.get(m.id);
  if (!mark) {
    state.pendingAnchors.set(m.id, m.points);
    return;
  }
  mark.world = m.points;
  renderMarks();
}

function removeMark(id) {
  state.marks.delete(id);
  state.ownOrder = state.ownOrder.filter((x) => x !== id);
  if (state.selected === id) state.selected = null;
  renderMarks();
}

function clearMarks() {
  state.marks.clear();
  state.pendingAnchors.clear();
  state.ownOrder = [];
  state.selected = null;
  renderMarks();
}

// Random ids below 2^53, so they survive JSON and JavaScript numbers end to end.
function newMarkId() {
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return (hi & 0x1fffff) * 2 ** 32 + lo || 1;
}

function sendMark(kind, points, text = '') {
  if (!state.current || !state.session) return;
  const message = {
    type: 'Annotate',
    session: state.session,
    id: newMarkId(),
    author: 0,
    kind,
    frame: state.current.frame,
    points: points.map(([x, y]) => [clamp01(x), clamp01(y)]),
    rgba: P.DEFAULT_RGBA,
    width: P.DEFAULT_WIDTH,
    text,
  };
  if (!send(message)) return toast('Not connected.');
  exposed.lastAnnotate = { ...message, points: message.points.map((p) => [...p]) };
  addMark(message, true);
}

function clamp01(v) {
  return Math.min(1, Math.max(0, v));
}

function eraseMark() {
  const id = state.selected ?? state.ownOrder.at(-1);
  if (id === undefined || id === null) return;
  send({ type: 'Erase', session: state.session, id });
  removeMark(id);
}

function undo() {
  const id = state.ownOrder.at(-1);
  if (id === undefined) return;
  send({ type: 'Erase', session: state.session, id });
  removeMark(id);
}

function clearAll() {
  if (!state.session) return;
  send({ type: 'Clear', session: state.session });
  clearMarks();
}

function rgbaCss(rgba) {
  const v = rgba >>> 0;
  return `rgba(${v >>> 24}, ${(v >>> 16) & 0xff}, ${(v >>> 8) & 0xff}, ${(v & 0xff) / 255})`;
}

/** Image pixels per CSS pixel: strokes keep their on-screen width however the video is scaled. */
function pixelScale() {
  const cssWidth = el.marks.getBoundingClientRect().width;
  return cssWidth > 0 ? el.video.width / cssWidth : 1;
}

/** Where a mark's points are on the displayed frame, in image pixels (null: behind the camera). */
function placeMark(mark) {
  const { width, height } = el.video;
  if (mark.world) {
    if (!state.current) return null;
    return mark.world.map((p) => project(state.current, p));
  }
  return mark.points.map((p) => fromNormalised(p, width, height));
}

function renderMarks() {
  marksCtx.setTransform(1, 0, 0, 1, 0, 0);
  marksCtx.clearRect(0, 0, el.marks.width, el.marks.height);
  // Marks are drawn in image pixels, whatever the overlay's own resolution.
  marksCtx.setTransform(el.marks.width / el.video.width, 0, 0, el.marks.height / el.video.height, 0, 0);
  const scale = pixelScale();
  const anchored = [];
  for (const mark of state.marks.values()) {
    const points = placeMark(mark);
    mark.placed = points;
    if (!points) continue;
    if (mark.world && state.current) anchored.push({ id: mark.id, frame: state.current.frame, points });
    drawMark(marksCtx, mark, points, scale, mark.id === state.selected);
  }
  if (drag) drawMark(marksCtx, drag.preview(), drag.pixels(), scale, false);
  exposed.marks = anchored;
}

function drawMark(ctx, mark, points, scale, selected) {
  const lineWidth = Math.max(1, mark.width) * scale;
  const colour = rgbaCss(mark.rgba);
  ctx.save();
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  // Dark under-stroke first so a mark reads on bright and dark backgrounds alike.
  const passes = selected
    ? [['rgba(255,255,255,0.9)', lineWidth + 8 * scale], ['rgba(0,0,0,0.8)', lineWidth + 3 * scale], [colour, lineWidth]]
    : [['rgba(0,0,0,0.8)', lineWidth + 3 * scale], [colour, lineWidth]];
  for (const [style, w] of passes) {
    ctx.strokeStyle = style;
    ctx.fillStyle = style;
    ctx.lineWidth = w;
    if (mark.kind === P.Kind.arrow) drawArrow(ctx, points, lineWidth, style === colour);
    else if (mark.kind === P.Kind.circle) drawCircle(ctx, points);
    else if (mark.kind === P.Kind.ink) drawInk(ctx, points);
  }
  if (mark.kind === P.Kind.text) drawText(ctx, points[0], mark.text, colour, scale, selected);
  ctx.restore();
}

function drawArrow(ctx, [tail, head], lineWidth, isTop) {
  if (!tail || !head) return;
  const dx = head[0] - tail[0];
  const dy = head[1] - tail[1];
  const length = Math.hypot(dx, dy) || 1;
  const ux = dx / length;
  const uy = dy / length;
  const size = Math.max(14, lineWidth * 4);
  // The head point lies inside the filled head rather than at its tip, so the marked pixel
  // itself carries the mark's colour.
  const tip = [head[0] + ux * size * 0.5, head[1] + uy * size * 0.5];
  const base = [tip[0] - ux * size, tip[1] - uy * size];
  ctx.beginPath();
  ctx.moveTo(tail[0], tail[1]);
  ctx.lineTo(base[0], base[1]);
  ctx.stroke();
  ctx.beginPath();
  ctx.moveTo(tip[0], tip[1]);
  ctx.lineTo(base[0] - uy * size * 0.55, base[1] + ux * size * 0.55);
  ctx.lineTo(base[0] + uy * size * 0.55, base[1] - ux * size * 0.55);
  ctx.closePath();
  if (!isTop) ctx.stroke();
  ctx.fill();
}

function drawCircle(ctx, [centre, rim]) {
  if (!centre || !rim) return;
  const radius = Math.hypot(rim[0] - centre[0], rim[1] - centre[1]);
  ctx.beginPath();
  ctx.arc(centre[0], centre[1], radius, 0, Math.PI * 2);
  ctx.stroke();
}

function drawInk(ctx, points) {
  ctx.beginPath();
  let pen = false;
  for (const p of points) {
    // A point behind the camera breaks the line rather than joining across it.
    if (!p) {
      pen = false;
      continue;
    }
    if (pen) ctx.lineTo(p[0], p[1]);
    else ctx.moveTo(p[0], p[1]);
    pen = true;
  }
  if (points.length === 1 && points[0]) ctx.lineTo(points[0][0] + 0.01, points[0][1]);
  ctx.stroke();
}

function drawText(ctx, at, text, colour, scale, selected) {
  if (!at) return;
  ctx.font = `600 ${Math.round(18 * scale)}px system-ui, "DejaVu Sans", sans-serif`;
  ctx.textBaseline = 'middle';
  ctx.lineWidth = 4 * scale;
  ctx.strokeStyle = selected ? 'rgba(255,255,255,0.9)' : 'rgba(0,0,0,0.85)';
  ctx.strokeText(text, at[0], at[1]);
  ctx.fillStyle = colour;
  ctx.fillText(text, at[0], at[1]);
}

// ---- drawing with the pointer ----

function pointerToImage(event) {
  const rect = el.marks.getBoundingClientRect();
  return clientToImage(event.clientX, event.clientY, rect, el.video.width, el.video.height);
}

function toNorm([u, v]) {
  return [u / el.video.width, v / el.video.height];
}

el.marks.addEventListener('pointerdown', (event) => {
  if (event.button !== 0 || !state.session) return;
  if (!state.current) return toast('No picture yet to draw on.', 'info');
  // The label input opens on click: a focus given during pointerdown is taken back by it.
  if (state.tool === 'text') return;
  const start = pointerToImage(event);
  el.marks.setPointerCapture(event.pointerId);
  const tool = state.tool;
  const pixels = [start, start];
  drag = {
    tool,
    pixels: () => pixels,
    preview: () => ({ kind: KIND_BY_TOOL[tool], rgba: P.DEFAULT_RGBA, width: P.DEFAULT_WIDTH }),
    move(p) {
      if (tool === 'ink') pixels.push(p);
      else pixels[1] = p;
    },
    startClient: [event.clientX, event.clientY],
  };
  if (tool === 'ink') pixels.length = 1;
  renderMarks();
});

el.marks.addEventListener('click', (event) => {
  if (state.tool === 'text' && state.session && state.current) openLabelInput(event, pointerToImage(event));
});

el.marks.addEventListener('pointermove', (event) => {
  if (!drag) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) drag.move(pointerToImage(e));
  renderMarks();
});

el.marks.addEventListener('pointerup', (event) => {
  if (!drag) return;
  const d = drag;
  drag = null;
  d.move(pointerToImage(event));
  const moved = Math.hypot(event.clientX - d.startClient[0], event.clientY - d.startClient[1]);
  // A click without a drag selects the mark under the pointer instead of drawing.
  if (moved < 4) {
    state.selected = hitTest(d.pixels()[0]);
    renderMarks();
    return;
  }
  const points = d.tool === 'ink' ? decimate(d.pixels(), MAX_INK_POINTS) : d.pixels();
  sendMark(KIND_BY_TOOL[d.tool], points.map(toNorm));
});

el.marks.addEventListener('pointercancel', () => {
  drag = null;
  renderMarks();
});

/** At most `max` points, evenly spread along the input, keeping both ends. */
function decimate(points, max) {
  if (points.length <= max) return points;
  const out = [];
  for (let i = 0; i < max; i++) out.push(points[Math.round((i * (points.length - 1)) / (max - 1))]);
  return out;
}

function hitTest(p) {
  const reach = 10 * pixelScale();
  let best = null;
  let bestDistance = reach;
  for (const mark of state.marks.values()) {
    const pts = mark.placed;
    if (!pts) continue;
    let d = Infinity;
    if (mark.kind === P.Kind.circle && pts[0] && pts[1]) {
      const r = Math.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]);
      d = Math.abs(Math.hypot(p[0] - pts[0][0], p[1] - pts[0][1]) - r);
    } else if (mark.kind === P.Kind.text && pts[0]) {
      d = Math.hypot(p[0] - pts[0][0], p[1] - pts[0][1]) - 20 * pixelScale();
    } else {
      for (let i = 0; i + 1 < pts.length; i++) {
        if (pts[i] && pts[i + 1]) d = Math.min(d, segmentDistance(p, pts[i], pts[i + 1]));
      }
    }
    if (d < bestDistance) {
      bestDistance = d;
      best = mark.id;
    }
  }
  return best;
}

function segmentDistance(p, a, b) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  const t = len2 ? Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2)) : 0;
  return Math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy);
}

function openLabelInput(event, imagePoint) {
  const rect = el.frame.getBoundingClientRect();
  const input = el.labelInput;
  input.value = '';
  input.hidden = false;
  input.style.left = `${Math.min(event.clientX - rect.left, rect.width - 230)}px`;
  input.style.top = `${Math.min(event.clientY - rect.top, rect.height - 40)}px`;
  input.dataset.at = JSON.stringify(toNorm(imagePoint));
  input.focus();
}

el.labelInput.addEventListener('keydown', (event) => {
  event.stopPropagation();
  if (event.key === 'Escape') el.labelInput.hidden = true;
  if (event.key !== 'Enter') return;
  const text = el.labelInput.value.trim();
  el.labelInput.hidden = true;
  if (text) sendMark(P.Kind.text, [JSON.parse(el.labelInput.dataset.at)], text);
});
el.labelInput.addEventListener('blur', () => {
  el.labelInput.hidden = true;
});

// ---- tools and shortcuts ----

function setTool(tool) {
  state.tool = tool;
  for (const button of el.tools.querySelectorAll('button[data-tool]')) {
    if (KIND_BY_TOOL[button.dataset.tool]) button.classList.toggle('active', button.dataset.tool === tool);
  }
}

function setFrozen(frozen, announce = true) {
  if (frozen === state.frozen) return;
  if (frozen && !state.current) return;
  state.frozen = frozen;
  if (announce && state.session) {
    send(frozen ? { type: 'Freeze', session: state.session, frame: state.current.frame } : { type: 'Unfreeze', session: state.session });
  }
  el.frozenBadge.hidden = !frozen;
  const button = el.tools.querySelector('[data-tool="freeze"]');
  button.classList.toggle('active', frozen);
  button.querySelector('.label').textContent = frozen ? 'Unfreeze' : 'Freeze';
}

function snapshot() {
  if (!state.current) return;
  const canvas = document.createElement('canvas');
  canvas.width = el.video.width;
  canvas.height = el.video.height;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(el.video, 0, 0);
  ctx.drawImage(el.marks, 0, 0, canvas.width, canvas.height);
  canvas.toBlob((blob) => {
    if (!blob) return;
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = `farsight-${state.session}-frame-${state.current?.frame ?? 0}.png`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }, 'image/png');
}

function act(tool) {
  if (KIND_BY_TOOL[tool]) return setTool(tool);
  if (tool === 'freeze') return setFrozen(!state.frozen);
  if (tool === 'erase') return eraseMark();
  if (tool === 'undo') return undo();
  if (tool === 'clear') return clearAll();
  if (tool === 'snapshot') return snapshot();
}

el.tools.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-tool]');
  if (button) act(button.dataset.tool);
});

const SHORTCUTS = { a: 'arrow', c: 'circle', i: 'ink', t: 'text', f: 'freeze', x: 'clear', s: 'snapshot', delete: 'erase', backspace: 'erase' };

document.addEventListener('keydown', (event) => {
  if (el.app.hidden || event.target.closest?.('input, textarea, select')) return;
  const key = event.key.toLowerCase();
  if ((event.ctrlKey || event.metaKey) && key === 'z') {
    event.preventDefault();
    return undo();
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const tool = SHORTCUTS[key];
  if (!tool) return;
  event.preventDefault();
  act(tool);
});

// ---- sign-in ----

function signOut(forgetField = true) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(state.queueTimer);
  const link = state.link;
  state.link = null;
  state.welcomed = false;
  state.signedIn = false;
  link?.close?.();
  leaveLocal();
  state.token = null;
  el.app.hidden = true;
  el.signinView.hidden = false;
  if (forgetField) el.token.value = '';
  el.signinError.hidden = true;
  el.signinError.textContent = '';
}

el.signin.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = el.token.value.trim();
  if (!token) return;
  el.signinError.hidden = true;
  el.signinError.textContent = '';
  const old = state.link;
  state.link = null;
  old?.close?.();
  connect(token);
});

$('#signout').addEventListener('click', () => signOut());

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) connect(saved);
