// Marks: drawn with the pointer and sent as Annotate on the displayed frame, received from
// others, and re-projected into every frame once the wearable anchors them in 3D.

import * as P from './protocol.js';
import { project, fromNormalised, toNormalised, clientToImage } from './camera.js';
import { el, state, exposed, toast } from './ui.js';
import { send } from './link.js';

const MAX_INK_POINTS = 256;

// The stroke being drawn, while the pointer is down.
let drag = null;

// The colours and widths a mark may be drawn with (RGBA, points); the first colour is the
// protocol's default.
export const PALETTE = [P.DEFAULT_RGBA, 0xffcc00ff, 0x34c759ff, 0x0a84ffff, 0xffffffff];
export const WIDTHS = [2, P.DEFAULT_WIDTH, 8];

export const KIND_BY_TOOL = { arrow: P.Kind.arrow, circle: P.Kind.circle, ink: P.Kind.ink, text: P.Kind.text };
const marksCtx = el.marks.getContext('2d');

export function addMark(m, own) {
  state.marks.set(m.id, {
    id: m.id,
    author: m.author,
    kind: m.kind,
    frame: m.frame,
    points: m.points,
    rgba: m.rgba,
    width: m.width,
    text: m.text,
    world: state.pendingAnchors.get(m.id)?.points ?? null,
    depth: state.pendingAnchors.get(m.id)?.depth ?? null,
    own,
  });
  state.pendingAnchors.delete(m.id);
  if (own) state.ownOrder.push(m.id);
  renderMarks();
  renderMarkList();
}

export function onAnchor(m) {
  const mark = state.marks.get(m.id);
  if (!mark) {
    state.pendingAnchors.set(m.id, m);
    return;
  }
  mark.world = m.points;
  mark.depth = m.depth;
  renderMarks();
  renderMarkList();
}

const KIND_NAMES = { [P.Kind.arrow]: 'Arrow', [P.Kind.circle]: 'Circle', [P.Kind.ink]: 'Ink', [P.Kind.text]: 'Text' };

// Where each mark stands: waiting for the wearable to anchor it, anchored on the object at
// its measured depth, or on the fallback plane where no depth was measured.
function markState(mark) {
  if (!mark.world) return ['pending', 'waiting for the wearable'];
  if (mark.depth === P.DepthSource.measured) return ['object', 'on the object'];
  return ['plane', 'on the fallback plane'];
}

function renderMarkList() {
  el.markList.replaceChildren(
    ...[...state.marks.values()].map((mark) => {
      const li = document.createElement('li');
      const [key, words] = markState(mark);
      li.dataset.state = key;
      const dot = document.createElement('span');
      dot.className = 'dot';
      dot.style.background = rgbaCss(mark.rgba);
      const what = document.createElement('span');
      const author = mark.own ? 'you' : (state.participants.get(mark.author)?.name ?? 'someone who left');
      const label = mark.text ? ` “${mark.text}”` : '';
      what.textContent = `${KIND_NAMES[mark.kind] ?? 'Mark'}${label} by ${author}`;
      const where = document.createElement('span');
      where.className = 'state';
      where.textContent = words;
      li.append(dot, what, where);
      return li;
    }),
  );
}

export function removeMark(id) {
  state.marks.delete(id);
  state.ownOrder = state.ownOrder.filter((x) => x !== id);
  if (state.selected === id) state.selected = null;
  renderMarks();
  renderMarkList();
}

export function clearMarks() {
  state.lastClear = null;
  state.marks.clear();
  state.pendingAnchors.clear();
  state.ownOrder = [];
  state.selected = null;
  renderMarks();
  renderMarkList();
}

// Random ids below 2^53, so they survive JSON and JavaScript numbers end to end.
function newMarkId() {
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return (hi & 0x1fffff) * 2 ** 32 + lo || 1;
}

// A new mark of this page's, on `frame` (the one shown, unless given).
function sendMark(kind, points, text = '', style = {}) {
  if (!state.current || !state.session) return false;
  const message = {
    type: 'Annotate',
    session: state.session,
    id: newMarkId(),
    author: 0,
    kind,
    frame: style.frame ?? state.current.frame,
    points: points.map(([x, y]) => [clamp01(x), clamp01(y)]),
    rgba: style.rgba ?? state.style.rgba,
    width: style.width ?? state.style.width,
    text,
  };
  if (!send(message)) {
    toast('Not connected.');
    return false;
  }
  state.lastClear = null; // a new mark makes Ctrl+Z take back the mark, not the Clear
  exposed.lastAnnotate = { ...message, points: message.points.map((p) => [...p]) };
  addMark(message, true);
  return true;
}

function clamp01(v) {
  return Math.min(1, Math.max(0, v));
}

export function eraseMark() {
  const id = state.selected ?? state.ownOrder.at(-1);
  if (id === undefined || id === null) return;
  send({ type: 'Erase', session: state.session, id });
  removeMark(id);
}

export function undo() {
  if (state.lastClear) return restoreCleared();
  const id = state.ownOrder.at(-1);
  if (id === undefined) return;
  send({ type: 'Erase', session: state.session, id });
  removeMark(id);
}

// Clear takes every mark away, other agents' too: with theirs among them it asks first.
// Returns the question to put, or null when it cleared (or there was nothing to clear).
export function clearAll(confirmed = false) {
  if (!state.session || !state.marks.size) return null;
  const marks = [...state.marks.values()];
  const others = marks.filter((m) => !m.own).length;
  if (others && !confirmed) {
    if (others === marks.length) return `Clear ${others === 1 ? 'the mark' : `all ${others} marks`} by others?`;
    return `Clear all ${marks.length} marks, ${others} of them by others?`;
  }
  if (!send({ type: 'Clear', session: state.session })) {
    toast('Not connected.');
    return null;
  }
  clearMarks();
  state.lastClear = marks;
  toast(`Cleared ${marks.length} ${marks.length === 1 ? 'mark' : 'marks'}. Ctrl+Z brings them back.`, 'info');
  return null;
}

// Undoing a Clear draws its marks again as this page's: an anchored mark where it stands on
// the picture now shown (the wearable anchors it afresh there), any other as first drawn.
function restoreCleared() {
  const marks = state.lastClear;
  state.lastClear = null;
  const { width, height } = el.video;
  const inside = ([u, v]) => u >= 0 && v >= 0 && u <= width && v <= height;
  let restored = 0;
  for (const m of marks) {
    const inView = Boolean(m.world && m.placed?.every(inside) && state.current);
    const points = inView ? m.placed.map((p) => toNormalised(p, width, height)) : m.points;
    const style = { rgba: m.rgba, width: m.width, frame: inView ? state.current.frame : m.frame };
    if (sendMark(m.kind, points, m.text, style)) restored += 1;
  }
  toast(`Brought back ${restored} ${restored === 1 ? 'mark' : 'marks'}.`, 'info');
}

export function rgbaCss(rgba) {
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

export function renderMarks() {
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
    preview: () => ({ kind: KIND_BY_TOOL[tool], rgba: state.style.rgba, width: state.style.width }),
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
