// The OHIF MONAI Label flow in Debian's headless Chromium, driven by playwright-core (no browser download).
//
//   node ohif_flow.mjs --server http://127.0.0.1:PORT --out DIR [--label-image SERIES_UID --label-file FILE]
//                      [--chromium /usr/bin/chromium] [--figure FILE.png] [--point-prompt SEGMENT]
//
// Opens the OHIF build that our server serves at /ohif/, picks the first study of the study list in the
// "MONAI Label" mode, connects the MONAI Label panel to the server, presses "Update Model" with no final
// label yet (expects the server's refusal; not with --figure), "Next Sample" (reloads the viewer on the
// sample's study), "Run" auto-segmentation, and reads back what OHIF shows: the labelmap volume in the page and the CT volume's
// slice order. Then it submits a final label through the REST API (OHIF's MONAI Label panel has no save
// button), presses "Update Model" again and checks that training runs, and stops it. With --point-prompt
// SEGMENT it instead places a point on the viewport in the Point Prompts tab, once connected, and runs the
// click model. Screenshots and
// what was read go to DIR; DIR/result.json says what happened at each step. Python (test_ohif.py)
// compares the labelmap with the server's own inference result.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const server = (args.server || '').replace(/\/$/, '');
const out = args.out;
if (!server || !out) {
  console.error('usage: node ohif_flow.mjs --server URL --out DIR [--label-image UID --label-file FILE]');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });

const CHROMIUM_FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
];
const result = { steps: [], console_errors: [] };
const started = Date.now();

function step(name, details = {}) {
  const entry = { step: name, t_s: +((Date.now() - started) / 1000).toFixed(1), ...details };
  result.steps.push(entry);
  console.log(JSON.stringify(entry));
}

async function shot(page, name) {
  const file = path.join(out, name);
  await page.screenshot({ path: file });
  return file;
}

// In the page, OHIF's cornerstone extension puts the cornerstone modules it runs with on window.
async function imageVolume(page) {
  return page.evaluate(() => {
    const volumes = window.cornerstone.cache.getVolumes();
    const v = volumes.find((x) => String(x.volumeId).startsWith('cornerstoneStreamingImageVolume')
      && x.imageIds && x.imageIds.length === x.dimensions[2]);
    if (!v) return { loaded: false, count: volumes.length };
    return {
      loaded: true, volumeId: v.volumeId, dimensions: Array.from(v.dimensions), spacing: Array.from(v.spacing),
      origin: Array.from(v.origin), direction: Array.from(v.direction),
      sopInstanceUIDs: v.imageIds.map((id) => (id.match(/instances\/([^/]+)\//) || [null, id])[1]),
    };
  });
}

// The labelmap of the panel's segmentation '1' (what the viewports overlay), base64 encoded.
async function labelmap(page) {
  return page.evaluate(() => {
    const seg = window.cornerstoneTools.segmentation.state.getSegmentation('1');
    const volumeId = seg && seg.representationData.Labelmap && seg.representationData.Labelmap.volumeId;
    const volume = volumeId ? window.cornerstone.cache.getVolume(volumeId) : null;
    if (!volume) return null;
    const bytes = Uint8Array.from(volume.voxelManager.getCompleteScalarDataArray());
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return {
      volumeId, dimensions: Array.from(volume.dimensions), nonzero: bytes.reduce((n, x) => n + (x > 0 ? 1 : 0), 0),
      segments: Object.fromEntries(Object.entries(seg.segments).map(([k, x]) => [k, x.label])), base64: btoa(binary),
    };
  });
}

async function waitFor(what, fn, timeoutMs, everyMs = 500) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
}

async function notification(page, text, timeoutMs = 180000) {
  await page.getByText(text, { exact: false }).first().waitFor({ state: 'visible', timeout: timeoutMs });
}

async function connect(page) {
  await page.locator('.settingsTable button.actionButton').click();
  await page.locator('.monaiLabelPanel .subtitle').waitFor({ state: 'visible', timeout: 180000 });
  return (await page.locator('.monaiLabelPanel .subtitle').textContent()).trim();
}

async function viewerReady(page) {
  await page.locator('.cornerstone-canvas').first().waitFor({ state: 'visible', timeout: 300000 });
  const banner = page.getByRole('button', { name: 'Confirm and Hide' }); // "for investigational use only"
  if (await banner.isVisible()) await banner.click();
  return waitFor('the CT volume to load in OHIF', async () => {
    const v = await imageVolume(page).catch(() => null);
    return v && v.loaded ? v : null;
  }, 300000);
}

async function activeLearningTab(page) {
  const nextSample = page.getByRole('button', { name: 'Next Sample' });
  if (!(await nextSample.isVisible())) await page.getByText('Active Learning', { exact: true }).click();
  return nextSample;
}

async function trainingRunning() {
  const r = await fetch(`${server}/train/?check_if_running=true`);
  return r.status === 200 && (await r.json()).status === 'RUNNING';
}

// Point Prompts (click models, type deepgrow): a foreground point on the viewport for the segment
// `name`, then "Run"; reads the overlay at the clicked point.
async function pointPrompt(page, requests, name) {
  await page.getByText('Point Prompts', { exact: true }).click();
  await page.locator('tr.clickable-row', { hasText: name }).first().click();
  // off the centre (a flipped axis would move the answer away), on the slice shown in the first viewport
  const target = await page.evaluate(() => {
    const element = document.querySelector('.cornerstone-canvas').closest('[data-viewport-uid]');
    const { viewport } = window.cornerstone.getEnabledElement(element);
    const volume = window.cornerstone.cache.getVolumes().find((v) => v.imageIds && v.imageIds.length === v.dimensions[2]);
    const centre = volume.imageData.worldToIndex(viewport.canvasToWorld([viewport.canvas.clientWidth / 2,
                                                                         viewport.canvas.clientHeight / 2]));
    const [x, y] = volume.dimensions;
    const ijk = [Math.round(centre[0] - x / 4), Math.round(centre[1] - y / 5), Math.round(centre[2])];
    return viewport.worldToCanvas(volume.imageData.indexToWorld(ijk));
  });
  const canvas = await page.locator('.cornerstone-canvas').first().boundingBox();
  await page.mouse.click(canvas.x + target[0], canvas.y + target[1]);
  const point = await waitFor('the point annotation', () => page.evaluate(() => {
    const all = window.cornerstoneTools.annotation.state.getAllAnnotations();
    const probe = all.filter((a) => a.metadata && a.metadata.toolName === 'ProbeMONAILabel').at(-1);
    return probe ? Array.from(probe.data.handles.points[0]) : null;
  }), 60000);
  await page.locator('button[title="Run PointPrompts"]').click();
  await notification(page, 'Running Inference for Point Prompts - Successful', 300000);
  await page.waitForTimeout(1500); // let the viewports render the new labelmap
  const at = await page.evaluate(([world, segmentName]) => {
    const seg = window.cornerstoneTools.segmentation.state.getSegmentation('1');
    const volume = window.cornerstone.cache.getVolume(seg.representationData.Labelmap.volumeId);
    const ijk = volume.imageData.worldToIndex(world).map(Math.round);
    const [x, y] = volume.dimensions;
    const data = volume.voxelManager.getCompleteScalarDataArray();
    const segment = Number(Object.entries(seg.segments).find(([, v]) => v.label === segmentName)[0]);
    let near = 0;  // the segment within 2 voxels of the point (5^3 voxels; the click claims 16 mm around it)
    for (let k = ijk[2] - 2; k <= ijk[2] + 2; k++) for (let j = ijk[1] - 2; j <= ijk[1] + 2; j++)
      for (let i = ijk[0] - 2; i <= ijk[0] + 2; i++) near += data[i + x * (j + y * k)] === segment ? 1 : 0;
    return { ijk, value: data[ijk[0] + x * (ijk[1] + y * ijk[2])], segment, near: near / 125,
             voxels: data.reduce((n, v) => n + (v === segment ? 1 : 0), 0) };
  }, [point, name]);
  return { world: point, ...at, infer: requests.filter((r) => r.path.startsWith('/infer/')).at(-1),
           screenshot: await shot(page, '08-point-prompt.png') };
}

async function main() {
  const browser = await chromium.launch({ executablePath: args.chromium || '/usr/bin/chromium', args: CHROMIUM_FLAGS });
  const context = await browser.newContext({ viewport: { width: 1600, height: 900 } });
  context.setDefaultTimeout(180000); // generous: a loaded 2-core CI machine renders OHIF several times slower
  // offline: only the server on loopback (OHIF's index.html asks a font host for its font)
  await context.route((url) => !['127.0.0.1', 'localhost'].includes(url.hostname), (route) => route.abort());
  await context.addCookies([{ name: 'MONAILABEL_SERVER_URL', value: `${server}/`, url: server }]);
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') result.console_errors.push(m.text().slice(0, 300)); });
  page.on('pageerror', (e) => result.console_errors.push(`pageerror: ${String(e).slice(0, 300)}`));
  page.on('dialog', (d) => d.accept()); // "This action will reload current page. Are you sure to continue?"
  const requests = [];
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (/^\/(info|infer|activelearning|train)/.test(u.pathname)) requests.push({ method: r.request().method(), path: u.pathname + u.search, status: r.status() });
  });
  result.requests = requests;

  try {
    // 1. the study list, then the first study in the MONAI Label mode
    await page.goto(`${server}/ohif/`);
    const rows = page.locator('[data-cy^="studyRow-"]');
    await rows.first().waitFor({ state: 'visible', timeout: 300000 });
    step('study list', { studies: await rows.count(), screenshot: await shot(page, '01-study-list.png') });
    await rows.first().click();
    await page.getByRole('button', { name: 'MONAI Label' }).first().click();
    await page.waitForURL(/\/ohif\/monai-label\?/, { timeout: 180000 });
    const opened = await viewerReady(page);
    step('opened in MONAI Label mode', { url: page.url(), slices: opened.sopInstanceUIDs.length, screenshot: await shot(page, '02-viewer.png') });

    // 2. connect the panel
    step('connected', { app: await connect(page) });
    if (args['point-prompt']) {
      await page.waitForTimeout(1500); // the panel adds its labelmap segmentation a second after connecting
      step('point prompt', await pointPrompt(page, requests, args['point-prompt']));
      result.ok = true;
      return;
    }

    // 3. "Update Model" with no final label: the server refuses, OHIF says so (skipped for the figure,
    //    whose server has labels)
    await activeLearningTab(page);
    if (!args.figure) {
      await page.getByRole('button', { name: 'Update Model' }).click();
      await notification(page, 'Failed to RUN training', 120000);
      step('update model without labels refused', { train_request: requests.filter((r) => r.path.startsWith('/train') && r.method === 'POST').at(-1) });
    }

    // 4. next sample: a form with the sample's UIDs; OK reloads the viewer on that study
    const before = page.url();
    await page.getByRole('button', { name: 'Next Sample' }).click();
    await page.getByText('Active Learning - Next Sample').waitFor({ state: 'visible', timeout: 180000 });
    const form = await page.locator('.nextSampleForm table').first().innerText();
    await shot(page, '03-next-sample.png');
    await page.getByRole('button', { name: 'OK', exact: true }).click();
    // the panel's strategy is `random`: 1 time in 8 it names the study already open, and OK keeps the URL
    const openStudy = new URL(before).searchParams.get('StudyInstanceUIDs');
    if (!openStudy || !form.includes(openStudy)) {
      await page.waitForURL((u) => u.toString() !== before, { timeout: 180000 });
    } else {
      await page.waitForLoadState('load');
    }
    const sample = await viewerReady(page);
    step('next sample', { url: page.url(), form, slices: sample.sopInstanceUIDs.length });
    step('reconnected', { app: await connect(page) });
    await page.waitForTimeout(1500); // the panel adds its labelmap segmentation a second after connecting

    // 5. auto-segmentation on the active viewport's series
    const viewport = page.locator('.cornerstone-canvas').first();
    await viewport.screenshot({ path: path.join(out, '04-viewport-before.png') });
    await page.locator('button[title="Run Segmentation"]').click();
    await notification(page, 'Running Segmentation - Successful', 300000);
    const lm = await waitFor('the labelmap to fill', async () => {
      const x = await labelmap(page);
      return x && x.nonzero > 0 ? x : null;
    }, 120000);
    await page.waitForTimeout(1500); // let the viewports render the new labelmap
    await viewport.screenshot({ path: path.join(out, '05-viewport-after.png') });
    const shown = await imageVolume(page);
    fs.writeFileSync(path.join(out, 'labelmap.bin'), Buffer.from(lm.base64, 'base64'));
    delete lm.base64;
    result.labelmap = lm;
    result.image_volume = shown;
    step('auto-segmentation', { nonzero: lm.nonzero, dimensions: lm.dimensions, segments: lm.segments, screenshot: await shot(page, '06-segmented.png') });
    if (args.figure) await page.screenshot({ path: args.figure });

    // 6. a final label arrives (through REST: the panel cannot submit one), then "Update Model" trains
    if (args['label-image'] && args['label-file']) {
      const form = new FormData();
      form.append('params', JSON.stringify({ label_info: [{ name: 'liver', idx: 1 }, { name: 'tumour', idx: 2 }] }));
      form.append('label', new Blob([fs.readFileSync(args['label-file'])]), path.basename(args['label-file']));
      const saved = await fetch(`${server}/datastore/label?image=${encodeURIComponent(args['label-image'])}&tag=final`, { method: 'PUT', body: form });
      if (saved.status !== 200) throw new Error(`label upload failed: ${saved.status} ${await saved.text()}`);
      await page.getByRole('button', { name: 'Update Model' }).click();
      await notification(page, 'Model update task STARTED', 120000);
      await waitFor('training to run', trainingRunning, 180000);
      step('update model trains', { screenshot: await shot(page, '07-training.png') });
      await page.getByRole('button', { name: 'Stop Training' }).click();
      await notification(page, 'Model update task STOPPED', 120000);
      await waitFor('training to stop', async () => !(await trainingRunning()), 180000);
      step('stop training');
    }
    result.ok = true;
  } catch (e) {
    result.ok = false;
    result.error = String(e && e.stack ? e.stack : e);
    await shot(page, 'failure.png').catch(() => {});
    console.error(result.error);
  } finally {
    fs.writeFileSync(path.join(out, 'result.json'), JSON.stringify(result, null, 2));
    await browser.close();
  }
  process.exit(result.ok ? 0 : 1);
}

main().then(() => process.exit(result.ok ? 0 : 1)); // also after the point-prompt flow returns early
