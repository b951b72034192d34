// Zoom and pan of the picture: a CSS transform on #frame moves both canvases together, and
// the pointer still maps to image pixels through the transformed box, so marks are drawn
// and shown where they belong at any zoom. Wheel or + and - zoom, 0 resets; a drag with the
// middle button, or with Space held, pans.

import { el } from './ui.js';

const MAX_SCALE = 8;
const view = { scale: 1, x: 0, y: 0 };
let spaceDown = false;
let pan = null;

function apply() {
  // Keep the picture covering the frame's box: no panning it out of sight.
  const w = el.frame.offsetWidth;
  const h = el.frame.offsetHeight;
  view.x = Math.min(0, Math.max(w - view.scale * w, view.x));
  view.y = Math.min(0, Math.max(h - view.scale * h, view.y));
  const identity = view.scale === 1;
  el.frame.style.transformOrigin = '0 0';
  el.frame.style.transform = identity ? '' : `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
  el.frame.classList.toggle('zoomed', !identity);
}

/** Zooms by `factor`, keeping the point under (clientX, clientY) where it is. */
export function zoomAt(clientX, clientY, factor) {
  const scale = Math.min(MAX_SCALE, Math.max(1, view.scale * factor));
  const rect = el.frame.getBoundingClientRect();
  // The frame-local point under the cursor: its screen position is base + x + scale * p.
  const px = (clientX - rect.left) / view.scale;
  const py = (clientY - rect.top) / view.scale;
  view.x += px * (view.scale - scale);
  view.y += py * (view.scale - scale);
  view.scale = scale;
  apply();
}

/** Zooms about the middle of what is shown. */
export function zoomCentre(factor) {
  const stage = el.stage.getBoundingClientRect();
  zoomAt(stage.left + stage.width / 2, stage.top + stage.height / 2, factor);
}

export function resetZoom() {
  view.scale = 1;
  view.x = 0;
  view.y = 0;
  apply();
}

el.stage.addEventListener(
  'wheel',
  (event) => {
    if (el.frame.hidden) return;
    event.preventDefault();
    zoomAt(event.clientX, event.clientY, Math.exp(-event.deltaY * 0.0015));
  },
  { passive: false },
);

// Captured before the overlay sees it, so a pan never draws.
el.stage.addEventListener(
  'pointerdown',
  (event) => {
    if (!(event.button === 1 || (event.button === 0 && spaceDown)) || view.scale === 1) return;
    event.preventDefault();
    event.stopPropagation();
    pan = { x: event.clientX, y: event.clientY };
    el.stage.setPointerCapture(event.pointerId);
  },
  { capture: true },
);

el.stage.addEventListener('pointermove', (event) => {
  if (!pan) return;
  view.x += event.clientX - pan.x;
  view.y += event.clientY - pan.y;
  pan = { x: event.clientX, y: event.clientY };
  apply();
});

const endPan = () => {
  pan = null;
};
el.stage.addEventListener('pointerup', endPan);
el.stage.addEventListener('pointercancel', endPan);

/** Keys for zooming; true when the key was one. */
export function zoomKey(event) {
  if (event.key === '+' || event.key === '=') zoomCentre(2);
  else if (event.key === '-') zoomCentre(0.5);
  else if (event.key === '0') resetZoom();
  else return false;
  return true;
}

// Space held turns a drag into a pan.
document.addEventListener('keydown', (event) => {
  if (event.key === ' ') spaceDown = true;
});
document.addEventListener('keyup', (event) => {
  if (event.key === ' ') spaceDown = false;
});

new ResizeObserver(apply).observe(el.stage);
