// Live video: media objects decoded with WebCodecs (H.264, Annex B) from a key frame on,
// drawn on the canvas with the frame's pose and intrinsics kept for the marks, and the
// statistics bar.

import * as P from './protocol.js';
import { el, state, exposed, toast } from './ui.js';
import { send } from './link.js';
import { renderMarks } from './marks.js';

const KEYFRAME_REQUEST_GAP_MS = 500;
// A stream of 15 fps or more that brings nothing for this long has lost its wearer's
// connection; checked every STALL_CHECK_MS, the console says so within 2 s.
const STALL_MS = 1500;
const STALL_CHECK_MS = 100;
const MAX_PAINT_SAMPLES = 100_000;

const video = {
  decoder: null,
  codec: null,
  waitingForKey: true,
  group: -1,
  lastFrame: -1,
  pending: new Map(), // chunk timestamp (frame number) → frame metadata
  lastMediaAt: 0, // performance.now() of the session's last media object; 0: none yet
  lastKeyframeRequest: 0,
  unsupported: false,
};

// For the current session; `drawn` counts on across sessions for the tests.
const stats = { bytes: [], delays: [], drawnAt: [], decoded: 0, dropped: 0, drawn: 0 };
const videoCtx = el.video.getContext('2d');

export function resetVideo() {
  if (video.decoder && video.decoder.state !== 'closed') video.decoder.close();
  video.decoder = null;
  video.codec = null;
  video.waitingForKey = true;
  video.group = -1;
  video.lastFrame = -1;
  video.pending.clear();
  video.lastMediaAt = 0;
  stats.bytes.length = 0;
  stats.delays.length = 0;
  stats.drawnAt.length = 0;
  stats.decoded = 0;
  stats.dropped = 0;
  state.current = null;
  el.video.dataset.frame = '';
  el.frame.hidden = true;
  el.placeholder.hidden = false;
}

export function requestKeyframe(force = false) {
  const now = performance.now();
  if (!state.session || (!force && now - video.lastKeyframeRequest < KEYFRAME_REQUEST_GAP_MS)) return;
  video.lastKeyframeRequest = now;
  send({ type: 'KeyframeRequest', session: state.session });
}

function dropFrame() {
  stats.dropped += 1;
}

export function onMedia({ header, object }) {
  if (header.session !== state.session || header.track !== 0) return;
  video.lastMediaAt = performance.now();
  stats.bytes.push([video.lastMediaAt, object.payload.length]);
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
  stats.drawnAt.push(performance.now());
  stats.delays.push(Date.now() * 1000 - meta.capture);
  if (stats.delays.length > 30) stats.delays.shift();
  const capture = meta.capture;
  if (exposed.drawDelays.length < MAX_PAINT_SAMPLES) exposed.drawDelays.push(Date.now() * 1000 - capture);
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

// What has become of the wearer, said over the picture: gone (its Presence said so), or
// silent for STALL_MS (a lost connection it will come back from, or not).
export function renderWearerState() {
  let text = '';
  if (state.sessionEnded) text = 'session ended';
  else if (state.joined) {
    if (state.wearerLeft) text = 'the wearer left';
    else if (video.lastMediaAt && performance.now() - video.lastMediaAt > STALL_MS) {
      text = 'connection lost — reconnecting…';
    }
  }
  if (el.wearerState.textContent === text) return;
  el.wearerState.textContent = text;
  el.wearerState.hidden = !text;
  el.frame.classList.toggle('stale', Boolean(text));
  renderStats();
}

function renderStats() {
  const now = performance.now();
  while (stats.bytes.length && now - stats.bytes[0][0] > 1000) stats.bytes.shift();
  while (stats.drawnAt.length && now - stats.drawnAt[0] > 1000) stats.drawnAt.shift();
  // A stalled stream has no delay to speak of, rather than the last one growing stale.
  if (!el.wearerState.hidden) stats.delays.length = 0;
  const kbits = (stats.bytes.reduce((sum, [, n]) => sum + n, 0) * 8) / 1000;
  const delay = median(stats.delays) / 1000;
  const set = (name, text) => {
    el.stats.querySelector(`[data-stat="${name}"]`).textContent = text;
  };
  set('bitrate', `${Math.round(kbits)} kbit/s`);
  set('delay', Number.isFinite(delay) ? `delay ${delay.toFixed(0)} ms` : 'delay – ms');
  set('fps', `${stats.drawnAt.length} fps`);
  set('size', state.current ? `${el.video.width}×${el.video.height}` : '–');
  set('decoded', `${stats.decoded} decoded`);
  set('dropped', `${stats.dropped} dropped`);
  set('transport', state.link?.kind ?? '–');
}

setInterval(renderStats, 250);
setInterval(renderWearerState, STALL_CHECK_MS);
