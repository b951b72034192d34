// The open link to the relay, as the rest of the page uses it: send one control message.
// app.js opens and closes the link (state.link); this module only writes to it.

import * as P from './protocol.js';
import { state } from './ui.js';

export function send(message) {
  if (!state.link?.send) return false;
  state.link.send(P.encodeControl(message));
  return true;
}
