// What every part of the console shares: its elements, its state, what tests read, and
// toasts.

import * as P from './protocol.js';

export const $ = (selector) => document.querySelector(selector);
export const el = {
  signinView: $('#signin-view'),
  signin: $('#signin'),
  token: $('#token'),
  signinError: $('#signin-error'),
  sso: $('#sso'),
  app: $('#app'),
  me: $('#me'),
  sessionTitle: $('#session-title'),
  frozenBadge: $('#frozen-badge'),
  queue: $('#queue'),
  queueEmpty: $('#queue-empty'),
  participants: $('#participants'),
  tools: $('#tools'),
  stage: $('#stage'),
  frame: $('#frame'),
  placeholder: $('#placeholder'),
  wearerState: $('#wearer-state'),
  confirm: $('#confirm'),
  confirmYes: $('#confirm-yes'),
  endSession: $('#end-session'),
  invite: $('#invite'),
  invitation: $('#invitation'),
  invitationText: $('#invitation-text'),
  invitationToken: $('#invitation-token'),
  markList: $('#mark-list'),
  width: $('#width'),
  widthValue: $('#width-value'),
  confirmText: $('#confirm-text'),
  video: $('#video'),
  marks: $('#marks'),
  labelInput: $('#label-input'),
  stats: $('#stats'),
  toast: $('#toast'),
};

export const state = {
  token: null,
  link: null, // the open link to the relay (transport.js), or a placeholder while it opens
  welcomed: false, // this connection got Welcome
  signedIn: false, // some connection with this token did: a drop is retried, not shown as a refusal
  role: P.Role.agent,
  me: null, // {id, name}
  session: 0, // the session asked to join
  joined: 0, // the session the relay confirmed (Joined); media before it is from an earlier join
  participants: new Map(),
  wearerLeft: false, // the session's wearer is not connected
  sessionEnded: false, // someone ended the session shown, for everyone
  confirmed: null, // what the confirmation bar does on yes
  sso: false, // signed in by single sign-on: state.token is a ticket, renewed by ticketTimer
  ticketTimer: 0,
  marks: new Map(), // id → mark (see addMark)
  pendingAnchors: new Map(), // AnchorResolved that arrived before its Annotate
  ownOrder: [],
  style: { rgba: 0xff3b30ff, width: 4 }, // what new marks are drawn with
  lastClear: null, // the marks the last Clear removed, until Ctrl+Z or a new mark
  selected: null,
  tool: 'arrow',
  frozen: false,
  current: null, // the displayed frame: {frame, capture, pose, intrinsics}
  reconnectDelay: 1000,
  queueTimer: 0,
};

// What tests read; kept as plain data.
// drawDelays: capture → drawn on the canvas; paintDelays: capture → painted (the animation
// frame after that), µs, for the benchmark. The two differ by where the display's refresh
// happens to fall, which the stream does not control.
export const exposed = { marks: [], lastAnnotate: null, drawDelays: [], paintDelays: [] };
window.farsightConsole = exposed;

export function toast(message, kind = 'error') {
  const item = document.createElement('div');
  item.className = `item ${kind}`;
  item.textContent = message;
  el.toast.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 6000 : 3500);
}
