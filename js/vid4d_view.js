// Pure maths and data helpers for the Vid4D 3D previews: no DOM, no ComfyUI, no side effects.
// ComfyUI loads every .js file under js/ as an extension; this module only exports, so loading it
// that way does nothing. js/vid4d_preview.js imports it; tests/js/ checks it under `node --test`.
//
// Conventions as in py/camera/: OpenCV camera axes (x right, y down, z forward), world = the source
// camera at frame 0, K given as [fx, s, cx, fy, cy] (pixels), world_to_camera as 12 numbers (rows of
// [R | t]). The camera path itself is computed by the server (POST /vid4d/camera_path), never here.

const TIME_STOPS = [[37, 99, 235], [168, 85, 190], [245, 130, 20]]; // blue → violet → orange, as the PNG diagram

/** [r, g, b] (0..255) of time tau in [0, 1]. */
export function timeRGB(tau) {
  const x = Math.min(Math.max(Number(tau) || 0, 0), 1) * (TIME_STOPS.length - 1);
  const i = Math.min(Math.floor(x), TIME_STOPS.length - 2);
  const w = x - i;
  return TIME_STOPS[i].map((a, c) => Math.round((1 - w) * a + w * TIME_STOPS[i + 1][c]));
}

export function rgbCss([r, g, b], alpha = 1) {
  return alpha >= 1 ? `rgb(${r},${g},${b})` : `rgba(${r},${g},${b},${alpha})`;
}

// ------------------------------------------------------------------------------ small vector maths
const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const add = (a, b) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
const scale = (a, s) => [a[0] * s, a[1] * s, a[2] * s];
const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const norm = (a) => Math.hypot(a[0], a[1], a[2]);
const unit = (a) => { const n = norm(a); return n > 1e-12 ? scale(a, 1 / n) : [0, 0, 0]; };

/** World point → camera space of a world_to_camera given as 12 numbers. */
export function worldToCamera(p, w2c) {
  return [0, 1, 2].map((r) => w2c[4 * r] * p[0] + w2c[4 * r + 1] * p[1] + w2c[4 * r + 2] * p[2] + w2c[4 * r + 3]);
}

/** Camera-to-world of a rigid world_to_camera: rotation R (camera axes as columns, row-major 9) and centre C = −Rᵀt. */
export function cameraToWorld(w2c) {
  const R = [w2c[0], w2c[4], w2c[8], w2c[1], w2c[5], w2c[9], w2c[2], w2c[6], w2c[10]];
  const t = [w2c[3], w2c[7], w2c[11]];
  const C = [0, 1, 2].map((r) => -(R[3 * r] * t[0] + R[3 * r + 1] * t[1] + R[3 * r + 2] * t[2]));
  return { R, C };
}

/** Pixel (u, v) and camera depth z of world point p seen by camera (K, w2c); z <= 0 is behind it. */
export function projectPinhole(p, K, w2c) {
  const [x, y, z] = worldToCamera(p, w2c);
  const [fx, s, cx, fy, cy] = K;
  const iz = Math.abs(z) < 1e-12 ? 1e12 : 1 / z;
  return [fx * x * iz + s * y * iz + cx, fy * y * iz + cy, z];
}

/** Camera-space point at pixel (u, v) and depth: depth · K⁻¹ [u, v, 1] (as py.camera.unproject_pixels). */
export function unprojectPixel(u, v, depth, K) {
  const [fx, s, cx, fy, cy] = K;
  const y = (v - cy) / fy;
  const x = (u - cx - s * y) / fx;
  return [x * depth, y * depth, depth];
}

/** [apex, 4 image corners at `depth`] in world coordinates: the outer pixel edges, top edge first. */
export function frustum(K, w2c, width, height, depth) {
  const { R, C } = cameraToWorld(w2c);
  const corners = [[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]];
  const toWorld = (q) => [0, 1, 2].map((r) => R[3 * r] * q[0] + R[3 * r + 1] * q[1] + R[3 * r + 2] * q[2] + C[r]);
  return [C, ...corners.map(([u, v]) => toWorld(unprojectPixel(u, v, depth, K)))];
}

export const IDENTITY_W2C = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0];

// ------------------------------------------------------------------------------ orbit view
/** Default orbit: behind and above the source camera, looking at `target`. Angles in degrees. */
export function defaultOrbit(target = [0, 0, 1.5], distance = 6) {
  return { yaw: -60, pitch: 22, distance, target: [...target], fov: 50 };
}

/** Where the viewer's eye is: `distance` from the target; yaw 0 / pitch 0 = straight behind it (−z), pitch > 0 = above (−y). */
export function orbitEye(view) {
  const a = (view.yaw * Math.PI) / 180;
  const e = (view.pitch * Math.PI) / 180;
  const dir = [Math.sin(a) * Math.cos(e), -Math.sin(e), -Math.cos(a) * Math.cos(e)];
  return add(view.target, scale(dir, view.distance));
}

/** The orbit camera as a 12-number world_to_camera looking at the target (world up = −y, no roll). */
export function orbitW2C(view) {
  const eye = orbitEye(view);
  const f = unit(sub(view.target, eye));
  let r = cross([0, 1, 0], f);
  r = norm(r) < 1e-9 ? [1, 0, 0] : unit(r);
  const d = cross(f, r);
  return [r[0], r[1], r[2], -dot(r, eye), d[0], d[1], d[2], -dot(d, eye), f[0], f[1], f[2], -dot(f, eye)];
}

/** A square-pixel K for a `w` × `h` canvas with the view's vertical field of view. */
export function canvasK(view, w, h) {
  const f = (0.5 * h) / Math.tan(((view.fov || 50) * Math.PI) / 360);
  return [f, 0, w / 2, f, h / 2];
}

/** Orbit by a mouse drag of (dx, dy) pixels; pitch stays inside (−89°, 89°). */
export function orbitDrag(view, dx, dy) {
  return { ...view, yaw: view.yaw + dx * 0.4, pitch: Math.max(-89, Math.min(89, view.pitch + dy * 0.4)) };
}

/** Zoom by a wheel delta (positive = away), within sane bounds. */
export function orbitZoom(view, deltaY) {
  const d = view.distance * Math.exp(Math.max(-2, Math.min(2, deltaY * 0.001)));
  return { ...view, distance: Math.max(1e-3, Math.min(1e6, d)) };
}

/** Bounds of points given as arrays of [x, y, z] and/or flat Float32Arrays; null when there are none. */
export function bounds(...sets) {
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-Infinity, -Infinity, -Infinity];
  let n = 0;
  const take = (x, y, z) => {
    if (!Number.isFinite(x) || !Number.isFinite(y) || !Number.isFinite(z)) return;
    lo[0] = Math.min(lo[0], x); lo[1] = Math.min(lo[1], y); lo[2] = Math.min(lo[2], z);
    hi[0] = Math.max(hi[0], x); hi[1] = Math.max(hi[1], y); hi[2] = Math.max(hi[2], z);
    n++;
  };
  for (const set of sets) {
    if (!set) continue;
    if (ArrayBuffer.isView(set)) for (let i = 0; i + 2 < set.length; i += 3) take(set[i], set[i + 1], set[i + 2]);
    else for (const p of set) if (p) take(p[0], p[1], p[2]);
  }
  if (!n) return null;
  const center = lo.map((v, i) => (v + hi[i]) / 2);
  return { min: lo, max: hi, center, extent: Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], 1e-6) };
}

/** The orbit view moved so the whole of `box` (from bounds()) fits, keeping its angles. */
export function fitOrbit(view, box) {
  if (!box) return view;
  const half = (box.extent * 0.5 * Math.sqrt(3)) / Math.tan(((view.fov || 50) * Math.PI) / 360);
  return { ...view, target: [...box.center], distance: Math.max(half * 0.8, 1e-3) };
}

/** 1, 2 or 5 × 10^k, at least span / 10 (grid spacing, as the PNG diagram). */
export function niceStep(span) {
  const raw = Math.max(span / 10, 1e-12);
  const base = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * base).find((v) => v >= raw * (1 - 1e-9));
}

/** At most `count` evenly spaced indices of range(n), always the first and the last (as py.camera). */
export function subsetIndices(n, count) {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const out = new Set();
  for (let i = 0; i < count; i++) out.add(Math.round((i * (n - 1)) / (count - 1)));
  return [...out].sort((a, b) => a - b);
}

/** Index into `frames` (sorted frame numbers) of the frame nearest to t. */
export function nearestIndex(frames, t) {
  let best = 0;
  for (let i = 1; i < frames.length; i++) if (Math.abs(frames[i] - t) < Math.abs(frames[best] - t)) best = i;
  return best;
}

// ------------------------------------------------------------------------------ payloads (server → browser)
const isNums = (a, n) => Array.isArray(a) && (n === undefined || a.length === n) && a.every((v) => typeof v === "number" && Number.isFinite(v));

/** A `vid4d_path` payload checked and normalised, or null if it is missing or malformed. */
export function decodePath(p) {
  if (!p || typeof p !== "object" || p.kind !== "path" || !Array.isArray(p.cameras) || !p.cameras.length) return null;
  const frames = p.frames;
  if (!isNums(frames) || !frames.length || !(p.width > 0) || !(p.height > 0)) return null;
  for (const c of p.cameras) {
    if (!Array.isArray(c?.K) || c.K.length !== frames.length || !c.K.every((k) => isNums(k, 5))) return null;
    if (!Array.isArray(c.w2c) || c.w2c.length !== frames.length || !c.w2c.every((m) => isNums(m, 12))) return null;
    if (!Array.isArray(c.centers) || c.centers.length !== frames.length || !c.centers.every((m) => isNums(m, 3))) return null;
  }
  return {
    numFrames: p.num_frames | 0, width: p.width, height: p.height, frames,
    focus: isNums(p.focus, 3) ? p.focus : null, cameras: p.cameras, text: typeof p.text === "string" ? p.text : "",
  };
}

/** A `vid4d_points` payload as typed arrays ({xyz, rgb, count, frame, text}), or null. */
export function decodePoints(p) {
  if (!p || typeof p !== "object" || p.kind !== "points" || !Array.isArray(p.xyz) || p.xyz.length % 3) return null;
  const count = p.xyz.length / 3;
  const rgb = Array.isArray(p.rgb) && p.rgb.length === p.xyz.length ? Uint8ClampedArray.from(p.rgb) : new Uint8ClampedArray(count * 3).fill(200);
  return { kind: "points", xyz: Float32Array.from(p.xyz), rgb, count, frame: p.frame | 0, numFrames: p.num_frames | 0, text: String(p.text ?? "") };
}

/** A `vid4d_tracks` payload: trails of `trail` points each ({xyz, rgb, visible, count, trail, frame, text}), or null. */
export function decodeTracks(p) {
  if (!p || typeof p !== "object" || p.kind !== "tracks" || !Array.isArray(p.xyz)) return null;
  const count = p.count | 0;
  const trail = p.trail_length | 0;
  if (count <= 0 || trail <= 0 || p.xyz.length !== count * trail * 3) return null;
  const rgb = Array.isArray(p.rgb) && p.rgb.length === count * 3 ? Uint8ClampedArray.from(p.rgb) : new Uint8ClampedArray(count * 3).fill(200);
  const visible = Array.isArray(p.visible) && p.visible.length === count ? Uint8Array.from(p.visible) : new Uint8Array(count).fill(1);
  return { kind: "tracks", xyz: Float32Array.from(p.xyz), rgb, visible, count, trail, frame: p.frame | 0, numFrames: p.num_frames | 0, text: String(p.text ?? "") };
}

// ------------------------------------------------------------------------------ node definitions (server → browser)
const WIDGET_TYPES = ["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"];

/**
 * The names of a node's widgets in order, from the definition the server sent (/object_info, the
 * `nodeData` of beforeRegisterNodeDef): the `section` inputs that are widgets (a combo list or a
 * widget type), in `input_order` (else the object's key order). CameraPath's preview posts exactly
 * these, so the browser keeps no list of its own and a widget added on the server is sent too.
 */
export function widgetNames(nodeData, section = "required") {
  const inputs = nodeData?.input?.[section];
  if (!inputs || typeof inputs !== "object") return [];
  const order = Array.isArray(nodeData.input_order?.[section]) ? nodeData.input_order[section] : Object.keys(inputs);
  return order.filter((name) => {
    const type = inputs[name]?.[0];
    return Array.isArray(type) || (WIDGET_TYPES.includes(type) && !inputs[name]?.[1]?.forceInput);
  });
}

// ------------------------------------------------------------------------------ keyframes (the `keyframes` widget)
export const KEY_FIELDS = ["frame", "t", "position", "look_at", "angles", "quaternion", "fov", "focal"];
export const ORIENTATIONS = ["look_at", "angles", "none"];

/** The widget's text → {keys, error}; error is a message for the user, keys null then. */
export function parseKeyframes(text) {
  let keys;
  try {
    keys = JSON.parse(String(text ?? "").trim() || "[]");
  } catch (e) {
    return { keys: null, error: `keyframes: not valid JSON (${e.message})` };
  }
  if (!Array.isArray(keys)) return { keys: null, error: "keyframes: expected a JSON list of keys [{frame, position, look_at, fov}, ...]" };
  return { keys, error: null };
}

/**
 * Problems with a list of keys as messages ("key 2: ..."), empty when py.camera would accept it.
 * Mirrors py/camera/presets.py _parse_keyframes so the user sees the problem while typing; the server has the last word.
 */
export function validateKeyframes(keys, numFrames = 0) {
  if (!Array.isArray(keys)) return ["keyframes: expected a list of keys"];
  if (!keys.length) return ["keyframes: add at least one key"];
  const errors = [];
  const frames = [];
  keys.forEach((key, i) => {
    const name = `key ${i + 1}`;
    if (!key || typeof key !== "object" || Array.isArray(key)) { errors.push(`${name}: expected an object`); return; }
    const unknown = Object.keys(key).filter((k) => !KEY_FIELDS.includes(k));
    if (unknown.length) errors.push(`${name}: '${unknown[0]}' is not a keyframe field (${KEY_FIELDS.join(", ")})`);
    const hasFrame = "frame" in key;
    if (hasFrame === "t" in key) errors.push(`${name}: give exactly one of frame or t`);
    else if (hasFrame) {
      if (!Number.isInteger(key.frame) || key.frame < 0) errors.push(`${name}: frame must be an integer >= 0, got ${JSON.stringify(key.frame)}`);
      else if (numFrames > 0 && key.frame > numFrames - 1) errors.push(`${name}: frame ${key.frame} is past the last frame (${numFrames - 1})`);
      else frames.push(key.frame);
    } else if (typeof key.t !== "number" || !(key.t >= 0 && key.t <= 1)) errors.push(`${name}: t must be a number in [0, 1]`);
    else if (numFrames > 0) frames.push(key.t * (numFrames - 1));
    if (!isNums(key.position, 3)) errors.push(`${name}: position must be [x, y, z] (3 numbers)`);
    const orient = ["look_at", "angles", "quaternion"].filter((k) => k in key);
    if (orient.length > 1) errors.push(`${name}: give at most one of look_at, angles, quaternion`);
    if ("look_at" in key) {
      if (!isNums(key.look_at, 3)) errors.push(`${name}: look_at must be [x, y, z] (3 numbers)`);
      else if (isNums(key.position, 3) && norm(sub(key.look_at, key.position)) < 1e-9) errors.push(`${name}: look_at must differ from position`);
    }
    if ("angles" in key && !isNums(key.angles, 3)) errors.push(`${name}: angles must be [yaw, pitch, roll] in degrees`);
    if ("quaternion" in key && (!isNums(key.quaternion, 4) || Math.hypot(...key.quaternion) < 1e-9)) errors.push(`${name}: quaternion must be 4 numbers [w, x, y, z], not all 0`);
    const fov = key.fov ?? null;
    const focal = key.focal ?? null;
    if (fov !== null && focal !== null) errors.push(`${name}: give at most one of fov, focal`);
    if (fov !== null && !(typeof fov === "number" && fov > 0 && fov < 180)) errors.push(`${name}: fov must be in (0, 180) degrees`);
    if (focal !== null && !(typeof focal === "number" && focal > 0)) errors.push(`${name}: focal must be > 0 pixels`);
  });
  const sorted = [...frames].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) if (sorted[i] - sorted[i - 1] < 1e-9) { errors.push(`keyframes: two keys at frame ${sorted[i]}`); break; }
  return errors;
}

/** Keys as the widget stores them: a JSON list, one key per line (readable in the text box, diff-friendly). */
export function keyframesToText(keys) {
  return keys.length ? `[\n${keys.map((k) => "  " + JSON.stringify(k)).join(",\n")}\n]` : "[]";
}

/** A key as an editor row: {frame, position, orient, target, fov, extra}; fields the editor does not show stay in `extra`. */
export function keyToRow(key) {
  const orient = "look_at" in key ? "look_at" : "angles" in key ? "angles" : "none";
  const extra = {};
  for (const [k, v] of Object.entries(key)) if (!["frame", "position", "look_at", "angles", "fov"].includes(k)) extra[k] = v;
  return {
    frame: key.frame ?? null,
    position: Array.isArray(key.position) ? [...key.position] : [0, 0, 0],
    orient,
    target: orient === "none" ? [0, 0, 0] : [...key[orient]],
    fov: key.fov ?? null,
    extra,
  };
}

/** The key an editor row stands for (inverse of keyToRow; orient 'none' drops look_at/angles). */
export function rowToKey(row) {
  const key = {};
  if (row.frame !== null && row.frame !== undefined && row.frame !== "") key.frame = row.frame;
  key.position = [...row.position];
  if (row.orient === "look_at" || row.orient === "angles") key[row.orient] = [...row.target];
  if (row.fov !== null && row.fov !== undefined && row.fov !== "") key.fov = row.fov;
  Object.assign(key, row.extra || {});
  return key;
}

/** A number typed into an editor field: a finite number, or the raw text (validation then names it). */
export function readNumber(text) {
  const s = String(text).trim();
  if (s === "") return null;
  const v = Number(s);
  return Number.isFinite(v) ? v : s;
}

/** Rows with row i moved by delta (±1): the poses swap places in time, each key keeping its own frame slot. */
export function moveRow(rows, i, delta) {
  const j = i + delta;
  if (i < 0 || j < 0 || i >= rows.length || j >= rows.length) return rows;
  const out = rows.map((r) => ({ ...r, extra: { ...r.extra } }));
  [out[i], out[j]] = [out[j], out[i]];
  // The frame (or t) belongs to the slot, so moving a pose up makes the camera reach it earlier.
  [out[i].frame, out[j].frame] = [out[j].frame, out[i].frame];
  const ti = out[i].extra.t; const tj = out[j].extra.t;
  if (ti !== undefined || tj !== undefined) { out[i].extra.t = tj; out[j].extra.t = ti; }
  for (const r of [out[i], out[j]]) if (r.extra.t === undefined) delete r.extra.t;
  return out;
}

/** A new row after the last: a few frames later, same pose shifted a little to the right. */
export function newRow(rows, numFrames = 0, focusDepth = 3) {
  if (!rows.length) return { frame: 0, position: [0, 0, 0], orient: "look_at", target: [0, 0, focusDepth], fov: null, extra: {} };
  const last = rows[rows.length - 1];
  const lastFrame = Number.isInteger(last.frame) ? last.frame : 0;
  const frame = numFrames > 0 ? Math.min(lastFrame + 12, numFrames - 1) : lastFrame + 12;
  const position = last.position.map((v, i) => (typeof v === "number" ? v : 0) + (i === 0 ? 0.25 : 0));
  return { frame, position, orient: last.orient, target: [...last.target], fov: last.fov, extra: {} };
}

/** `fn` called once, `ms` after the last of a burst of calls (live preview while a widget is dragged). */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => { timer = null; fn(...args); }, ms);
  };
  wrapped.cancel = () => { if (timer !== null) clearTimeout(timer); timer = null; };
  return wrapped;
}
