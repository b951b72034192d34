// Unit tests of the console's wire format (protocol.js) and camera math (camera.js):
// `node --test tests/console/protocol.test.mjs`.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import * as P from '../../server/console/protocol.js';
import * as camera from '../../server/console/camera.js';

const hex = (bytes) => Buffer.from(bytes).toString('hex').replace(/(..)(?!$)/g, '$1 ');
const f32 = (v) => Math.fround(v);

// One message of every control type, with values that survive f32 exactly.
const SAMPLES = [
  { type: 'Hello', version: 1, role: P.Role.agent, token: 'tok-ü', resume: 0 },
  { type: 'Welcome', participant: 2 ** 53 - 1, session: 0, name: 'alice' },
  { type: 'Error', code: P.ErrorCode.Unauthorized, message: 'unknown or revoked token' },
  { type: 'Join', session: 1234 },
  {
    type: 'Joined',
    session: 1234,
    participants: [
      { id: 1, role: P.Role.wearable, name: 'glasses-7' },
      { id: 9, role: P.Role.supervisor, name: 'sam' },
    ],
  },
  { type: 'Leave', session: 1234 },
  { type: 'End', session: 1234 },
  { type: 'Presence', session: 1234, participant: { id: 5, role: P.Role.agent, name: 'bob' }, present: false },
  {
    type: 'Annotate',
    session: 1234,
    id: 8_995_668_540_749_658,
    author: 0,
    kind: P.Kind.text,
    frame: 371,
    points: [[0.25, 0.5], [f32(0.3), f32(0.4)]],
    rgba: 0xff3b30ff,
    width: 4,
    text: 'this valve',
  },
  {
    type: 'AnchorResolved',
    session: 1234,
    id: 77,
    depth: P.DepthSource.medianPlane,
    points: [[f32(0.1), f32(-0.2), f32(1.5)]],
  },
  { type: 'Erase', session: 1234, id: 77 },
  { type: 'Clear', session: 1234 },
  { type: 'Freeze', session: 1234, frame: 372 },
  { type: 'Unfreeze', session: 1234 },
  { type: 'KeyframeRequest', session: 1234 },
  { type: 'BitrateHint', session: 1234, bitsPerSecond: 750_000 },
];

test('every control message round-trips', () => {
  for (const message of SAMPLES) {
    const frame = P.encodeControl(message);
    assert.equal(frame[0], 0, `${message.type}: server-to-client frames start with 0x00`);
    assert.deepEqual(P.decodeControl(frame), message, message.type);
    assert.deepEqual(P.decodeServerMessage(frame.buffer), { kind: 'control', message });
  }
});

test('Hello matches the worked example byte for byte', () => {
  const frame = P.encodeControl({ type: 'Hello', version: 1, role: P.Role.agent, token: 'ab', resume: 0 });
  assert.equal(hex(frame), '00 01 00 00 00 0f 00 01 02 00 02 61 62 00 00 00 00 00 00 00 00');
});

test('Annotate lays out its fields at the documented offsets', () => {
  const frame = P.encodeControl({
    type: 'Annotate',
    session: 1,
    id: 2,
    author: 0,
    kind: P.Kind.arrow,
    frame: 3,
    points: [[0.5, 0.25], [1, 0]],
    text: '',
  });
  const view = new DataView(frame.buffer, 6);
  assert.equal(frame.length - 6, 45 + 8 * 2);
  assert.equal(view.getUint8(24), 1);
  assert.equal(view.getBigUint64(25), 3n);
  assert.equal(view.getUint16(33), 2);
  assert.equal(view.getFloat32(35), 0.5);
  assert.equal(view.getFloat32(39), 0.25);
  assert.equal(view.getUint32(35 + 16), 0xff3b30ff, 'default colour');
  assert.equal(view.getFloat32(39 + 16), 4, 'default width');
});

test('strings are cut at a character boundary within their limit', () => {
  const long = 'é'.repeat(200); // 400 bytes, over the 128-byte name limit
  const decoded = P.decodeControl(P.encodeControl({ type: 'Welcome', participant: 1, session: 0, name: long }));
  assert.equal(decoded.name, 'é'.repeat(64));
});

test('truncated control frames are rejected', () => {
  for (const message of SAMPLES) {
    const frame = P.encodeControl(message);
    for (const cut of [0, 1, 5, 6, frame.length - 1]) {
      if (cut >= frame.length) continue;
      assert.throws(() => P.decodeControl(frame.subarray(0, cut)), P.ProtocolError, `${message.type} cut at ${cut}`);
    }
  }
});

test('a payload shorter than its fields is rejected naming the field', () => {
  // Join whose length says 4: the session needs 8.
  const bad = Uint8Array.from([0, 4, 0, 0, 0, 4, 0, 0, 0, 1]);
  assert.throws(() => P.decodeControl(bad), /Join\.session: needs 8 bytes/);
});

test('trailing bytes are rejected', () => {
  const frame = P.encodeControl({ type: 'Join', session: 1 });
  const longer = new Uint8Array(frame.length + 1);
  longer.set(frame);
  assert.throws(() => P.decodeControl(longer), P.ProtocolError);
  // The length field counting one byte too many inside the payload too.
  longer[5] = 9;
  assert.throws(() => P.decodeControl(longer), /Join: 1 trailing bytes/);
});

test('oversize control frames and lists are rejected', () => {
  const header = Uint8Array.from([0, 0x10, 0, 1, 0, 1]); // Annotate, length 65 537
  assert.throws(() => P.decodeControl(header), /exceeds limit 65536/);

  const frame = P.encodeControl({ type: 'Annotate', session: 1, id: 2, kind: 1, frame: 3, points: [[0, 0]] });
  new DataView(frame.buffer).setUint16(6 + 33, 4097);
  assert.throws(() => P.decodeControl(frame), /Annotate\.points: length 4097 exceeds limit 4096/);

  const token = P.encodeControl({ type: 'Hello', role: 2, token: 'x' });
  new DataView(token.buffer).setUint16(6 + 3, 257);
  assert.throws(() => P.decodeControl(token), /Hello\.token: length 257 exceeds limit 256/);
});

test('bad enums, booleans, floats and UTF-8 are rejected', () => {
  const hello = P.encodeControl({ type: 'Hello', role: 2, token: 'ab' });
  hello[8] = 4;
  assert.throws(() => P.decodeControl(hello), /Hello\.role: invalid value 4/);

  const presence = P.encodeControl({ type: 'Presence', session: 1, participant: { id: 1, role: 2, name: '' }, present: true });
  presence[presence.length - 1] = 2;
  assert.throws(() => P.decodeControl(presence), /Presence\.present/);

  const anchor = P.encodeControl({ type: 'AnchorResolved', session: 1, id: 1, depth: 1, points: [[0, 0, 1]] });
  new DataView(anchor.buffer).setFloat32(6 + 19, NaN);
  assert.throws(() => P.decodeControl(anchor), /not a finite number/);

  const error = P.encodeControl({ type: 'Error', code: 2, message: 'ab' });
  error[error.length - 1] = 0xff;
  assert.throws(() => P.decodeControl(error), /not valid UTF-8/);
  const unknownCode = P.encodeControl({ type: 'Error', code: 2, message: '' });
  unknownCode[7] = 99;
  assert.throws(() => P.decodeControl(unknownCode), /Error\.code: invalid value 99/);
});

test('unknown control types are reported, not rejected', () => {
  const frame = Uint8Array.from([0, 0x1f, 0, 0, 0, 2, 7, 7]);
  assert.deepEqual(P.decodeControl(frame), { type: 'Unknown', code: 0x1f });
});

test('the encoder refuses values the wire cannot carry', () => {
  assert.throws(() => P.encodeControl({ type: 'Join', session: -1 }), RangeError);
  assert.throws(() => P.encodeControl({ type: 'Join', session: 2 ** 53 }), RangeError);
  assert.throws(
    () => P.encodeControl({ type: 'Annotate', session: 1, id: 1, kind: 1, frame: 1, points: [[NaN, 0]] }),
    RangeError,
  );
  assert.throws(() => P.encodeControl({ type: 'Nope' }), TypeError);
});

test('u64 values past 2^53 decode as BigInt rather than losing bits', () => {
  const frame = P.encodeControl({ type: 'Join', session: 2n ** 63n + 1n });
  assert.equal(P.decodeControl(frame).session, 2n ** 63n + 1n);
});

const MEDIA = {
  header: { session: 1234, track: 0, group: 7 },
  object: {
    frame: 371,
    capture: 1_760_000_000_123_456,
    keyframe: true,
    pose: { t: [f32(0.3), f32(-0.1), f32(-1)], q: [0, 0, 0, 1] },
    intrinsics: { fx: f32(1108.5), fy: f32(1108.5), cx: 640, cy: 360, width: 1280, height: 720 },
    payload: Uint8Array.from([0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88]),
  },
};

test('a media message round-trips', () => {
  const bytes = P.encodeMedia(MEDIA);
  assert.equal(bytes.length, 21 + 69 + MEDIA.object.payload.length);
  assert.equal(bytes[0], 0x4d);
  const decoded = P.decodeMedia(bytes);
  assert.deepEqual(decoded.header, MEDIA.header);
  assert.deepEqual({ ...decoded.object, payload: [...decoded.object.payload] }, {
    ...MEDIA.object,
    payload: [...MEDIA.object.payload],
  });
  assert.equal(P.decodeServerMessage(bytes).kind, 'media');
});

test('media header fields sit at the documented offsets', () => {
  const bytes = P.encodeMedia(MEDIA);
  const view = new DataView(bytes.buffer);
  assert.equal(view.getBigUint64(1), 1234n);
  assert.equal(view.getBigUint64(13), 7n);
  const o = 21;
  assert.equal(view.getBigUint64(o), 371n);
  assert.equal(view.getUint8(o + 16), 1);
  assert.equal(view.getFloat32(o + 41), 1, 'qw');
  assert.equal(view.getUint16(o + 61), 1280);
  assert.equal(view.getUint16(o + 63), 720);
  assert.equal(view.getUint32(o + 65), MEDIA.object.payload.length);
});

test('truncated, oversize and malformed media messages are rejected', () => {
  const bytes = P.encodeMedia(MEDIA);
  for (const cut of [1, 20, 21, 50, 89, bytes.length - 1]) {
    assert.throws(() => P.decodeMedia(bytes.subarray(0, cut)), P.ProtocolError, `cut at ${cut}`);
  }
  const extra = new Uint8Array(bytes.length + 1);
  extra.set(bytes);
  assert.throws(() => P.decodeMedia(extra), /trailing bytes/);

  const oversize = bytes.slice(0, 90);
  new DataView(oversize.buffer).setUint32(21 + 65, 4 * 1024 * 1024 + 1);
  assert.throws(() => P.decodeMedia(oversize), /Object\.payload: length 4194305 exceeds limit 4194304/);

  const flags = bytes.slice();
  flags[21 + 16] = 2;
  assert.throws(() => P.decodeMedia(flags), /Object\.flags/);

  const quaternion = bytes.slice();
  new DataView(quaternion.buffer).setFloat32(21 + 41, 0.5);
  assert.throws(() => P.decodeMedia(quaternion), /Object\.pose\.q/);

  const width = bytes.slice();
  new DataView(width.buffer).setUint16(21 + 61, 0);
  assert.throws(() => P.decodeMedia(width), /Object\.intrinsics\.width/);

  const type = bytes.slice();
  type[0] = 0x4e;
  assert.throws(() => P.decodeMedia(type), /StreamHeader\.type/);
});

test('codec string comes from the SPS after the NAL header', () => {
  assert.equal(P.avcCodecString(MEDIA.object.payload), 'avc1.42c01f');
  // Three-byte start codes and a High-profile SPS after an access unit delimiter.
  const high = Uint8Array.from([0, 0, 1, 0x09, 0x10, 0, 0, 1, 0x27, 0x64, 0x00, 0x28, 0xac, 0, 0, 1, 0x25, 0x88]);
  assert.equal(P.avcCodecString(high), 'avc1.640028');
  assert.equal(P.avcCodecString(Uint8Array.from([0, 0, 1, 0x41, 0x9a])), null, 'no SPS in a delta frame');
  assert.deepEqual(
    P.nalUnits(MEDIA.object.payload).map((n) => n[0] & 0x1f),
    [7, 8, 5],
  );
});

// The camera of protocol/src/camera.rs's tests: 640 × 480, f = 500, centre (320, 240).
const K = { fx: 500, fy: 500, cx: 320, cy: 240, width: 640, height: 480 };
const IDENTITY = { t: [0, 0, 0], q: [0, 0, 0, 1] };
const near = (actual, expected, eps = 1e-9) =>
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < eps, `${actual} vs ${expected}`));

test('projects a hand-computed point', () => {
  // u = 500 · 0.2 / 2 + 320 = 370, v = 500 · −0.4 / 2 + 240 = 140.
  near(camera.project({ pose: IDENTITY, intrinsics: K }, [0.2, -0.4, 2]), [370, 140]);
});

test('a point behind the camera does not project', () => {
  assert.equal(camera.project({ pose: IDENTITY, intrinsics: K }, [0, 0, -1]), null);
  assert.equal(camera.project({ pose: IDENTITY, intrinsics: K }, [1, 0, 0]), null);
});

test('a camera turned 90° about y looks along world +x', () => {
  const s = Math.SQRT1_2;
  const pose = { t: [0, 0, 0], q: [0, s, 0, s] };
  near(camera.project({ pose, intrinsics: K }, [1, 0, 0]), [320, 240]);
  // Camera x (right) is then world −z.
  near(camera.worldToCamera(pose, [1, 0, -0.5]), [0.5, 0, 1]);
});

test('a moved and turned camera: world minus translation, rotated back', () => {
  // 180° about z: camera x = −world x, camera y = −world y.
  const pose = { t: [1, 2, 3], q: [0, 0, 1, 0] };
  near(camera.worldToCamera(pose, [2, 2, 5]), [-1, 0, 2]);
  near(camera.project({ pose, intrinsics: K }, [2, 2, 5]), [500 * (-1 / 2) + 320, 240]);
});

test('unproject inverts project for a turned camera, with a non-unit quaternion', () => {
  const q = [0.1, 0.7, -0.2, 0.68]; // norm ≈ 1.001, within what the wire accepts
  const cam = { pose: { t: [0.3, -1.2, 0.5], q }, intrinsics: K };
  const world = camera.unproject(cam, [100, 400], 1.5);
  near(camera.project(cam, world), [100, 400]);
  assert.ok(Math.abs(camera.worldToCamera(cam.pose, world)[2] - 1.5) < 1e-9);
});

test('normalised coordinates and client positions map to image pixels', () => {
  near(camera.fromNormalised([0.3, 0.4], 1280, 720), [384, 288]);
  near(camera.toNormalised([384, 288], 1280, 720), [0.3, 0.4]);
  // A 1280 × 720 image shown at 640 × 360 CSS pixels, its box at (100, 50).
  const rect = { left: 100, top: 50, width: 640, height: 360 };
  near(camera.clientToImage(100 + 192, 50 + 144, rect, 1280, 720), [384, 288]);
});
