// What the server's errors mean to the person at the console, and what to do about them.
// The server's own words go to the browser's log for whoever looks into it.

import * as P from './protocol.js';

const TOKEN_REFUSALS = {
  'unknown token': 'This token is not known. Check that it was pasted whole, or ask your administrator for one.',
  'the token was revoked': 'This token was revoked. Ask your administrator for a new one.',
  'the token has expired': 'This token has expired. Ask your administrator for a new one.',
};

const UNREADABLE =
  'The server could not read what this page sent. Reload the page; if it happens again, tell your administrator.';

/** A sentence for an `Error` message; `signingIn`: it answered the page's `Hello`. */
export function explain({ code, message = '' }, signingIn = false) {
  console.info(`server error ${code}: ${message}`);
  const E = P.ErrorCode;
  switch (code) {
    case E.Unauthorized: {
      if (TOKEN_REFUSALS[message]) return TOKEN_REFUSALS[message];
      const wait = message.match(/^too many failed sign-ins from this address: wait (\d+) s$/);
      if (wait) return `Too many failed sign-ins from this network. Wait ${wait[1]} s, then try again.`;
      const only = message.match(/^the token is limited to session (\d+)$/);
      if (only) return `Your token opens session ${only[1]} only.`;
      return 'The server refused this token.';
    }
    case E.WrongRole:
      return signingIn
        ? 'This token is not for the console: it was made for a wearable or a service. Sign in with an agent or supervisor token.'
        : 'Your role may not do that.';
    case E.NoSuchSession:
      return 'That session has ended or does not exist. Pick another from the queue.';
    case E.NotJoined:
      return 'You are no longer in that session. Join it again from the queue.';
    case E.Internal:
      return 'The server cannot reach its database just now. Try again in a minute; if it goes on, tell your administrator.';
    case E.TooSlow:
      return 'This page fell too far behind the server and was disconnected.';
    case E.UnsupportedVersion:
      return 'This console is older than the server. Reload the page.';
    case E.NoSuchAnnotation:
      return 'That mark is gone already.';
    case E.Malformed:
    case E.TooLarge:
    case E.UnexpectedMessage:
      return UNREADABLE;
    default:
      return message || `The server reported error ${code}.`;
  }
}
