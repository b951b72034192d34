// The agent console: sign-in, the link to the relay (WebTransport or the WebSocket fallback,
// transport.js), joining sessions, tools and shortcuts. The queue, the video and the marks
// have modules of their own; the wire format is in protocol.js, camera math in camera.js.

import * as P from './protocol.js';
import { openLink } from './transport.js';
import { send } from './link.js';
import { showView } from './outreach.js';
import { $, el, state, toast } from './ui.js';
import { explain } from './errors.js';
import { resetZoom, zoomKey } from './zoom.js';
import { refreshQueue, showMembership, startQueue } from './queue.js';
import { onMedia, renderWearerState, requestKeyframe, resetVideo } from './video.js';
import {
  KIND_BY_TOOL,
  PALETTE,
  WIDTHS,
  addMark,
  clearAll,
  clearMarks,
  eraseMark,
  onAnchor,
  removeMark,
  rgbaCss,
  undo,
} from './marks.js';

const TOKEN_KEY = 'farsight.token';

// ---- connection ----

async function connect(token, role = P.Role.agent) {
  state.token = token;
  state.role = role;
  state.welcomed = false;
  const attempt = {};
  state.link = attempt;
  let link;
  const onMessage = (message) => {
    if (state.link !== link) return;
    if (message.kind === 'media') onMedia(message);
    else onControl(message.message);
  };
  const onClose = () => {
    if (state.link !== link && state.link !== attempt) return;
    state.link = null;
    if (!state.signedIn) {
      if (!el.signinError.textContent) {
        showSigninError('Could not reach the server. Check your network, or ask whether the server is running.');
      }
      return;
    }
    if (state.welcomed) toast('Connection lost; reconnecting…', 'info');
    state.welcomed = false;
    resetVideo();
    // state.token, not token: a single sign-on ticket may have been renewed meanwhile.
    setTimeout(() => state.signedIn && connect(state.token, state.role), state.reconnectDelay);
    state.reconnectDelay = Math.min(state.reconnectDelay * 2, 10000);
  };
  try {
    link = await openLink({ onMessage: (m) => guarded(onMessage, m), onClose });
  } catch {
    onClose();
    return;
  }
  if (state.link !== attempt) {
    link.close(); // superseded while connecting (signed out, or another sign-in)
    return;
  }
  state.link = link;
  send({ type: 'Hello', version: P.VERSION, role, token, resume: 0 });
}

// A malformed message from the server is reported, not thrown into the transport's loop.
function guarded(handle, message) {
  try {
    handle(message);
  } catch (e) {
    toast(`Bad message from the server: ${e.message}`);
  }
}


function showSigninError(text) {
  el.signinError.textContent = text;
  el.signinError.hidden = false;
}

function onControl(m) {
  switch (m.type) {
    case 'Welcome':
      return onWelcome(m);
    case 'Error':
      return onError(m);
    case 'Joined':
      return onJoined(m);
    case 'Presence':
      return onPresence(m);
    case 'End':
      return onEnded(m.session, 'The session was ended for everyone.');
    case 'Annotate':
      if (m.session === state.session) addMark(m, false);
      return;
    case 'AnchorResolved':
      if (m.session === state.session) onAnchor(m);
      return;
    case 'Erase':
      if (m.session === state.session) removeMark(m.id);
      return;
    case 'Clear':
      if (m.session === state.session) clearMarks();
      return;
    case 'Freeze':
      if (m.session === state.session) toast(`Another watcher is drawing on frame ${m.frame}`, 'info');
      return;
    case 'Unfreeze':
      if (m.session === state.session) toast('Another watcher is back to live video', 'info');
      return;
    default:
      // KeyframeRequest, BitrateHint and unknown types are not for watchers.
      return;
  }
}

function onWelcome(m) {
  const rejoin = state.session;
  state.welcomed = true;
  state.signedIn = true;
  state.reconnectDelay = 1000;
  state.me = { id: m.participant, name: m.name };
  if (!state.sso) sessionStorage.setItem(TOKEN_KEY, state.token);
  el.signinError.hidden = true;
  el.signinError.textContent = '';
  el.signinView.hidden = true;
  el.app.hidden = false;
  el.me.textContent = `${m.name} · ${state.role === P.Role.supervisor ? 'supervisor' : 'agent'}`;
  startQueue({ join, signOut });
  if (rejoin) join(rejoin, true);
}

function onError(m) {
  if (!state.welcomed) {
    // The page cannot know the token's role; a supervisor token is refused as agent first.
    if (m.code === P.ErrorCode.WrongRole && state.role === P.Role.agent) {
      const token = state.token;
      const old = state.link;
      state.link = null;
      old?.close?.();
      connect(token, P.Role.supervisor);
      return;
    }
    signOut(false);
    showSigninError(explain(m, true));
    return;
  }
  toast(explain(m));
  if (m.code === P.ErrorCode.NoSuchSession || m.code === P.ErrorCode.NotJoined) {
    if (!state.current) leaveLocal();
  }
}

// ---- membership ----

export function join(session, force = false) {
  if (session === state.session && !force) return;
  // An ended session has no one left in it to leave.
  if (state.session && session !== state.session && !state.sessionEnded) {
    send({ type: 'Leave', session: state.session });
  }
  leaveLocal();
  state.session = session;
  showMembership();
  el.sessionTitle.textContent = `Session ${session}`;
  el.placeholder.textContent = 'Waiting for the picture…';
  send({ type: 'Join', session });
  requestKeyframe(true);
  refreshQueue();
}

function leaveLocal() {
  el.confirm.hidden = true;
  state.confirmed = null;
  state.sessionEnded = false;
  el.endSession.hidden = true;
  el.invite.hidden = true;
  el.invitation.hidden = true;
  el.invitationToken.value = '';
  resetZoom();
  state.session = 0;
  state.joined = 0;
  state.participants.clear();
  clearMarks();
  setFrozen(false, false);
  resetVideo();
  renderParticipants();
  el.sessionTitle.textContent = 'No session';
}

function onJoined(m) {
  if (m.session !== state.session) return;
  state.joined = m.session;
  el.endSession.hidden = false;
  el.invite.hidden = false;
  showMembership();
  state.participants.clear();
  if (state.me) state.participants.set(state.me.id, { id: state.me.id, role: state.role, name: state.me.name });
  m.participants.forEach((p) => state.participants.set(p.id, p));
  state.wearerLeft = !m.participants.some((p) => p.role === P.Role.wearable);
  renderWearerState();
  const name = document.querySelector(`#queue li[data-session="${m.session}"] .name`)?.textContent;
  if (name) el.sessionTitle.textContent = name;
  renderParticipants();
}

function onPresence(m) {
  if (m.session !== state.session) return;
  if (m.present) state.participants.set(m.participant.id, m.participant);
  else state.participants.delete(m.participant.id);
  if (m.participant.role === P.Role.wearable) {
    state.wearerLeft = !m.present;
    renderWearerState();
  }
  renderParticipants();
  toast(`${m.participant.name} ${m.present ? 'joined' : 'left'}`, 'info');
}

const ROLE_NAMES = { [P.Role.wearable]: 'wearer', [P.Role.agent]: 'agent', [P.Role.supervisor]: 'supervisor' };

function renderParticipants() {
  el.participants.replaceChildren(
    ...[...state.participants.values()].map((p) => {
      const li = document.createElement('li');
      li.dataset.participant = String(p.id);
      const dot = document.createElement('span');
      dot.className = 'dot';
      const name = document.createElement('span');
      name.textContent = p.id === state.me?.id ? `${p.name} (you)` : p.name;
      const role = document.createElement('span');
      role.className = 'role';
      role.textContent = ROLE_NAMES[p.role] ?? '';
      li.append(dot, name, role);
      return li;
    }),
  );
}

// ---- tools and shortcuts ----

function setTool(tool) {
  state.tool = tool;
  for (const button of el.tools.querySelectorAll('button[data-tool]')) {
    if (KIND_BY_TOOL[button.dataset.tool]) button.classList.toggle('active', button.dataset.tool === tool);
  }
}

// ---- colour and width of new marks ----

const swatches = [...el.tools.querySelectorAll('.swatch')];
swatches.forEach((b) => {
  b.style.background = rgbaCss(PALETTE[Number(b.dataset.colour)]);
  b.addEventListener('click', () => setColour(Number(b.dataset.colour)));
});

function setColour(index) {
  state.style.rgba = PALETTE[index];
  swatches.forEach((b) => b.classList.toggle('active', Number(b.dataset.colour) === index));
}

// One step thinner (-1) or thicker (+1), within WIDTHS; the button goes round.
function stepWidth(step) {
  const at = WIDTHS.indexOf(state.style.width);
  const next = step ? Math.min(WIDTHS.length - 1, Math.max(0, at + step)) : (at + 1) % WIDTHS.length;
  state.style.width = WIDTHS[next];
  el.widthValue.textContent = String(state.style.width);
}

el.width.addEventListener('click', () => stepWidth(0));

function setFrozen(frozen, announce = true) {
  if (frozen === state.frozen) return;
  if (frozen && !state.current) return;
  state.frozen = frozen;
  if (announce && state.session) {
    send(frozen ? { type: 'Freeze', session: state.session, frame: state.current.frame } : { type: 'Unfreeze', session: state.session });
  }
  el.frozenBadge.hidden = !frozen;
  const button = el.tools.querySelector('[data-tool="freeze"]');
  button.classList.toggle('active', frozen);
  button.querySelector('.label').textContent = frozen ? 'Unfreeze' : 'Freeze';
}

function snapshot() {
  if (!state.current) return;
  const canvas = document.createElement('canvas');
  canvas.width = el.video.width;
  canvas.height = el.video.height;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(el.video, 0, 0);
  ctx.drawImage(el.marks, 0, 0, canvas.width, canvas.height);
  canvas.toBlob((blob) => {
    if (!blob) return;
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = `farsight-${state.session}-frame-${state.current?.frame ?? 0}.png`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }, 'image/png');
}

function act(tool) {
  if (KIND_BY_TOOL[tool]) return setTool(tool);
  if (tool === 'freeze') return setFrozen(!state.frozen);
  if (tool === 'erase') return eraseMark();
  if (tool === 'undo') return undo();
  if (tool === 'clear') return askToClear();
  if (tool === 'snapshot') return snapshot();
}

// The confirmation bar: a question, and what its yes does.
function confirm(question, yes, action) {
  el.confirmText.textContent = question;
  el.confirmYes.textContent = yes;
  state.confirmed = action;
  el.confirm.hidden = false;
}

function answer(yes) {
  const action = state.confirmed;
  state.confirmed = null;
  el.confirm.hidden = true;
  if (yes) action?.();
}

el.confirm.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-confirm]');
  if (button) answer(button.dataset.confirm === 'yes');
});

// Clear asks first when it would take other agents' marks too.
function askToClear() {
  const question = clearAll();
  if (question) confirm(question, 'Clear', () => clearAll(true));
}

// Ending is for everyone and cannot be undone: it always asks.
el.endSession.addEventListener('click', () => {
  const session = state.joined;
  if (!session) return;
  const question = 'End this session for the wearer and every agent? It cannot be joined again.';
  confirm(question, 'End session', () => {
    if (!send({ type: 'End', session })) return toast('Not connected.');
    onEnded(session, 'You ended the session for everyone.');
  });
});

// An invitation: a token for this session only, shown once, for the agent to pass on.
el.invite.addEventListener('click', async () => {
  const session = state.joined;
  if (!session) return;
  const response = await fetch(`/v1/sessions/${session}/invitations`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${state.token}` },
  }).catch(() => null);
  const body = await response?.json().catch(() => ({}));
  if (!response?.ok) return toast(body?.error ? `No invitation: ${body.error}` : 'Could not reach the server.');
  el.invitationText.textContent = `A token for ${body.name}: it opens this session only, until ${new Date(body.expires_at / 1000).toLocaleTimeString()}. It is shown once.`;
  el.invitationToken.value = body.token;
  el.invitation.hidden = false;
  el.invitationToken.select();
});

$('#invitation-copy').addEventListener('click', () => {
  navigator.clipboard?.writeText(el.invitationToken.value).then(
    () => toast('Copied.', 'info'),
    () => toast('Select the token and copy it by hand.'),
  );
});

$('#invitation-done').addEventListener('click', () => {
  el.invitationToken.value = '';
  el.invitation.hidden = true;
});

function onEnded(session, words) {
  if (session !== state.session) return;
  state.sessionEnded = true;
  el.endSession.hidden = true;
  el.invite.hidden = true;
  state.participants.clear();
  renderParticipants();
  renderWearerState();
  toast(words, 'info');
  refreshQueue();
}

el.tools.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-tool]');
  if (button) act(button.dataset.tool);
});

const SHORTCUTS = { a: 'arrow', c: 'circle', i: 'ink', t: 'text', f: 'freeze', x: 'clear', s: 'snapshot', delete: 'erase', backspace: 'erase' };

document.addEventListener('keydown', (event) => {
  if (el.app.hidden || event.target.closest?.('input, textarea, select')) return;
  const key = event.key.toLowerCase();
  if (!el.confirm.hidden) {
    if (key === 'enter' || key === 'escape') {
      event.preventDefault();
      answer(key === 'enter');
    }
    return;
  }
  if ((event.ctrlKey || event.metaKey) && key === 'z') {
    event.preventDefault();
    return undo();
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (zoomKey(event)) return event.preventDefault();
  if (key >= '1' && key <= String(PALETTE.length)) return setColour(Number(key) - 1);
  if (key === '[' || key === ']') return stepWidth(key === '[' ? -1 : 1);
  const tool = SHORTCUTS[key];
  if (!tool) return;
  event.preventDefault();
  act(tool);
});

// ---- sign-in ----

export function signOut(forgetField = true) {
  showView('assist');
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.sso) {
    state.sso = false;
    clearTimeout(state.ticketTimer);
    fetch('/v1/auth/logout', { method: 'POST' }).catch(() => {});
  }
  clearInterval(state.queueTimer);
  const link = state.link;
  state.link = null;
  state.welcomed = false;
  state.signedIn = false;
  link?.close?.();
  leaveLocal();
  state.token = null;
  el.app.hidden = true;
  el.signinView.hidden = false;
  if (forgetField) el.token.value = '';
  el.signinError.hidden = true;
  el.signinError.textContent = '';
}

el.signin.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = el.token.value.trim();
  if (!token) return;
  el.signinError.hidden = true;
  el.signinError.textContent = '';
  const old = state.link;
  state.link = null;
  old?.close?.();
  connect(token);
});

$('#signout').addEventListener('click', () => signOut());

// ---- single sign-on ----

// A page signed in by the company's identity provider holds a cookie the page cannot read;
// it trades it for a ticket, used like a token and renewed at half its life.
async function renewTicket() {
  const response = await fetch('/v1/auth/ticket', { method: 'POST' }).catch(() => null);
  if (!response?.ok) {
    if (state.sso && response?.status === 401) signOut(false);
    return false;
  }
  const ticket = await response.json();
  const first = !state.sso;
  state.sso = true;
  state.token = ticket.ticket;
  clearTimeout(state.ticketTimer);
  state.ticketTimer = setTimeout(renewTicket, (ticket.expires_in * 1000) / 2);
  if (first) connect(ticket.ticket, ticket.role === 'supervisor' ? P.Role.supervisor : P.Role.agent);
  return true;
}

async function start() {
  const params = new URLSearchParams(location.search);
  const failed = params.get('sso_error');
  if (failed) {
    history.replaceState(null, '', location.pathname);
    showSigninError(`Single sign-on failed: ${failed}`);
  }
  const config = await fetch('/v1/console/config')
    .then((r) => r.json())
    .catch(() => ({}));
  el.sso.hidden = !config.sso;
  if (config.sso && (await renewTicket())) return;
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) connect(saved);
}

start();
