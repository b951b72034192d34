//! One connection as the relay sees it: from the handshake deadline to the sessions it
//! publishes or watches, with the media streams it is sending.

use std::collections::{BTreeSet, HashMap};

use farsight_protocol::control::Participant;
use farsight_protocol::{MediaDecoder, SessionId, StreamHeader};

use crate::TokenId;

#[derive(Debug)]
pub(crate) struct Member {
    pub state: State,
    /// Control messages handed to the transport and not yet written.
    pub backlog: usize,
    /// A browser: it may only watch.
    pub browser: bool,
    /// The unidirectional streams it opened, by transport id.
    pub streams: HashMap<u64, Ingest>,
}

#[derive(Debug)]
pub(crate) enum State {
    /// Connected; `Hello` is due by the handshake deadline.
    Greeting,
    Ready {
        participant: Participant,
        token: TokenId,
        standing: Standing,
    },
    /// Removed from every session, its transport told to close.
    Closing,
}

#[derive(Debug)]
pub(crate) enum Standing {
    /// A wearable whose session is being loaded (`resume` 0: created).
    Loading {
        resume: SessionId,
    },
    Publishing(SessionId),
    Watching {
        joined: BTreeSet<SessionId>,
        /// A session being loaded for a `Join`.
        joining: Option<SessionId>,
        /// The only session its token may join, when limited to one.
        limited_to: Option<SessionId>,
    },
}

/// A media stream from a wearable: decoded as it arrives.
#[derive(Debug, Default)]
pub(crate) struct Ingest {
    pub decoder: MediaDecoder,
    pub header: Option<StreamHeader>,
    /// Its key frame arrived and the group was opened.
    pub opened: bool,
    /// Refused: whatever else arrives on it is ignored.
    pub refused: bool,
}

impl Member {
    pub fn greeting(browser: bool) -> Self {
        Self {
            state: State::Greeting,
            backlog: 0,
            browser,
            streams: HashMap::new(),
        }
    }

    /// Is this session one the member publishes or has joined?
    pub fn is_member_of(&self, session: SessionId) -> bool {
        match &self.state {
            State::Ready { standing, .. } => match standing {
                Standing::Publishing(s) => *s == session,
                Standing::Watching { joined, .. } => joined.contains(&session),
                Standing::Loading { .. } => false,
            },
            _ => false,
        }
    }
}
