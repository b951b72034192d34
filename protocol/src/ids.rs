//! Newtypes for identities and units, so a function never takes two bare `u64`s.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// An assist session: one publishing wearable, any number of watchers.
    SessionId(u64)
);
id_type!(
    /// One connection's identity inside the server, shown to the other participants.
    ParticipantId(u64)
);
id_type!(
    /// An annotation, chosen by the agent that draws it; unique within a session.
    AnnotationId(u64)
);
id_type!(
    /// Sequence number of a group of pictures; strictly increasing per track.
    GroupSeq(u64)
);
id_type!(
    /// Sequence number of a frame; strictly increasing per track across groups.
    FrameSeq(u64)
);
id_type!(
    /// A media track within a session (0 is the main camera).
    TrackId(u32)
);
id_type!(
    /// Microseconds since the Unix epoch (capture and display timestamps).
    Micros(u64)
);

impl Micros {
    /// The wall clock now. The only clock read in this crate, for callers' convenience.
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(since.as_micros() as u64)
    }
}
