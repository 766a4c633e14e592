// Browser checks of the Vid4D 3D previews (driven by preview_browser.py; needs NODE_PATH with playwright-core).
// Usage: node preview_browser.js SERVER_URL WORKFLOW.json OUT_DIR [--run]
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const [url, workflowPath, outDir, ...flags] = process.argv.slice(2);
const results = [];
function check(name, ok, detail = '') {
  results.push({ name, ok: !!ok, detail });
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ': ' + detail : ''}`);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const ours = [];
  page.on('pageerror', (e) => { if (/vid4d/i.test(String(e.stack || e.message))) ours.push('pageerror: ' + e.message); });
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    const where = (m.location() && m.location().url) || '';
    if (/extensions\/vid4d\//.test(where) || /vid4d/i.test(m.text())) ours.push(`console ${m.type()}: ${m.text()} (${where})`);
  });
  await page.goto(url + '/', { waitUntil: 'domcontentloaded', timeout: 120000 });
  await page.waitForFunction(() => window.app && window.graph && window.app.canvas && window.LiteGraph, null, { timeout: 180000 });
  await page.waitForTimeout(2000);
  const wf = JSON.parse(fs.readFileSync(workflowPath, 'utf8'));
  await page.evaluate(async (wf) => {
    await window.app.loadGraphData(wf, true, true, null, { showMissingNodesDialog: false });
  }, wf);

  // Helpers living in the page.
  await page.evaluate(() => {
    window.__v = {
      node: (type) => window.app.graph._nodes.find((n) => n.type === type),
      widget: (node, name) => node.widgets.find((w) => w.name === name),
      focus(node) { // canvas zoom 1, the node near the top left, so its DOM widgets are big enough to read
        const ds = window.app.canvas.ds;
        ds.scale = 1;
        ds.offset = [-node.pos[0] + 40, -node.pos[1] + 60];
        window.app.canvas.setDirty(true, true);
      },
      pixels(node) { // non-background pixel count and a coarse signature of the preview canvas
        const c = node.vid4dPreview.canvas;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let nonBg = 0; const sig = [];
        for (let i = 0; i < d.length; i += 4) {
          if (Math.abs(d[i] - 22) + Math.abs(d[i + 1] - 24) + Math.abs(d[i + 2] - 28) > 12) nonBg++;
          if ((i / 4) % 7 === 0) sig.push(d[i] + d[i + 1] + d[i + 2]);
        }
        return { w: c.width, h: c.height, nonBg, sig };
      },
    };
  });
  const diff = (a, b) => a.sig.length === b.sig.length ? a.sig.reduce((n, v, i) => n + (Math.abs(v - b.sig[i]) > 30 ? 1 : 0), 0) : Infinity;
  const shot = async (type, selector, name) => {
    const handle = await page.evaluateHandle(([type, selector]) => {
      const node = window.__v.node(type);
      return selector === 'view' ? node.vid4dPreview.root : node.vid4dKeyEditor.root;
    }, [type, selector]);
    const file = path.join(outDir, name);
    await handle.asElement().screenshot({ path: file });
    console.log(`  saved ${file}`);
  };

  // 1. the CameraPath preview draws the dolly zoom path
  await page.evaluate(() => window.__v.focus(window.__v.node('CameraPath')));
  await page.waitForTimeout(2500);
  const status0 = await page.evaluate(() => window.__v.node('CameraPath').vid4dPreview.status.textContent);
  check('CameraPath preview got the path from /vid4d/camera_path', /dolly_zoom: 1 camera\(s\) x 49 frames/.test(status0), status0);
  // the widget names the preview posts come from the server's node definition, in the node's order
  const names = await page.evaluate(() => {
    const n = window.__v.node('CameraPath');
    return { posted: n.vid4dPathWidgets, widgets: n.widgets.filter((w) => !String(w.type).startsWith('vid4d_')).map((w) => w.name) };
  });
  check('the preview posts the widgets the server declared', Array.isArray(names.posted) && names.posted.length === 14 && JSON.stringify(names.posted) === JSON.stringify(names.widgets.slice(0, 14)),
    `posted ${JSON.stringify(names.posted)}; node widgets ${JSON.stringify(names.widgets)}`);
  const before = await page.evaluate(() => window.__v.pixels(window.__v.node('CameraPath')));
  check('CameraPath preview canvas is not empty', before.nonBg > 0.01 * before.w * before.h, `${before.nonBg} of ${before.w}x${before.h} pixels drawn`);
  await shot('CameraPath', 'view', 'camera_path_view.png');

  // 2. a widget change redraws it (live update through the route)
  await page.evaluate(() => { const n = window.__v.node('CameraPath'); const w = window.__v.widget(n, 'distance'); w.value = -3.0; w.callback?.(w.value); });
  await page.waitForTimeout(2000);
  const after = await page.evaluate(() => window.__v.pixels(window.__v.node('CameraPath')));
  check('preview pixels change when distance changes', diff(before, after) > 200, `${diff(before, after)} of ${before.sig.length} sampled pixels differ`);
  await shot('CameraPath', 'view', 'camera_path_view_pulled_back.png');

  // 3. the scrubber: view through the camera at frame t
  const camView = await page.evaluate(async () => {
    const p = window.__v.node('CameraPath').vid4dPreview;
    p.slider.value = '40'; p.slider.dispatchEvent(new Event('input'));
    p.camToggle.checked = true; p.camToggle.dispatchEvent(new Event('change'));
    await new Promise((r) => setTimeout(r, 300));
    return { label: p.frameLabel.textContent, px: window.__v.pixels(window.__v.node('CameraPath')) };
  });
  check('scrubber shows frame 40 through its camera', camView.label === 't=40/48' && diff(after, camView.px) > 200, `${camView.label}, ${diff(after, camView.px)} pixels differ`);
  await shot('CameraPath', 'view', 'camera_path_camera_view_t40.png');
  await page.evaluate(() => { const p = window.__v.node('CameraPath').vid4dPreview; p.camToggle.checked = false; p.camToggle.dispatchEvent(new Event('change')); });

  // 4. keyframe editor
  await page.evaluate(() => { const n = window.__v.node('CameraPath'); const w = window.__v.widget(n, 'preset'); w.value = 'keyframes'; w.callback?.(w.value); });
  await page.waitForTimeout(1500);
  const emptyStatus = await page.evaluate(() => window.__v.node('CameraPath').vid4dPreview.status.textContent);
  check('an empty keyframe list is reported in the preview, not thrown', /keyframes/.test(emptyStatus), emptyStatus);
  const addButton = await page.evaluateHandle(() => window.__v.node('CameraPath').vid4dKeyEditor.root.querySelector('button'));
  await addButton.asElement().click();
  await addButton.asElement().click();
  await page.waitForTimeout(300);
  // second key: move it up and to the right
  const inputs = async () => page.evaluateHandle(() => [...window.__v.node('CameraPath').vid4dKeyEditor.root.querySelectorAll('.vid4d-key input')]);
  const setInput = async (index, text) => {
    const handle = await page.evaluateHandle((i) => window.__v.node('CameraPath').vid4dKeyEditor.root.querySelectorAll('.vid4d-key input')[i], index);
    await handle.asElement().fill(text);
    await handle.asElement().press('Enter');
    await handle.asElement().evaluate((e) => e.dispatchEvent(new Event('change')));
  };
  // inputs per row: frame, x, y, z, look_at x, y, z, fov
  await setInput(8 + 1, '1.2');
  await setInput(8 + 2, '-0.6');
  await setInput(8 + 7, '45');
  await page.waitForTimeout(1500);
  const keysText = await page.evaluate(() => window.__v.widget(window.__v.node('CameraPath'), 'keyframes').value);
  let keys = null;
  try { keys = JSON.parse(keysText); } catch (e) { /* reported below */ }
  check('editor writes the keyframes widget', keys && keys.length === 2 && keys[1].position[0] === 1.2 && keys[1].fov === 45, keysText.replace(/\s+/g, ' '));
  const kfStatus = await page.evaluate(() => window.__v.node('CameraPath').vid4dPreview.status.textContent);
  check('keyframe path previewed', /keyframes: 1 camera/.test(kfStatus), kfStatus);
  await shot('CameraPath', 'view', 'keyframes_view.png');
  await setInput(1, 'abc');
  await page.waitForTimeout(500);
  const invalid = await page.evaluate(() => {
    const n = window.__v.node('CameraPath');
    return { message: n.vid4dKeyEditor.message.textContent, cls: n.vid4dKeyEditor.message.className, text: window.__v.widget(n, 'keyframes').value };
  });
  check('an invalid entry shows a visible message and keeps the widget', /key 1: position/.test(invalid.message) && /vid4d-error/.test(invalid.cls) && invalid.text === keysText, invalid.message);
  await shot('CameraPath', 'keys', 'keyframe_editor_invalid.png');
  await setInput(1, '0');
  await page.waitForTimeout(300);

  // 5. save and reload keeps the keys
  const reload = await page.evaluate(async () => {
    const saved = JSON.parse(JSON.stringify(window.app.graph.serialize()));
    const savedNode = saved.nodes.find((n) => n.type === 'CameraPath');
    await window.app.loadGraphData(saved, true, true, null, { showMissingNodesDialog: false });
    await new Promise((r) => setTimeout(r, 1500));
    const node = window.__v.node('CameraPath');
    const prompt = (await window.app.graphToPrompt()).output;
    const api = Object.values(prompt).find((n) => n.class_type === 'CameraPath');
    return {
      values: savedNode.widgets_values, text: window.__v.widget(node, 'keyframes').value,
      rows: node.vid4dKeyEditor.rows.length, apiKeys: api.inputs.keyframes, apiNames: Object.keys(api.inputs),
    };
  });
  check('saved CameraPath widgets_values are the 14 widgets, nothing from the previews', reload.values.length === 14 && reload.values[0] === 'keyframes', JSON.stringify(reload.values).slice(0, 160));
  check('reloaded workflow keeps the keyframes (widget, editor, prompt)', reload.text === keysText && reload.rows === 2 && reload.apiKeys === keysText && !reload.apiNames.some((n) => /vid4d/.test(n)), `rows ${reload.rows}, prompt inputs ${reload.apiNames.join(',')}`);
  await page.evaluate(() => window.__v.focus(window.__v.node('CameraPath')));
  await page.waitForTimeout(1500);
  await shot('CameraPath', 'keys', 'keyframe_editor.png');

  // 6. run: LiftGaussians shows the scene's points, CameraPath borrows them
  if (flags.includes('--run')) {
    await page.evaluate(() => { const n = window.__v.node('CameraPath'); const w = window.__v.widget(n, 'preset'); w.value = 'dolly_zoom'; const d = window.__v.widget(n, 'distance'); d.value = 1.5; });
    await page.evaluate(() => window.app.queuePrompt(0, 1));
    const t0 = Date.now();
    await page.waitForFunction(() => {
      const lift = window.__v.node('LiftGaussians');
      const cp = window.__v.node('CameraPath');
      return lift.vid4dPoints && cp.vid4dSource;
    }, null, { timeout: 600000, polling: 1000 });
    await page.waitForTimeout(1500);
    const run = await page.evaluate(() => {
      const lift = window.__v.node('LiftGaussians');
      const cp = window.__v.node('CameraPath');
      return { points: lift.vid4dPoints.count, liftStatus: lift.vid4dPreview.status.textContent, cpStatus: cp.vid4dPreview.status.textContent, liftPx: window.__v.pixels(lift), cpPx: window.__v.pixels(cp) };
    });
    check(`LiftGaussians preview shows points after the run (${((Date.now() - t0) / 1000).toFixed(0)} s)`, run.points > 100 && run.liftPx.nonBg > 0.05 * run.liftPx.w * run.liftPx.h, `${run.liftStatus}; ${run.liftPx.nonBg} pixels`);
    check('CameraPath preview shows the executed path with the scene points', /24 frames at 256x160/.test(run.cpStatus) && /Gaussians/.test(run.cpStatus), run.cpStatus);
    await page.evaluate(() => window.__v.focus(window.__v.node('LiftGaussians')));
    await page.waitForTimeout(1500);
    await shot('LiftGaussians', 'view', 'lift_gaussians_points.png');
    await page.evaluate(() => window.__v.focus(window.__v.node('CameraPath')));
    await page.waitForTimeout(1500);
    await shot('CameraPath', 'view', 'camera_path_with_points.png');
    await page.evaluate(async () => {
      const p = window.__v.node('CameraPath').vid4dPreview;
      p.slider.value = '23'; p.slider.dispatchEvent(new Event('input'));
      p.camToggle.checked = true; p.camToggle.dispatchEvent(new Event('change'));
      await new Promise((r) => setTimeout(r, 300));
    });
    await shot('CameraPath', 'view', 'camera_path_with_points_camera_view_t23.png');
    await page.screenshot({ path: path.join(outDir, 'page_after_run.png') });
  }

  check('no page or console errors from the pack', ours.length === 0, ours.join(' | '));
  await browser.close();
  const failed = results.filter((r) => !r.ok).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
