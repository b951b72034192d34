// The pinhole camera of protocol/README.md "Camera conventions", for re-projecting anchored
// marks: OpenCV axes (x right, y down, z forward), pose = world-from-camera (t, q = x,y,z,w).
// Pure functions on plain arrays; pixels have their origin at the top-left corner.

/** Rotation matrix (row-major 3×3) of a quaternion [x, y, z, w], normalised first. */
export function rotation(q) {
  const n = Math.hypot(q[0], q[1], q[2], q[3]) || 1;
  const x = q[0] / n;
  const y = q[1] / n;
  const z = q[2] / n;
  const w = q[3] / n;
  return [
    [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
  ];
}

/** Camera-frame coordinates of a world point: R^T (p − t). */
export function worldToCamera(pose, p) {
  const r = rotation(pose.q);
  const d = [p[0] - pose.t[0], p[1] - pose.t[1], p[2] - pose.t[2]];
  return [0, 1, 2].map((j) => r[0][j] * d[0] + r[1][j] * d[1] + r[2][j] * d[2]);
}

/** World coordinates of a camera-frame point: R c + t. */
export function cameraToWorld(pose, c) {
  const r = rotation(pose.q);
  return [0, 1, 2].map((i) => r[i][0] * c[0] + r[i][1] * c[1] + r[i][2] * c[2] + pose.t[i]);
}

/** Pixel [u, v] where a world point appears, or null when it is behind the camera. */
export function project(camera, world) {
  const [x, y, z] = worldToCamera(camera.pose, world);
  // The same threshold as the Rust model, so both sides agree on what is "behind".
  if (!(z > 1e-9)) return null;
  const k = camera.intrinsics;
  return [(k.fx * x) / z + k.cx, (k.fy * y) / z + k.cy];
}

/** The world point seen at pixel [u, v] at `depth` metres along the optical axis. */
export function unproject(camera, [u, v], depth) {
  const k = camera.intrinsics;
  return cameraToWorld(camera.pose, [((u - k.cx) / k.fx) * depth, ((v - k.cy) / k.fy) * depth, depth]);
}

export function toNormalised([u, v], width, height) {
  return [u / width, v / height];
}

export function fromNormalised([x, y], width, height) {
  return [x * width, y * height];
}

/**
 * Image pixel under a client (CSS) position on an element showing a `width` × `height` image
 * stretched to its box `rect` (a DOMRect-like {left, top, width, height}).
 */
export function clientToImage(clientX, clientY, rect, width, height) {
  return [((clientX - rect.left) * width) / rect.width, ((clientY - rect.top) * height) / rect.height];
}
