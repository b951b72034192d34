// The console's link to the relay: WebTransport (HTTP/3) when the browser and the network
// allow it, else a WebSocket. Both carry the protocol's own bytes and deliver the same
// decoded messages ({kind: 'control', message} or {kind: 'media', header, object}).

import * as P from './protocol.js';

// UDP blocked looks like silence, not an error: give up on WebTransport after this long.
const WEBTRANSPORT_TIMEOUT_MS = 3000;

/**
 * Opens a link; resolves to `{kind, send(bytes), close()}` once it can carry `Hello`.
 * `onMessage` gets each message, `onClose` is called once when the link dies.
 */
export async function openLink({ onMessage, onClose }) {
  const info = await fetch('/v1/console/config')
    .then((r) => (r.ok ? r.json() : {}))
    .then((c) => c.webtransport)
    .catch(() => null);
  if (info && typeof WebTransport === 'function') {
    try {
      return await openWebTransport(info, onMessage, once(onClose));
    } catch (e) {
      console.info(`WebTransport unavailable (${e.message}); using WebSocket`);
    }
  }
  return openWebSocket(onMessage, once(onClose));
}

function once(f) {
  let called = false;
  return () => {
    if (!called) {
      called = true;
      f();
    }
  };
}

function hexBytes(hex) {
  return new Uint8Array(hex.match(/../g).map((b) => parseInt(b, 16)));
}

function timeout(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function openWebTransport(info, onMessage, onClose) {
  const url = `https://${location.hostname}:${info.port}${info.path}`;
  const options = info.certificate_sha256
    ? { serverCertificateHashes: [{ algorithm: 'sha-256', value: hexBytes(info.certificate_sha256) }] }
    : {};
  const wt = new WebTransport(url, options);
  wt.closed.catch(() => {});
  try {
    await timeout(wt.ready, WEBTRANSPORT_TIMEOUT_MS, 'WebTransport');
  } catch (e) {
    try {
      wt.close();
    } catch {
      // already failed
    }
    throw e;
  }
  const control = await wt.createBidirectionalStream();
  const writer = control.writable.getWriter();
  wt.closed.then(onClose, onClose);
  readControl(control.readable, onMessage).catch(() => {}).finally(() => {
    onClose();
    try {
      wt.close();
    } catch {
      // already closed
    }
  });
  readGroups(wt.incomingUnidirectionalStreams, onMessage).catch(() => {});
  return {
    kind: 'WebTransport',
    send: (bytes) => writer.write(bytes).catch(() => {}),
    close: () => wt.close(),
  };
}

function openWebSocket(onMessage, onClose) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/v1/live`);
  ws.binaryType = 'arraybuffer';
  ws.onmessage = (event) => {
    if (event.data instanceof ArrayBuffer) onMessage(P.decodeServerMessage(event.data));
  };
  ws.onclose = onClose;
  const link = {
    kind: 'WebSocket',
    send: (bytes) => ws.readyState === WebSocket.OPEN && ws.send(bytes),
    close: () => ws.close(),
  };
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(link);
    ws.onerror = () => reject(new Error('could not reach the server'));
  });
}

/** Bytes arriving in chunks, taken out in whole units. */
class Buffer {
  constructor() {
    this.bytes = new Uint8Array(0);
  }

  push(chunk) {
    const next = new Uint8Array(this.bytes.length + chunk.length);
    next.set(this.bytes);
    next.set(chunk, this.bytes.length);
    this.bytes = next;
  }

  u32(at) {
    return new DataView(this.bytes.buffer, this.bytes.byteOffset + at, 4).getUint32(0);
  }

  take(n) {
    const out = this.bytes.slice(0, n);
    this.bytes = this.bytes.subarray(n);
    return out;
  }
}

async function readControl(readable, onMessage) {
  const reader = readable.getReader();
  const buf = new Buffer();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf.push(value);
    while (buf.bytes.length >= P.CONTROL_HEADER_LEN) {
      const length = buf.u32(2);
      if (length > P.MAX_CONTROL_PAYLOAD) throw new P.ProtocolError(`Control.length: ${length} exceeds limit`);
      if (buf.bytes.length < P.CONTROL_HEADER_LEN + length) break;
      onMessage({ kind: 'control', message: P.decodeControl(buf.take(P.CONTROL_HEADER_LEN + length)) });
    }
  }
}

async function readGroups(streams, onMessage) {
  const reader = streams.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    // A group reset by the relay (the browser fell behind) just ends early.
    readGroup(value, onMessage).catch(() => {});
  }
}

// One group: its stream header, then objects back to back, each handed on with the header
// in front (the WebSocket's message layout, so one decoder serves both links).
async function readGroup(stream, onMessage) {
  const reader = stream.getReader();
  const buf = new Buffer();
  let header = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf.push(value);
    if (!header) {
      if (buf.bytes.length < P.STREAM_HEADER_LEN) continue;
      header = buf.take(P.STREAM_HEADER_LEN);
    }
    while (buf.bytes.length >= P.OBJECT_HEADER_LEN) {
      const length = buf.u32(P.OBJECT_HEADER_LEN - 4);
      if (length > P.MAX_OBJECT_PAYLOAD) throw new P.ProtocolError(`Object.payload: ${length} exceeds limit`);
      if (buf.bytes.length < P.OBJECT_HEADER_LEN + length) break;
      const object = buf.take(P.OBJECT_HEADER_LEN + length);
      const message = new Uint8Array(header.length + object.length);
      message.set(header);
      message.set(object, header.length);
      onMessage({ kind: 'media', ...P.decodeMedia(message) });
    }
  }
}
