// Load workflows in ComfyUI's real frontend and write what the frontend makes of them:
// `ui` = app.graph.serialize() (the UI format it would save), `api` = app.graphToPrompt().output
// (what the Run button sends). Driven by frontend_export.py; needs NODE_PATH with playwright-core.
'use strict';
const fs = require('fs');
const { chromium } = require('playwright-core');

(async () => {
  const [url, ...pairs] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  await page.goto(url + '/', { waitUntil: 'domcontentloaded', timeout: 120000 });
  await page.waitForFunction(() => window.app && window.graph && window.app.canvas && window.LiteGraph, null, { timeout: 180000 });
  await page.waitForTimeout(3000);
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const wf = JSON.parse(fs.readFileSync(pairs[i], 'utf8'));
    const result = await page.evaluate(async (wf) => {
      const app = window.app;
      if (Array.isArray(wf.nodes)) await app.loadGraphData(wf, true, true, null, { showMissingNodesDialog: false });
      else app.loadApiJson(wf, 'workflow.json');
      await new Promise((r) => setTimeout(r, 1500));
      return { ui: app.graph.serialize(), api: (await app.graphToPrompt()).output, frontend: window.__COMFYUI_FRONTEND_VERSION__ || null };
    }, wf);
    fs.writeFileSync(pairs[i + 1], JSON.stringify(result, null, 1));
    console.log(`${pairs[i]} -> ${pairs[i + 1]} (frontend ${result.frontend})`);
  }
  await browser.close();
})();
