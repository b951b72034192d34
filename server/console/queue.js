// The queue of open sessions: polled from the HTTP API, live first, then by plan tier,
// then longest waiting; each with a Join button.

import { el, state, toast } from './ui.js';

const QUEUE_REFRESH_MS = 2000;

/** What the queue asks of the page: joining a session, and signing out when the token
 *  stops being accepted. Given by app.js, which owns both. */
let actions = { join: () => {}, signOut: () => {} };

export function startQueue(pageActions) {
  actions = pageActions;
  clearInterval(state.queueTimer);
  refreshQueue();
  state.queueTimer = setInterval(refreshQueue, QUEUE_REFRESH_MS);
}

export async function refreshQueue() {
  let sessions;
  try {
    const response = await fetch('/v1/sessions', { headers: { Authorization: `Bearer ${state.token}` } });
    if (response.status === 401) {
      toast('The token is no longer accepted.');
      return actions.signOut();
    }
    if (!response.ok) return;
    sessions = await response.json();
  } catch {
    return;
  }
  renderQueue(sessions);
}

let shown = [];

/** Redraws the queue's buttons for a change of membership, without asking the server. */
export function showMembership() {
  renderQueue(shown);
}

const TIER_RANK = { platinum: 4, gold: 3, standard: 2, free: 1 };

// Live ones first, then the highest plan tier, then whoever has waited longest (the server
// sends this order too; sorting here keeps the list stable between refreshes).
function sortQueue(sessions) {
  const rank = (s) => TIER_RANK[s.tier] ?? 0;
  return [...sessions].sort(
    (a, b) => Number(b.live) - Number(a.live) || rank(b) - rank(a) || a.created_at - b.created_at,
  );
}

function waited(createdAtMicros) {
  const seconds = Math.max(0, Math.round((Date.now() * 1000 - createdAtMicros) / 1e6));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function renderQueue(sessions) {
  shown = sessions;
  const items = new Map([...el.queue.children].map((li) => [li.dataset.session, li]));
  const order = sortQueue(sessions);
  order.forEach((s, index) => {
    const key = String(s.id);
    let li = items.get(key);
    if (!li) {
      li = document.createElement('li');
      li.dataset.session = key;
      li.innerHTML =
        '<span class="name"></span><span class="meta routing"></span><span class="meta waiting"></span><span class="meta watchers"></span>';
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'join primary';
      button.dataset.session = key;
      button.addEventListener('click', () => actions.join(Number(key)));
      li.append(button);
    }
    items.delete(key);
    li.querySelector('.name').textContent = s.name || `Session ${s.id}`;
    li.querySelector('.waiting').textContent = `${s.live ? 'live' : 'offline'} · waiting ${waited(s.created_at)}`;
    const routing = [s.tier, s.skill && `needs ${s.skill}`].filter(Boolean).join(' · ');
    li.querySelector('.routing').textContent = routing;
    li.querySelector('.routing').hidden = !routing;
    li.dataset.tier = s.tier ?? '';
    li.querySelector('.watchers').textContent = s.watchers?.length ? `watching: ${s.watchers.join(', ')}` : 'nobody watching';
    const current = s.id === state.session;
    li.classList.toggle('current', current);
    li.classList.toggle('ended', !s.live);
    const confirmed = s.id === state.joined;
    li.querySelector('.join').textContent = confirmed ? 'Joined' : current ? 'Joining…' : 'Join';
    if (el.queue.children[index] !== li) el.queue.insertBefore(li, el.queue.children[index] ?? null);
  });
  items.forEach((li) => li.remove());
  el.queueEmpty.hidden = order.length > 0;
}
