// Pure functions of js/vid4d_view.js under Node's built-in runner: `node --test tests/js/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

// Imported from its source text: js/ has no package.json saying "module", and older Node 20 releases
// do not detect ES modules in .js files by themselves.
const source = readFileSync(new URL("../../js/vid4d_view.js", import.meta.url), "utf8");
const V = await import("data:text/javascript;base64," + Buffer.from(source).toString("base64"));

const close = (a, b, tol = 1e-9) => {
  assert.equal(a.length, b.length);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= tol, `component ${i}: ${v} vs ${b[i]}`));
};

// A camera 1 unit to the right (+x) of the world origin, turned 90° to look along −x (yaw −90°).
const TURNED = (() => {
  // camera-to-world R = R_y(−90°): camera z → world (−1, 0, 0), camera x → world (0, 0, 1).
  const R = [[0, 0, -1], [0, 1, 0], [1, 0, 0]];
  const C = [1, 0, 0];
  const Rt = [[R[0][0], R[1][0], R[2][0]], [R[0][1], R[1][1], R[2][1]], [R[0][2], R[1][2], R[2][2]]];
  const t = Rt.map((row) => -(row[0] * C[0] + row[1] * C[1] + row[2] * C[2]));
  return [...Rt[0], t[0], ...Rt[1], t[1], ...Rt[2], t[2]];
})();
const K = [500, 0, 319.5, 500, 239.5];

test("the loaded module has no side effects and exports the pure API", () => {
  assert.ok(!/\bdocument\b|\bwindow\b|registerExtension|from\s+["']/.test(source), "no DOM, no imports, no registration");
  for (const name of ["projectPinhole", "frustum", "orbitW2C", "validateKeyframes", "keyToRow", "rowToKey", "decodePath"]) {
    assert.equal(typeof V[name], "function", name);
  }
});

test("projection: identity camera puts the optical axis at the principal point", () => {
  close(V.projectPinhole([0, 0, 2], K, V.IDENTITY_W2C), [319.5, 239.5, 2]);
  close(V.projectPinhole([1, -0.5, 2], K, V.IDENTITY_W2C), [319.5 + 250, 239.5 - 125, 2]);
  // behind the camera: non-positive depth, the caller culls it
  assert.ok(V.projectPinhole([0, 0, -1], K, V.IDENTITY_W2C)[2] < 0);
});

test("projection and unprojection are inverse, skew included", () => {
  const k = [400, 12, 300, 380, 200];
  for (const [u, v, z] of [[0, 0, 1], [123.5, 456.25, 3.5], [640, 10, 0.2]]) {
    const p = V.unprojectPixel(u, v, z, k);
    close(V.projectPinhole(p, k, V.IDENTITY_W2C), [u, v, z], 1e-9);
  }
});

test("camera to world inverts a rigid world_to_camera", () => {
  const { R, C } = V.cameraToWorld(TURNED);
  close(C, [1, 0, 0], 1e-12);
  close([R[2], R[5], R[8]], [-1, 0, 0], 1e-12); // the optical axis in world coordinates
  // a point one unit ahead of that camera is the world origin
  close(V.worldToCamera([0, 0, 0], TURNED), [0, 0, 1], 1e-12);
  close(V.projectPinhole([0, 0, 0], K, TURNED), [319.5, 239.5, 1], 1e-9);
});

test("frustum: apex at the centre, corners at the outer pixel edges at the given depth", () => {
  const f = V.frustum([1, 0, 1.5, 1, 0.5], V.IDENTITY_W2C, 4, 2, 2);
  close(f[0], [0, 0, 0]);
  close(f[1], [-4, -2, 2]); // pixel (−0.5, −0.5): x = (−0.5 − 1.5)/1 · 2
  close(f[3], [4, 2, 2]);
  // every corner projects back onto its image corner
  close(V.projectPinhole(f[2], [1, 0, 1.5, 1, 0.5], V.IDENTITY_W2C).slice(0, 2), [3.5, -0.5]);
  const g = V.frustum(K, TURNED, 640, 480, 1);
  close(g[0], [1, 0, 0], 1e-12);
  g.slice(1).forEach((corner) => assert.ok(Math.abs(corner[0] - 0) < 1e-9, "corners lie one unit ahead, on x = 0"));
});

test("orbit camera looks at its target from its eye; drag and zoom stay in range", () => {
  const view = { yaw: 30, pitch: 20, distance: 5, target: [0.5, -0.2, 3], fov: 50 };
  const eye = V.orbitEye(view);
  close([Math.hypot(eye[0] - 0.5, eye[1] + 0.2, eye[2] - 3)], [5], 1e-9);
  assert.ok(eye[1] < -0.2, "pitch > 0 is above the target (y down)");
  const w2c = V.orbitW2C(view);
  const k = V.canvasK(view, 400, 300);
  close(V.projectPinhole(view.target, k, w2c), [200, 150, 5], 1e-9);
  const { C } = V.cameraToWorld(w2c);
  close(C, eye, 1e-9);
  assert.equal(V.orbitDrag(view, 0, 1e4).pitch, 89);
  assert.ok(V.orbitZoom(view, 100).distance > 5 && V.orbitZoom(view, -100).distance < 5);
  const fitted = V.fitOrbit(view, V.bounds([[0, 0, 0], [2, 2, 2]]));
  close(fitted.target, [1, 1, 1]);
  assert.ok(fitted.distance > 2);
  // straight down: no NaN from the up vector
  assert.ok(V.orbitW2C({ ...view, pitch: 90 }).every(Number.isFinite));
});

test("bounds, steps, subsets and the time colours", () => {
  assert.equal(V.bounds(), null);
  const b = V.bounds([[0, 1, 2]], new Float32Array([-1, 5, 0, NaN, 0, 0]));
  close(b.min, [-1, 1, 0]);
  close(b.max, [0, 5, 2]);
  assert.equal(V.niceStep(10), 1);
  assert.equal(V.niceStep(12), 2);
  assert.deepEqual(V.subsetIndices(5, 12), [0, 1, 2, 3, 4]);
  const s = V.subsetIndices(49, 12);
  assert.equal(s.length, 12);
  assert.equal(s[0], 0);
  assert.equal(s.at(-1), 48);
  assert.deepEqual(V.timeRGB(0), [37, 99, 235]);
  assert.deepEqual(V.timeRGB(1), [245, 130, 20]);
  assert.deepEqual(V.timeRGB(0.5), [168, 85, 190]);
  assert.equal(V.nearestIndex([0, 10, 20], 14), 1);
});

test("keyframes: a valid list passes, each kind of mistake is named", () => {
  const good = [
    { frame: 0, position: [0, 0, 0], look_at: [0, 0, 3] },
    { frame: 24, position: [1, 0, 0.5], look_at: [0, 0, 3], fov: 50 },
    { t: 1, position: [1, -0.5, 1], angles: [-20, 5, 0] },
  ];
  assert.deepEqual(V.validateKeyframes(good, 49), []);
  const cases = [
    [[], /at least one/],
    [[{ position: [0, 0, 0] }], /exactly one of frame or t/],
    [[{ frame: 1.5, position: [0, 0, 0] }], /integer/],
    [[{ frame: 60, position: [0, 0, 0] }], /past the last frame \(48\)/],
    [[{ frame: 0, position: [0, 0] }], /position must be/],
    [[{ frame: 0, position: [0, "a", 0] }], /position must be/],
    [[{ frame: 0, position: [0, 0, 0], look_at: [0, 0, 0] }], /differ from position/],
    [[{ frame: 0, position: [0, 0, 0], look_at: [0, 0, 1], angles: [0, 0, 0] }], /at most one of look_at/],
    [[{ frame: 0, position: [0, 0, 0], fov: 200 }], /fov must be/],
    [[{ frame: 0, position: [0, 0, 0], zoom: 2 }], /'zoom' is not a keyframe field/],
    [[{ frame: 3, position: [0, 0, 0] }, { frame: 3, position: [1, 0, 0] }], /two keys at frame 3/],
    [[7], /expected an object/],
  ];
  for (const [keys, message] of cases) {
    const errors = V.validateKeyframes(keys, 49);
    assert.ok(errors.some((e) => message.test(e)), `${JSON.stringify(keys)} → ${JSON.stringify(errors)}`);
  }
  assert.match(V.parseKeyframes("[{frame: 0}]").error, /not valid JSON/);
  assert.match(V.parseKeyframes('{"frame": 0}').error, /JSON list/);
  assert.deepEqual(V.parseKeyframes("").keys, []);
});

test("keyframes round trip: text → rows → text keeps every key and unknown-to-the-editor fields", () => {
  const keys = [
    { frame: 0, position: [0, 0, 0], look_at: [0, 0, 3] },
    { frame: 12, position: [0.5, -0.1, 0.2], angles: [10, 0, 5], fov: 45 },
    { frame: 30, position: [1, 0, 1], quaternion: [1, 0, 0, 0], focal: 400 },
    { t: 1, position: [1, 0, 2] },
  ];
  const text = V.keyframesToText(keys);
  assert.deepEqual(JSON.parse(text), keys);
  const rows = V.parseKeyframes(text).keys.map(V.keyToRow);
  assert.equal(rows[0].orient, "look_at");
  assert.equal(rows[1].orient, "angles");
  assert.equal(rows[2].orient, "none");
  assert.deepEqual(rows.map(V.rowToKey), keys);
  assert.equal(V.keyframesToText([]), "[]");
});

test("editor operations: move swaps poses but keeps the frame slots; new rows come later", () => {
  const rows = [
    V.keyToRow({ frame: 0, position: [0, 0, 0], look_at: [0, 0, 3] }),
    V.keyToRow({ frame: 20, position: [1, 0, 0], look_at: [0, 0, 3] }),
  ];
  const moved = V.moveRow(rows, 1, -1).map(V.rowToKey);
  assert.deepEqual(moved, [{ frame: 0, position: [1, 0, 0], look_at: [0, 0, 3] }, { frame: 20, position: [0, 0, 0], look_at: [0, 0, 3] }]);
  assert.deepEqual(V.rowToKey(rows[1]).position, [1, 0, 0], "the input rows are not changed");
  assert.equal(V.moveRow(rows, 0, -1), rows);
  const next = V.newRow(rows, 25);
  assert.equal(next.frame, 24);
  assert.deepEqual(V.validateKeyframes([...rows, next].map(V.rowToKey), 25), []);
  assert.deepEqual(V.rowToKey(V.newRow([], 0, 4)), { frame: 0, position: [0, 0, 0], look_at: [0, 0, 4] });
  assert.equal(V.readNumber(" 2.5 "), 2.5);
  assert.equal(V.readNumber(""), null);
  assert.equal(V.readNumber("abc"), "abc");
});

test("payload decoding accepts the server's shape and rejects missing or malformed data", () => {
  const path = {
    kind: "path", num_frames: 3, width: 64, height: 48, frames: [0, 1, 2], focus: [0, 0, 3], text: "x",
    cameras: [{ K: [K, K, K], w2c: [V.IDENTITY_W2C, V.IDENTITY_W2C, TURNED], centers: [[0, 0, 0], [0, 0, 0], [1, 0, 0]] }],
  };
  const decoded = V.decodePath(path);
  assert.equal(decoded.numFrames, 3);
  assert.deepEqual(decoded.focus, [0, 0, 3]);
  for (const bad of [undefined, null, {}, { ...path, kind: "points" }, { ...path, frames: [] }, { ...path, cameras: [{ ...path.cameras[0], K: [K] }] }]) {
    assert.equal(V.decodePath(bad), null);
  }
  const pts = V.decodePoints({ kind: "points", xyz: [0, 0, 1, 1, 2, 3], rgb: [255, 0, 0, 0, 255, 0], frame: 2, num_frames: 5 });
  assert.equal(pts.count, 2);
  assert.equal(pts.rgb[0], 255);
  assert.equal(V.decodePoints({ kind: "points", xyz: [0, 1] }), null);
  assert.equal(V.decodePoints(undefined), null);
  const tr = V.decodeTracks({ kind: "tracks", count: 2, trail_length: 2, xyz: new Array(12).fill(0), visible: [1, 0], rgb: [1, 2, 3, 4, 5, 6] });
  assert.equal(tr.trail, 2);
  assert.equal(tr.visible[1], 0);
  assert.equal(V.decodeTracks({ kind: "tracks", count: 2, trail_length: 2, xyz: [0] }), null);
});

test("debounce runs once after a burst", async () => {
  let calls = 0;
  const f = V.debounce(() => calls++, 20);
  f(); f(); f();
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(calls, 1);
  f();
  f.cancel();
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(calls, 1);
});

test("widget names come from the node definition the server sent, in input_order", () => {
  // The shape of /object_info: input specs by section, input_order listing them (ComfyUI ≥ 0.3.30).
  const nodeData = {
    input: {
      required: { preset: [["static", "orbit"], { default: "orbit" }], num_frames: ["INT", { default: 0 }], fov: ["FLOAT", {}], keys: ["STRING", { multiline: true }], on: ["BOOLEAN", {}], forced: ["FLOAT", { forceInput: true }], combo: ["COMBO", { options: ["a"] }], cam: ["VID4D_CAMERA_PATH", {}] },
      optional: { source_camera: ["VID4D_CAMERA_PATH", {}], strength: ["FLOAT", {}] },
    },
    input_order: { required: ["num_frames", "preset", "fov", "keys", "on", "forced", "combo", "cam"], optional: ["source_camera", "strength"] },
  };
  assert.deepEqual(V.widgetNames(nodeData), ["num_frames", "preset", "fov", "keys", "on", "combo"]);
  assert.deepEqual(V.widgetNames(nodeData, "optional"), ["strength"]);
  const { input_order, ...withoutOrder } = nodeData; // older servers: the keys' order
  assert.deepEqual(V.widgetNames(withoutOrder), ["preset", "num_frames", "fov", "keys", "on", "combo"]);
  for (const bad of [undefined, null, {}, { input: null }, { input: { required: 3 } }]) assert.deepEqual(V.widgetNames(bad), []);
});
