// Vid4D 3D previews inside the nodes (Canvas2D, hand-written, no library):
// - CameraPath: the camera frusta along the path (colour = time), the focus point, the source camera and,
//   after a run, the scene's points; drag to orbit, wheel to zoom, double-click to refit; the scrubber
//   looks through the camera at frame t. The path comes from the server (POST /vid4d/camera_path, the
//   same py.camera code the node runs), re-asked whenever a widget changes; the widgets it sends are the
//   node's own, read from the definition the server sent (nodeData), so this file keeps no list of them.
// - CameraPath with preset 'keyframes': a keyframe editor writing the `keyframes` widget's JSON.
// - LiftGaussians / DenseTrack3D: the points / track trails the node sends after a run (ui.vid4d_points,
//   ui.vid4d_tracks), capped by the server.
// Every style rule is scoped under .vid4d-preview; widgets added here are never serialized.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import * as V from "./vid4d_view.js";

const ROUTE = "/vid4d/camera_path";
const VIEW_HEIGHT = 280;

const STYLE = `
.vid4d-preview { display: flex; flex-direction: column; gap: 3px; font: 11px sans-serif; color: #ccc; box-sizing: border-box; }
.vid4d-preview canvas { width: 100%; flex: 1 1 auto; min-height: 120px; background: #16181c; border-radius: 4px; cursor: grab; touch-action: none; }
.vid4d-preview .vid4d-bar { display: flex; align-items: center; gap: 6px; white-space: nowrap; overflow: hidden; }
.vid4d-preview .vid4d-bar input[type=range] { flex: 1 1 auto; min-width: 40px; }
.vid4d-preview .vid4d-status { min-height: 14px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.vid4d-preview .vid4d-error { color: #ff7b72; white-space: normal; }
.vid4d-preview .vid4d-keys { display: flex; flex-direction: column; gap: 4px; overflow-y: auto; min-height: 0; flex: 1 1 auto; }
.vid4d-preview.vid4d-keyframes { overflow: hidden; }
.vid4d-preview .vid4d-key { display: grid; grid-template-columns: 52px repeat(3, minmax(0, 1fr)) 22px; gap: 2px; align-items: center; border-top: 1px solid #333; padding-top: 3px; }
.vid4d-preview .vid4d-key input, .vid4d-preview .vid4d-key select { min-width: 0; width: 100%; box-sizing: border-box; background: #222; color: #ddd; border: 1px solid #444; border-radius: 3px; font: 11px monospace; padding: 1px 2px; }
.vid4d-preview .vid4d-key input.vid4d-bad { border-color: #ff7b72; }
.vid4d-preview button { background: #2c2f36; color: #ddd; border: 1px solid #555; border-radius: 3px; font: 11px sans-serif; padding: 0 4px; cursor: pointer; white-space: nowrap; }
`;

function ensureStyle() {
  if (document.getElementById("vid4d-preview-style")) return;
  const style = document.createElement("style");
  style.id = "vid4d-preview-style";
  style.textContent = STYLE;
  document.head.appendChild(style);
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const c of children) node.append(c);
  return node;
}

// ------------------------------------------------------------------------------ the 3D view
class Preview3D {
  constructor() {
    ensureStyle();
    this.path = null;
    this.points = null;
    this.tracks = null;
    this.externalPoints = () => null; // points from elsewhere (e.g. the LiftGaussians node feeding CameraPath)
    this.view = V.defaultOrbit();
    this.fitted = false;
    this.frame = 0;
    this.cameraView = false;
    this.message = "";
    this.error = "";
    this.canvas = el("canvas");
    this.slider = el("input", { type: "range", min: 0, max: 0, value: 0, step: 1, title: "frame t: the highlighted camera (and the view through it)" });
    this.frameLabel = el("span", { textContent: "t=0" });
    this.camToggle = el("input", { type: "checkbox", title: "look through the camera at frame t" });
    this.status = el("div", { className: "vid4d-status" });
    this.bar = el("div", { className: "vid4d-bar" }, this.slider, this.frameLabel, el("label", {}, this.camToggle, " camera view"));
    this.root = el("div", { className: "vid4d-preview vid4d-view" }, this.canvas, this.bar, this.status);
    this.slider.addEventListener("input", () => { this.frame = Number(this.slider.value) | 0; this.draw(); });
    this.camToggle.addEventListener("change", () => { this.cameraView = this.camToggle.checked; this.draw(); });
    this.bindMouse();
    this.resizeObserver = typeof ResizeObserver === "function" ? new ResizeObserver(() => this.draw()) : null;
    this.resizeObserver?.observe(this.canvas);
    this.update();
  }

  bindMouse() {
    let last = null;
    const c = this.canvas;
    c.addEventListener("pointerdown", (e) => { last = [e.clientX, e.clientY]; c.setPointerCapture?.(e.pointerId); e.stopPropagation(); });
    c.addEventListener("pointermove", (e) => {
      if (!last) return;
      this.view = V.orbitDrag(this.view, e.clientX - last[0], e.clientY - last[1]);
      last = [e.clientX, e.clientY];
      if (this.cameraView) { this.cameraView = false; this.camToggle.checked = false; }
      this.draw();
      e.stopPropagation();
    });
    const end = (e) => { last = null; c.releasePointerCapture?.(e.pointerId); };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
    c.addEventListener("wheel", (e) => { this.view = V.orbitZoom(this.view, e.deltaY); this.draw(); e.preventDefault(); e.stopPropagation(); }, { passive: false });
    c.addEventListener("dblclick", (e) => { this.fitted = false; this.update(); e.stopPropagation(); });
  }

  setPath(path) { this.path = path; this.update(); }
  setPoints(points) { this.points = points; this.update(); }
  setTracks(tracks) { this.tracks = tracks; this.update(); }
  setMessage(text, isError = false) { this.message = isError ? "" : text; this.error = isError ? text : ""; this.renderStatus(); }

  renderStatus() {
    this.status.className = "vid4d-status" + (this.error ? " vid4d-error" : "");
    const parts = [this.error || this.message];
    const pts = this.allPoints();
    if (!this.error && pts) parts.push(pts.text || `${pts.count} points`);
    if (!this.error && this.tracks) parts.push(this.tracks.text);
    this.status.textContent = parts.filter(Boolean).join(" · ") || (this.path ? "" : "no preview data yet: run the workflow");
    this.status.title = this.status.textContent;
  }

  allPoints() { return this.points || this.externalPoints() || null; }

  update() {
    const frames = this.path ? this.path.numFrames : Math.max(this.points?.numFrames || 0, this.tracks?.numFrames || 0);
    this.slider.max = String(Math.max(frames - 1, 0));
    this.bar.style.display = this.path ? "" : "none";
    if (this.frame > frames - 1) this.frame = Math.max(frames - 1, 0);
    this.slider.value = String(this.frame);
    if (!this.fitted) this.refit();
    this.renderStatus();
    this.draw();
  }

  refit() {
    const centres = this.path ? this.path.cameras.flatMap((c) => c.centers) : [];
    const box = V.bounds(centres, this.path?.focus ? [this.path.focus] : null, [[0, 0, 0]], this.allPoints()?.xyz, this.tracks?.xyz);
    this.view = V.fitOrbit({ ...this.view, yaw: -60, pitch: 22 }, box);
    this.fitted = !!(this.path || this.allPoints() || this.tracks);
  }

  // The camera the canvas is seen through: [K, w2c] (the orbit, or the path's camera at frame t letterboxed).
  viewCamera(w, h) {
    if (this.cameraView && this.path) {
      const i = V.nearestIndex(this.path.frames, this.frame);
      const [fx, s, cx, fy, cy] = this.path.cameras[0].K[i];
      const k = Math.min(w / this.path.width, h / this.path.height);
      const ox = (w - k * this.path.width) / 2;
      const oy = (h - k * this.path.height) / 2;
      return { K: [fx * k, s * k, (cx + 0.5) * k + ox - 0.5, fy * k, (cy + 0.5) * k + oy - 0.5], w2c: this.path.cameras[0].w2c[i], box: [ox, oy, k * this.path.width, k * this.path.height] };
    }
    return { K: V.canvasK(this.view, w, h), w2c: V.orbitW2C(this.view), box: null };
  }

  draw() {
    const c = this.canvas;
    const dpr = globalThis.devicePixelRatio || 1;
    const w = Math.max(1, Math.round((c.clientWidth || 300) * dpr));
    const h = Math.max(1, Math.round((c.clientHeight || VIEW_HEIGHT - 40) * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const ctx = c.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#16181c";
    ctx.fillRect(0, 0, w, h);
    const { K, w2c, box } = this.viewCamera(w, h);
    const near = 1e-3 * Math.max(this.view.distance, 1e-3);
    const project = (p) => { const q = V.projectPinhole(p, K, w2c); return q[2] > near ? q : null; };
    const line = (pts, colour, width = 1) => {
      ctx.strokeStyle = colour; ctx.lineWidth = width * dpr; ctx.beginPath();
      let pen = false;
      for (const p of pts) {
        const q = project(p);
        if (!q) { pen = false; continue; }
        if (pen) ctx.lineTo(q[0], q[1]); else ctx.moveTo(q[0], q[1]);
        pen = true;
      }
      ctx.stroke();
    };
    if (box) { ctx.fillStyle = "#0c0d10"; ctx.fillRect(...box); }
    else this.drawGrid(line);
    this.drawPoints(ctx, project, dpr);
    this.drawTracks(ctx, project, line, dpr);
    if (this.path) this.drawPath(ctx, project, line, dpr);
    else this.drawOrigin(line);
    if (box) { ctx.strokeStyle = "#888"; ctx.lineWidth = dpr; ctx.strokeRect(...box); }
    this.frameLabel.textContent = this.path ? `t=${this.frame}/${this.path.numFrames - 1}` : "";
  }

  drawGrid(line) {
    const b = V.bounds(this.path?.cameras.flatMap((c) => c.centers), this.allPoints()?.xyz, this.tracks?.xyz, [[0, 0, 0]], this.path?.focus ? [this.path.focus] : null);
    if (!b) return;
    const step = V.niceStep(b.extent * 1.5);
    const y = b.max[1]; // the floor: world y points down
    const n = Math.ceil((b.extent * 0.9) / step) + 1;
    const cx = Math.round(b.center[0] / step) * step;
    const cz = Math.round(b.center[2] / step) * step;
    for (let i = -n; i <= n; i++) {
      line([[cx + i * step, y, cz - n * step], [cx + i * step, y, cz + n * step]], "#262a31");
      line([[cx - n * step, y, cz + i * step], [cx + n * step, y, cz + i * step]], "#262a31");
    }
  }

  drawOrigin(line) {
    const s = 0.1 * (V.bounds(this.allPoints()?.xyz, this.tracks?.xyz, [[0, 0, 0]])?.extent || 1);
    line([[0, 0, 0], [s, 0, 0]], "#d05050", 2);
    line([[0, 0, 0], [0, -s, 0]], "#50b050", 2);
    line([[0, 0, 0], [0, 0, s]], "#5080e0", 2);
  }

  drawPoints(ctx, project, dpr) {
    const pts = this.allPoints();
    if (!pts) return;
    const size = Math.max(1, Math.round(1.5 * dpr));
    const { xyz, rgb } = pts;
    for (let i = 0; i < pts.count; i++) {
      const q = project([xyz[3 * i], xyz[3 * i + 1], xyz[3 * i + 2]]);
      if (!q) continue;
      ctx.fillStyle = `rgb(${rgb[3 * i]},${rgb[3 * i + 1]},${rgb[3 * i + 2]})`;
      ctx.fillRect(q[0] - size / 2, q[1] - size / 2, size, size);
    }
  }

  drawTracks(ctx, project, line, dpr) {
    const tr = this.tracks;
    if (!tr) return;
    for (let i = 0; i < tr.count; i++) {
      const trail = [];
      for (let j = 0; j < tr.trail; j++) {
        const o = 3 * (i * tr.trail + j);
        trail.push([tr.xyz[o], tr.xyz[o + 1], tr.xyz[o + 2]]);
      }
      const rgb = [tr.rgb[3 * i], tr.rgb[3 * i + 1], tr.rgb[3 * i + 2]];
      line(trail, V.rgbCss(rgb, tr.visible[i] ? 0.9 : 0.25), 1);
      const head = project(trail[trail.length - 1]);
      if (head && tr.visible[i]) { ctx.fillStyle = V.rgbCss(rgb); ctx.fillRect(head[0] - dpr, head[1] - dpr, 2 * dpr, 2 * dpr); }
    }
  }

  drawPath(ctx, project, line, dpr) {
    const p = this.path;
    const centres = p.cameras.flatMap((c) => c.centers);
    const extent = V.bounds(centres, p.focus ? [p.focus] : null, [[0, 0, 0]])?.extent || 1;
    const depth = 0.18 * extent;
    const last = Math.max(p.numFrames - 1, 1);
    const frustumLines = (f) => [[f[0], f[1]], [f[0], f[2]], [f[0], f[3]], [f[0], f[4]], [f[1], f[2], f[3], f[4], f[1]]];
    const drawFrustum = (f, colour, width) => { for (const seg of frustumLines(f)) line(seg, colour, width); line([f[1], f[2]], colour, width * 2); };
    // The source camera: frame 0's intrinsics at the identity pose.
    drawFrustum(V.frustum(p.cameras[0].K[0], V.IDENTITY_W2C, p.width, p.height, depth), "#e8e8e8", 1.5);
    const current = V.nearestIndex(p.frames, this.frame);
    p.cameras.forEach((camera, ci) => {
      for (let i = 0; i + 1 < p.frames.length; i++) line([camera.centers[i], camera.centers[i + 1]], V.rgbCss(V.timeRGB((p.frames[i] + 0.5) / last)), 2);
      const shown = V.subsetIndices(p.frames.length, p.cameras.length > 1 ? Math.max(2, Math.floor(12 / p.cameras.length)) : 12);
      for (const i of shown) drawFrustum(V.frustum(camera.K[i], camera.w2c[i], p.width, p.height, depth), V.rgbCss(V.timeRGB(p.frames[i] / last), 0.85), 1);
      if (!this.cameraView || ci > 0) drawFrustum(V.frustum(camera.K[current], camera.w2c[current], p.width, p.height, depth * 1.15), "#ffffff", 2);
    });
    if (p.focus) {
      const q = project(p.focus);
      if (q) {
        const r = 5 * dpr;
        ctx.strokeStyle = "#ff4040"; ctx.lineWidth = 2 * dpr; ctx.beginPath();
        ctx.moveTo(q[0] - r, q[1] - r); ctx.lineTo(q[0] + r, q[1] + r); ctx.moveTo(q[0] - r, q[1] + r); ctx.lineTo(q[0] + r, q[1] - r); ctx.stroke();
        ctx.fillStyle = "#ff6060"; ctx.font = `${10 * dpr}px sans-serif`; ctx.fillText("F", q[0] + r + 2, q[1] - r);
      }
    }
  }
}

function addViewWidget(node, name) {
  const preview = new Preview3D();
  const widget = node.addDOMWidget(name, "vid4d_preview", preview.root, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => VIEW_HEIGHT,
    getMaxHeight: () => VIEW_HEIGHT * 3,
  });
  widget.serialize = false; // widgets_values are positional: never save a value for this widget
  widget.vid4dPreview = preview;
  node.vid4dPreview = preview;
  const minWidth = 340;
  if (node.size[0] < minWidth) node.setSize([minWidth, node.size[1]]);
  return preview;
}

function growToFit(node) {
  const size = node.computeSize?.();
  if (size) node.setSize([Math.max(node.size[0], size[0]), Math.max(node.size[1], size[1])]);
  node.graph?.setDirtyCanvas(true, true);
}

// ------------------------------------------------------------------------------ the keyframe editor
class KeyframeEditor {
  constructor(node, keyWidget) {
    this.node = node;
    this.keyWidget = keyWidget;
    this.rows = [];
    this.lastText = null;
    this.list = el("div", { className: "vid4d-keys" });
    this.message = el("div", { className: "vid4d-status" });
    const addButton = el("button", { textContent: "+ key", title: "add a keyframe after the last one" });
    addButton.addEventListener("click", () => { this.rows.push(V.newRow(this.rows, this.numFrames(), this.focusDepth())); this.commit(); this.render(); });
    this.head = el("div", { className: "vid4d-bar" }, el("b", { textContent: "keyframes" }), addButton, el("span", { textContent: "frame · x y z · look_at/angles · fov" }));
    // The message sits above the rows so it stays in view however many keys there are.
    this.root = el("div", { className: "vid4d-preview vid4d-keyframes" }, this.head, this.message, this.list);
    this.sync(true);
  }

  value(name) { return this.node.widgets?.find((w) => w.name === name)?.value; }
  numFrames() { return Number(this.value("num_frames")) || this.node.vid4dSource?.num_frames || 0; }
  focusDepth() { return Number(this.value("focus_depth")) || 3; }
  active() { return this.value("preset") === "keyframes"; }

  height() { return this.active() ? 64 + 78 * Math.max(this.rows.length, 1) : 24; }

  // Re-read the widget's text when it changed outside the editor (typed, loaded from a workflow).
  sync(force = false) {
    const text = String(this.keyWidget.value ?? "");
    const shown = this.active();
    const was = this.root.dataset.active;
    this.root.dataset.active = shown ? "1" : "0";
    if (!force && text === this.lastText && was === this.root.dataset.active) return false;
    this.lastText = text;
    const parsed = V.parseKeyframes(text);
    if (parsed.error) { this.show([parsed.error]); }
    else {
      const bad = parsed.keys.findIndex((k) => !k || typeof k !== "object" || Array.isArray(k));
      if (bad >= 0) this.show([`key ${bad + 1}: expected an object`]);
      else { this.rows = parsed.keys.map(V.keyToRow); this.show(this.active() ? V.validateKeyframes(parsed.keys, this.numFrames()) : []); }
    }
    this.render();
    return true;
  }

  show(errors) {
    this.message.className = "vid4d-status" + (errors.length ? " vid4d-error" : "");
    this.message.textContent = errors.length ? errors.join("; ") : this.active() ? `${this.rows.length} key(s) saved in the keyframes widget` : "";
  }

  // Write the rows into the widget if they are valid; otherwise keep the last valid text and say why.
  commit() {
    const keys = this.rows.map(V.rowToKey);
    const errors = V.validateKeyframes(keys, this.numFrames());
    this.show(errors);
    this.root.querySelectorAll("input").forEach((i) => i.classList.remove("vid4d-bad"));
    if (errors.length) {
      for (const m of errors) {
        const row = /^key (\d+)/.exec(m);
        if (row) this.list.children[Number(row[1]) - 1]?.querySelectorAll("input").forEach((i) => { if (i.dataset.bad === "1") i.classList.add("vid4d-bad"); });
      }
      return false;
    }
    const text = V.keyframesToText(keys);
    this.lastText = text;
    this.keyWidget.value = text;
    this.keyWidget.callback?.(text);
    this.node.graph?.setDirtyCanvas(true, true);
    this.node.vid4dSchedule?.();
    return true;
  }

  render() {
    this.list.replaceChildren();
    const on = this.active();
    this.head.style.display = on ? "" : "none";
    this.list.style.display = on ? "" : "none";
    if (!on) { this.message.className = "vid4d-status"; this.message.textContent = "keyframe editor: set preset to 'keyframes'"; }
    this.rows.forEach((row, i) => this.list.append(this.rowElement(row, i)));
    if (this.node.vid4dKeyWidget) growToFit(this.node);
  }

  rowElement(row, i) {
    const num = (value, onChange, title) => {
      const input = el("input", { value: value === null || value === undefined ? "" : String(value), title });
      input.addEventListener("change", () => {
        const v = V.readNumber(input.value);
        input.dataset.bad = typeof v === "number" || (v === null && title === "fov (empty = base)") ? "0" : "1";
        onChange(v);
        this.commit();
      });
      return input;
    };
    const button = (text, title, fn) => { const b = el("button", { textContent: text, title }); b.addEventListener("click", () => { fn(); this.commit(); this.render(); }); return b; };
    const select = el("select", { title: "orientation: look_at a point, or [yaw, pitch, roll] angles, or none (identity)" });
    for (const o of V.ORIENTATIONS) select.append(el("option", { value: o, textContent: o, selected: o === row.orient }));
    select.addEventListener("change", () => { row.orient = select.value; this.commit(); this.render(); });
    const cells = [
      num(row.frame, (v) => { row.frame = v; }, "frame"),
      ...[0, 1, 2].map((k) => num(row.position[k], (v) => { row.position[k] = v; }, `position ${"xyz"[k]}`)),
      button("✕", "remove this key", () => this.rows.splice(i, 1)),
      select,
      ...[0, 1, 2].map((k) => row.orient === "none" ? el("span") : num(row.target[k], (v) => { row.target[k] = v; }, `${row.orient} ${row.orient === "angles" ? ["yaw", "pitch", "roll"][k] : "xyz"[k]}`)),
      button("↑", "move earlier (swaps the poses, keeps the frames)", () => { this.rows = V.moveRow(this.rows, i, -1); }),
      el("span", { textContent: "fov" }),
      num(row.fov, (v) => { row.fov = v; }, "fov (empty = base)"),
      el("span"), el("span"),
      button("↓", "move later", () => { this.rows = V.moveRow(this.rows, i, 1); }),
    ];
    return el("div", { className: "vid4d-key" }, ...cells);
  }
}

// ------------------------------------------------------------------------------ CameraPath: live path from the server
function widgetValues(node) {
  const out = {};
  for (const name of node.vid4dPathWidgets || []) {
    const w = node.widgets?.find((x) => x.name === name);
    if (w !== undefined) out[name] = w.value;
  }
  return out;
}

async function fetchPath(node) {
  const preview = node.vid4dPreview;
  const body = widgetValues(node);
  if (node.vid4dSource) body.source = node.vid4dSource;
  const ticket = (node.vid4dTicket = (node.vid4dTicket || 0) + 1);
  let data = null;
  let error = "";
  try {
    const res = await api.fetchApi(ROUTE, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    data = await res.json().catch(() => null);
    if (!res.ok) error = data?.error || `preview unavailable (HTTP ${res.status})`;
  } catch (e) {
    error = `preview unavailable: ${e?.message || e}`;
  }
  if (ticket !== node.vid4dTicket) return; // an older answer arriving late
  const path = error ? null : V.decodePath(data);
  if (path) { preview.setPath(path); preview.setMessage(path.text); }
  else preview.setMessage(error || "preview unavailable: unexpected answer", true);
}

function upstreamPoints(node) {
  // CameraPath's world is the source camera: the points LiftGaussians showed are in the same frame.
  for (const name of ["gaussians", "source_camera"]) {
    const index = node.inputs?.findIndex((i) => i.name === name) ?? -1;
    if (index < 0 || node.inputs[index].link == null) continue;
    const source = node.getInputNode?.(index);
    if (source?.vid4dPoints) return source.vid4dPoints;
  }
  return null;
}

function setupCameraPath(node, nodeData) {
  node.vid4dPathWidgets = V.widgetNames(nodeData); // what the route accepts: the node's widgets, from the server
  const preview = addViewWidget(node, "vid4d_path_view");
  preview.externalPoints = () => upstreamPoints(node);
  const keyWidget = node.widgets?.find((w) => w.name === "keyframes");
  let editor = null;
  if (keyWidget) {
    editor = new KeyframeEditor(node, keyWidget);
    const widget = node.addDOMWidget("vid4d_keyframes", "vid4d_keyframes", editor.root, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => editor.height(),
      getMaxHeight: () => editor.height(),
    });
    widget.serialize = false;
    node.vid4dKeyWidget = widget;
    node.vid4dKeyEditor = editor;
  }
  const schedule = V.debounce(() => fetchPath(node), 250);
  node.vid4dSchedule = schedule;
  // Polling the values catches every way a widget changes (drag, typing, a loaded workflow, a script).
  let signature = "";
  const poll = () => {
    if (!node.graph) return;
    const now = JSON.stringify(widgetValues(node));
    if (editor?.sync()) growToFit(node);
    if (now !== signature) { signature = now; schedule(); }
  };
  node.vid4dTimer = setInterval(poll, 300);
  const onRemoved = node.onRemoved;
  node.onRemoved = function () {
    clearInterval(node.vid4dTimer);
    schedule.cancel();
    preview.resizeObserver?.disconnect();
    return onRemoved?.apply(this, arguments);
  };
  setTimeout(poll, 0);
}

// ------------------------------------------------------------------------------ the extension
const PREVIEW_NODES = new Set(["CameraPath", "LiftGaussians", "DenseTrack3D"]);

app.registerExtension({
  name: "vid4d.preview3d",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!PREVIEW_NODES.has(nodeData?.name)) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      try {
        if (nodeData.name === "CameraPath") setupCameraPath(this, nodeData);
        else addViewWidget(this, "vid4d_field_view");
      } catch (e) {
        console.warn("Vid4D preview: could not add the 3D view", e);
      }
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const preview = this.vid4dPreview;
      if (!preview || !message) return;
      const points = V.decodePoints(message.vid4d_points?.[0]);
      if (points) { this.vid4dPoints = points; preview.fitted = false; preview.setPoints(points); }
      const tracks = V.decodeTracks(message.vid4d_tracks?.[0]);
      if (tracks) { preview.fitted = false; preview.setTracks(tracks); }
      const source = message.vid4d_source?.[0];
      if (source && typeof source === "object") this.vid4dSource = source;
      const path = V.decodePath(message.vid4d_path?.[0]);
      if (path) { preview.fitted = false; preview.setPath(path); preview.setMessage(path.text); }
      // Downstream CameraPath nodes borrow these points: redraw them.
      if (points) for (const n of this.graph?._nodes || []) if (n !== this && n.vid4dPreview && n.type === "CameraPath") { n.vid4dPreview.fitted = false; n.vid4dPreview.update(); }
    };
  },
});
