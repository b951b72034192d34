// The Farsight wire format (protocol/README.md) for the browser: control frames both ways,
// media messages from the server, and the SPS fields a decoder needs. No DOM, no I/O.
//
// u64 fields decode to Numbers: every id the server makes is below 2^53 and times in µs are
// too. A value beyond that decodes to a BigInt rather than silently losing bits.

export const VERSION = 1;
export const CONTROL_HEADER_LEN = 6;
export const MAX_CONTROL_PAYLOAD = 64 * 1024;
export const MEDIA_TYPE = 0x4d;
export const STREAM_HEADER_LEN = 21;
export const OBJECT_HEADER_LEN = 69;
export const MAX_OBJECT_PAYLOAD = 4 * 1024 * 1024;
export const MAX_TOKEN_LEN = 256;
export const MAX_NAME_LEN = 128;
export const MAX_TEXT_LEN = 1024;
export const MAX_ERROR_MESSAGE_LEN = 1024;
export const MAX_POINTS = 4096;
export const MAX_PARTICIPANTS = 256;

export const Type = Object.freeze({
  Hello: 0x01,
  Welcome: 0x02,
  Error: 0x03,
  Join: 0x04,
  Joined: 0x05,
  Leave: 0x06,
  Presence: 0x07,
  End: 0x08,
  Annotate: 0x10,
  AnchorResolved: 0x11,
  Erase: 0x12,
  Clear: 0x13,
  Freeze: 0x14,
  Unfreeze: 0x15,
  KeyframeRequest: 0x20,
  BitrateHint: 0x21,
});

const TYPE_NAMES = new Map(Object.entries(Type).map(([name, code]) => [code, name]));

export const Role = Object.freeze({ wearable: 1, agent: 2, supervisor: 3 });
export const Kind = Object.freeze({ arrow: 1, circle: 2, ink: 3, text: 4 });
export const DepthSource = Object.freeze({ measured: 1, medianPlane: 2 });
export const ErrorCode = Object.freeze({
  UnsupportedVersion: 1,
  Unauthorized: 2,
  WrongRole: 3,
  NoSuchSession: 4,
  NotJoined: 5,
  Malformed: 6,
  TooLarge: 7,
  SessionBusy: 8,
  UnexpectedMessage: 9,
  Internal: 10,
  NoSuchAnnotation: 11,
  TooSlow: 12,
});

export const DEFAULT_RGBA = 0xff3b30ff;
export const DEFAULT_WIDTH = 4;

const ROLE_VALUES = new Set(Object.values(Role));
const KIND_VALUES = new Set(Object.values(Kind));
const DEPTH_VALUES = new Set(Object.values(DepthSource));
const ERROR_VALUES = new Set(Object.values(ErrorCode));

/** A message that does not decode; the text names the field, as the Rust decoders do. */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

// ---- writing ----

class Writer {
  constructor(capacity = 64) {
    this.buf = new Uint8Array(capacity);
    this.view = new DataView(this.buf.buffer);
    this.len = 0;
  }

  reserve(n) {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v) {
    this.reserve(1);
    this.view.setUint8(this.len, checkUint(v, 0xff));
    this.len += 1;
  }

  u16(v) {
    this.reserve(2);
    this.view.setUint16(this.len, checkUint(v, 0xffff));
    this.len += 2;
  }

  u32(v) {
    this.reserve(4);
    this.view.setUint32(this.len, checkUint(v, 0xffffffff));
    this.len += 4;
  }

  u64(v) {
    let big;
    if (typeof v === 'bigint') {
      big = v;
    } else if (Number.isSafeInteger(v)) {
      big = BigInt(v);
    } else {
      throw new RangeError(`u64: ${v} is not a safe integer`);
    }
    if (big < 0n || big > 0xffffffffffffffffn) throw new RangeError(`u64: ${v} out of range`);
    this.reserve(8);
    this.view.setBigUint64(this.len, big);
    this.len += 8;
  }

  f32(v) {
    // The receiver rejects NaN and infinities as Malformed; better to fail here, visibly.
    if (!Number.isFinite(v)) throw new RangeError(`f32: ${v} is not finite`);
    this.reserve(4);
    this.view.setFloat32(this.len, v);
    this.len += 4;
  }

  bytes(b) {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** A u16-length UTF-8 string cut at a character boundary to `limit` bytes, as the reference encoder does. */
  string(s, limit) {
    const raw = utf8.encode(s ?? '');
    let end = Math.min(raw.length, limit);
    while (end > 0 && end < raw.length && (raw[end] & 0xc0) === 0x80) end -= 1;
    this.u16(end);
    this.bytes(raw.subarray(0, end));
  }

  finish() {
    return this.buf.slice(0, this.len);
  }
}

function checkUint(v, max) {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${v} is not an integer in 0..=${max}`);
  return v;
}

// ---- reading ----

class Reader {
  constructor(bytes, base = 0) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
    // Offsets in errors count from the start of the whole message, not of this slice.
    this.base = base;
  }

  get remaining() {
    return this.bytes.length - this.pos;
  }

  take(field, n) {
    if (this.remaining < n) {
      throw new ProtocolError(
        `${field}: needs ${n} bytes at offset ${this.base + this.pos}, only ${this.remaining} left`,
      );
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(field) {
    return this.view.getUint8(this.take(field, 1));
  }

  u16(field) {
    return this.view.getUint16(this.take(field, 2));
  }

  u32(field) {
    return this.view.getUint32(this.take(field, 4));
  }

  u64(field) {
    const v = this.view.getBigUint64(this.take(field, 8));
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  f32(field) {
    const v = this.view.getFloat32(this.take(field, 4));
    if (!Number.isFinite(v)) throw new ProtocolError(`${field}: not a finite number`);
    return v;
  }

  bool(field) {
    const v = this.u8(field);
    if (v > 1) throw new ProtocolError(`${field}: invalid value ${v}`);
    return v === 1;
  }

  count(field, limit) {
    const n = this.u16(field);
    if (n > limit) throw new ProtocolError(`${field}: length ${n} exceeds limit ${limit}`);
    return n;
  }

  string(field, limit) {
    const n = this.count(field, limit);
    const at = this.take(field, n);
    try {
      return strictUtf8.decode(this.bytes.subarray(at, at + n));
    } catch {
      throw new ProtocolError(`${field}: not valid UTF-8`);
    }
  }

  oneOf(field, values, read = 'u8') {
    const v = this[read](field);
    if (!values.has(v)) throw new ProtocolError(`${field}: invalid value ${v}`);
    return v;
  }

  finish(message) {
    if (this.remaining !== 0) throw new ProtocolError(`${message}: ${this.remaining} trailing bytes`);
  }
}

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('expected an ArrayBuffer or a byte view');
}

// ---- control messages ----

function putParticipant(w, p) {
  w.u64(p.id);
  w.u8(p.role);
  w.string(p.name, MAX_NAME_LEN);
}

function readParticipant(r, field) {
  return {
    id: r.u64(`${field}.id`),
    role: r.oneOf(`${field}.role`, ROLE_VALUES),
    name: r.string(`${field}.name`, MAX_NAME_LEN),
  };
}

const encoders = {
  Hello(w, m) {
    w.u16(m.version ?? VERSION);
    w.u8(m.role);
    w.string(m.token, MAX_TOKEN_LEN);
    w.u64(m.resume ?? 0);
  },
  Welcome(w, m) {
    w.u64(m.participant);
    w.u64(m.session);
    w.string(m.name, MAX_NAME_LEN);
  },
  Error(w, m) {
    w.u16(m.code);
    w.string(m.message, MAX_ERROR_MESSAGE_LEN);
  },
  Join: sessionOnly,
  Leave: sessionOnly,
  End: sessionOnly,
  Clear: sessionOnly,
  Unfreeze: sessionOnly,
  KeyframeRequest: sessionOnly,
  Joined(w, m) {
    w.u64(m.session);
    const list = m.participants.slice(0, MAX_PARTICIPANTS);
    w.u16(list.length);
    list.forEach((p) => putParticipant(w, p));
  },
  Presence(w, m) {
    w.u64(m.session);
    putParticipant(w, m.participant);
    w.u8(m.present ? 1 : 0);
  },
  Annotate(w, m) {
    w.u64(m.session);
    w.u64(m.id);
    w.u64(m.author ?? 0);
    w.u8(m.kind);
    w.u64(m.frame);
    const points = m.points.slice(0, MAX_POINTS);
    w.u16(points.length);
    for (const [x, y] of points) {
      w.f32(x);
      w.f32(y);
    }
    w.u32(m.rgba ?? DEFAULT_RGBA);
    w.f32(m.width ?? DEFAULT_WIDTH);
    w.string(m.text ?? '', MAX_TEXT_LEN);
  },
  AnchorResolved(w, m) {
    w.u64(m.session);
    w.u64(m.id);
    w.u8(m.depth);
    const points = m.points.slice(0, MAX_POINTS);
    w.u16(points.length);
    for (const p of points) p.forEach((v) => w.f32(v));
  },
  Erase(w, m) {
    w.u64(m.session);
    w.u64(m.id);
  },
  Freeze(w, m) {
    w.u64(m.session);
    w.u64(m.frame);
  },
  BitrateHint(w, m) {
    w.u64(m.session);
    w.u64(m.bitsPerSecond);
  },
};

function sessionOnly(w, m) {
  w.u64(m.session);
}

const decoders = {
  Hello: (r) => ({
    version: r.u16('Hello.version'),
    role: r.oneOf('Hello.role', ROLE_VALUES),
    token: r.string('Hello.token', MAX_TOKEN_LEN),
    resume: r.u64('Hello.resume'),
  }),
  Welcome: (r) => ({
    participant: r.u64('Welcome.participant'),
    session: r.u64('Welcome.session'),
    name: r.string('Welcome.name', MAX_NAME_LEN),
  }),
  Error: (r) => ({
    code: r.oneOf('Error.code', ERROR_VALUES, 'u16'),
    message: r.string('Error.message', MAX_ERROR_MESSAGE_LEN),
  }),
  Join: (r) => ({ session: r.u64('Join.session') }),
  Leave: (r) => ({ session: r.u64('Leave.session') }),
  End: (r) => ({ session: r.u64('End.session') }),
  Clear: (r) => ({ session: r.u64('Clear.session') }),
  Unfreeze: (r) => ({ session: r.u64('Unfreeze.session') }),
  KeyframeRequest: (r) => ({ session: r.u64('KeyframeRequest.session') }),
  Joined: (r) => {
    const session = r.u64('Joined.session');
    const n = r.count('Joined.participants', MAX_PARTICIPANTS);
    const participants = [];
    for (let i = 0; i < n; i++) participants.push(readParticipant(r, 'Joined.participants'));
    return { session, participants };
  },
  Presence: (r) => ({
    session: r.u64('Presence.session'),
    participant: readParticipant(r, 'Presence.participant'),
    present: r.bool('Presence.present'),
  }),
  Annotate: (r) => {
    const m = {
      session: r.u64('Annotate.session'),
      id: r.u64('Annotate.id'),
      author: r.u64('Annotate.author'),
      kind: r.oneOf('Annotate.kind', KIND_VALUES),
      frame: r.u64('Annotate.frame'),
    };
    const n = r.count('Annotate.points', MAX_POINTS);
    m.points = [];
    for (let i = 0; i < n; i++) m.points.push([r.f32('Annotate.points'), r.f32('Annotate.points')]);
    m.rgba = r.u32('Annotate.rgba');
    m.width = r.f32('Annotate.width');
    m.text = r.string('Annotate.text', MAX_TEXT_LEN);
    return m;
  },
  AnchorResolved: (r) => {
    const m = {
      session: r.u64('AnchorResolved.session'),
      id: r.u64('AnchorResolved.id'),
      depth: r.oneOf('AnchorResolved.depth', DEPTH_VALUES),
    };
    const n = r.count('AnchorResolved.points', MAX_POINTS);
    m.points = [];
    for (let i = 0; i < n; i++) {
      const f = 'AnchorResolved.points';
      m.points.push([r.f32(f), r.f32(f), r.f32(f)]);
    }
    return m;
  },
  Erase: (r) => ({ session: r.u64('Erase.session'), id: r.u64('Erase.id') }),
  Freeze: (r) => ({ session: r.u64('Freeze.session'), frame: r.u64('Freeze.frame') }),
  BitrateHint: (r) => ({
    session: r.u64('BitrateHint.session'),
    bitsPerSecond: r.u64('BitrateHint.bits_per_second'),
  }),
};

/**
 * One control frame (type, length, payload) for `msg`, a plain object whose `type` names the
 * message (`{type: 'Join', session: 42}`); field names follow protocol/README.md in camelCase.
 */
export function encodeControl(msg) {
  const code = Type[msg.type];
  const encode = encoders[msg.type];
  if (code === undefined || !encode) throw new TypeError(`unknown control message ${msg.type}`);
  const body = new Writer();
  encode(body, msg);
  const payload = body.finish();
  const w = new Writer(CONTROL_HEADER_LEN + payload.length);
  w.u16(code);
  w.u32(payload.length);
  w.bytes(payload);
  return w.finish();
}

/**
 * Decodes a buffer holding exactly one control frame. Returns the message, or
 * `{type: 'Unknown', code}` for a type this side does not know (receivers skip those).
 */
export function decodeControl(data) {
  const bytes = asBytes(data);
  const head = new Reader(bytes);
  const code = head.u16('Control.type');
  const length = head.u32('Control.length');
  if (length > MAX_CONTROL_PAYLOAD) {
    throw new ProtocolError(`Control.length: length ${length} exceeds limit ${MAX_CONTROL_PAYLOAD}`);
  }
  if (head.remaining < length) {
    throw new ProtocolError(
      `Control.payload: needs ${length} bytes at offset ${CONTROL_HEADER_LEN}, only ${head.remaining} left`,
    );
  }
  if (head.remaining > length) {
    throw new ProtocolError(`Control: ${head.remaining - length} trailing bytes after the frame`);
  }
  const name = TYPE_NAMES.get(code);
  if (!name) return { type: 'Unknown', code };
  const r = new Reader(bytes.subarray(CONTROL_HEADER_LEN), CONTROL_HEADER_LEN);
  const msg = decoders[name](r);
  r.finish(name);
  return { type: name, ...msg };
}

// ---- media ----

/** The 21-byte stream header and one object, as the server sends them over WebSocket in one message. */
export function encodeMedia({ header, object }) {
  const payload = asBytes(object.payload);
  const w = new Writer(STREAM_HEADER_LEN + OBJECT_HEADER_LEN + payload.length);
  w.u8(MEDIA_TYPE);
  w.u64(header.session);
  w.u32(header.track ?? 0);
  w.u64(header.group);
  w.u64(object.frame);
  w.u64(object.capture);
  w.u8(object.keyframe ? 1 : 0);
  object.pose.t.forEach((v) => w.f32(v));
  object.pose.q.forEach((v) => w.f32(v));
  const k = object.intrinsics;
  [k.fx, k.fy, k.cx, k.cy].forEach((v) => w.f32(v));
  w.u16(k.width);
  w.u16(k.height);
  w.u32(payload.length);
  w.bytes(payload);
  return w.finish();
}

/** Decodes a media message; `object.payload` is a view into `data`, not a copy. */
export function decodeMedia(data) {
  const bytes = asBytes(data);
  const r = new Reader(bytes);
  const type = r.u8('StreamHeader.type');
  if (type !== MEDIA_TYPE) throw new ProtocolError(`StreamHeader.type: invalid value ${type}`);
  const header = {
    session: r.u64('StreamHeader.session'),
    track: r.u32('StreamHeader.track'),
    group: r.u64('StreamHeader.group'),
  };
  const frame = r.u64('Object.frame');
  const capture = r.u64('Object.capture');
  const flags = r.u8('Object.flags');
  if (flags & ~1) throw new ProtocolError(`Object.flags: invalid value ${flags}`);
  const t = [r.f32('Object.pose.t'), r.f32('Object.pose.t'), r.f32('Object.pose.t')];
  const q = [0, 1, 2, 3].map(() => r.f32('Object.pose.q'));
  const norm = Math.hypot(...q);
  if (!(norm >= 0.99 && norm <= 1.01)) {
    throw new ProtocolError(`Object.pose.q: norm ${norm.toFixed(4)} is not 1`);
  }
  const intrinsics = {
    fx: r.f32('Object.intrinsics.fx'),
    fy: r.f32('Object.intrinsics.fy'),
    cx: r.f32('Object.intrinsics.cx'),
    cy: r.f32('Object.intrinsics.cy'),
    width: r.u16('Object.intrinsics.width'),
    height: r.u16('Object.intrinsics.height'),
  };
  for (const f of ['fx', 'fy', 'width', 'height']) {
    if (!(intrinsics[f] > 0)) throw new ProtocolError(`Object.intrinsics.${f}: invalid value ${intrinsics[f]}`);
  }
  const length = r.u32('Object.payload_length');
  if (length > MAX_OBJECT_PAYLOAD) {
    throw new ProtocolError(`Object.payload: length ${length} exceeds limit ${MAX_OBJECT_PAYLOAD}`);
  }
  const at = r.take('Object.payload', length);
  r.finish('Media message');
  return {
    header,
    object: {
      frame,
      capture,
      keyframe: (flags & 1) === 1,
      // Kept as sent; camera.js normalises when it builds the rotation.
      pose: { t, q },
      intrinsics,
      payload: bytes.subarray(at, at + length),
    },
  };
}

/** Decodes whatever the server sent over WebSocket: `{kind: 'media', ...}` or `{kind: 'control', message}`. */
export function decodeServerMessage(data) {
  const bytes = asBytes(data);
  if (bytes.length > 0 && bytes[0] === MEDIA_TYPE) return { kind: 'media', ...decodeMedia(bytes) };
  return { kind: 'control', message: decodeControl(bytes) };
}

// ---- H.264 payloads ----

/** The NAL units of an Annex-B access unit, as subarrays without their start codes. */
export function nalUnits(au) {
  const bytes = asBytes(au);
  const units = [];
  let start = -1;
  let i = 0;
  while (i + 2 < bytes.length) {
    if (bytes[i] === 0 && bytes[i + 1] === 0 && bytes[i + 2] === 1) {
      if (start >= 0) units.push(trimZeros(bytes, start, i));
      i += 3;
      start = i;
    } else {
      i += 1;
    }
  }
  if (start >= 0 && start < bytes.length) units.push(bytes.subarray(start));
  return units;
}

// A four-byte start code leaves its leading zero at the end of the previous unit.
function trimZeros(bytes, start, end) {
  while (end > start && bytes[end - 1] === 0) end -= 1;
  return bytes.subarray(start, end);
}

/**
 * The WebCodecs codec string (`avc1.PPCCLL`) from the first SPS of an access unit, or null.
 * profile_idc, the constraint flags and level_idc are the three bytes after the NAL header;
 * no emulation-prevention byte can sit among them since profile_idc is never zero.
 */
export function avcCodecString(au) {
  const sps = nalUnits(au).find((n) => n.length >= 4 && (n[0] & 0x1f) === 7);
  if (!sps) return null;
  const hex = (b) => b.toString(16).padStart(2, '0');
  return `avc1.${hex(sps[1])}${hex(sps[2])}${hex(sps[3])}`;
}
