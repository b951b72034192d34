//! Who may send what: one pure table of role × message × standing in the session named,
//! giving either permission or the typed error the sender gets. Nothing else in the relay
//! decides authorisation.

use farsight_protocol::{ControlMessage, ErrorCode, Role};

/// Whether the session a message names is one the sender takes part in: the session a
/// wearable publishes, or one a watcher has joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The sender publishes or has joined the session named.
    Member,
    /// It does not.
    Stranger,
}

/// Every message type a client can send after `Welcome`, as the table sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Hello,
    Welcome,
    Error,
    Join,
    Joined,
    Leave,
    End,
    Presence,
    Annotate,
    AnchorResolved,
    Erase,
    Clear,
    Freeze,
    Unfreeze,
    KeyframeRequest,
    BitrateHint,
}

impl MessageKind {
    pub const ALL: [MessageKind; 16] = [
        Self::Hello,
        Self::Welcome,
        Self::Error,
        Self::Join,
        Self::Joined,
        Self::Leave,
        Self::End,
        Self::Presence,
        Self::Annotate,
        Self::AnchorResolved,
        Self::Erase,
        Self::Clear,
        Self::Freeze,
        Self::Unfreeze,
        Self::KeyframeRequest,
        Self::BitrateHint,
    ];

    pub fn of(msg: &ControlMessage) -> Self {
        use ControlMessage as M;
        match msg {
            M::Hello { .. } => Self::Hello,
            M::Welcome { .. } => Self::Welcome,
            M::Error { .. } => Self::Error,
            M::Join { .. } => Self::Join,
            M::Joined { .. } => Self::Joined,
            M::Leave { .. } => Self::Leave,
            M::End { .. } => Self::End,
            M::Presence { .. } => Self::Presence,
            M::Annotate(_) => Self::Annotate,
            M::AnchorResolved { .. } => Self::AnchorResolved,
            M::Erase { .. } => Self::Erase,
            M::Clear { .. } => Self::Clear,
            M::Freeze { .. } => Self::Freeze,
            M::Unfreeze { .. } => Self::Unfreeze,
            M::KeyframeRequest { .. } => Self::KeyframeRequest,
            M::BitrateHint { .. } => Self::BitrateHint,
        }
    }
}

/// The table. The role is checked before the scope: a wearable sending a watcher's message
/// is `WrongRole` whatever session it names. `Join` is allowed to a watcher in either scope
/// (joining is how a stranger becomes a member).
pub fn authorize(role: Role, kind: MessageKind, scope: Scope) -> Result<(), ErrorCode> {
    use MessageKind as K;
    let wearable = role == Role::Wearable;
    let allowed_role = match kind {
        // Only the server sends these (Hello only once, before Welcome).
        K::Hello | K::Welcome | K::Error | K::Joined | K::Presence => {
            return Err(ErrorCode::UnexpectedMessage);
        }
        // Only the relay asks the wearable for a bit rate.
        K::BitrateHint => false,
        K::Join | K::Leave | K::Annotate | K::Freeze | K::Unfreeze | K::KeyframeRequest => {
            !wearable
        }
        K::AnchorResolved => wearable,
        // Anyone in the session may end it for everyone.
        K::Erase | K::Clear | K::End => true,
    };
    if !allowed_role {
        return Err(ErrorCode::WrongRole);
    }
    match (kind, scope) {
        (K::Join, _) | (_, Scope::Member) => Ok(()),
        (_, Scope::Stranger) => Err(ErrorCode::NotJoined),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorCode::*;
    use MessageKind as K;

    /// Every cell of the table, written out: (kind, wearable, watcher) for a member scope,
    /// then the same for a stranger scope.
    #[test]
    fn every_cell_of_the_table() {
        type Cell = Result<(), ErrorCode>;
        let ok: Cell = Ok(());
        let cells: [(K, [Cell; 2], [Cell; 2]); 16] = [
            (
                K::Hello,
                [Err(UnexpectedMessage); 2],
                [Err(UnexpectedMessage); 2],
            ),
            (
                K::Welcome,
                [Err(UnexpectedMessage); 2],
                [Err(UnexpectedMessage); 2],
            ),
            (
                K::Error,
                [Err(UnexpectedMessage); 2],
                [Err(UnexpectedMessage); 2],
            ),
            (
                K::Joined,
                [Err(UnexpectedMessage); 2],
                [Err(UnexpectedMessage); 2],
            ),
            (
                K::Presence,
                [Err(UnexpectedMessage); 2],
                [Err(UnexpectedMessage); 2],
            ),
            (K::Join, [Err(WrongRole), ok], [Err(WrongRole), ok]),
            (
                K::Leave,
                [Err(WrongRole), ok],
                [Err(WrongRole), Err(NotJoined)],
            ),
            (
                K::Annotate,
                [Err(WrongRole), ok],
                [Err(WrongRole), Err(NotJoined)],
            ),
            (
                K::Freeze,
                [Err(WrongRole), ok],
                [Err(WrongRole), Err(NotJoined)],
            ),
            (
                K::Unfreeze,
                [Err(WrongRole), ok],
                [Err(WrongRole), Err(NotJoined)],
            ),
            (
                K::KeyframeRequest,
                [Err(WrongRole), ok],
                [Err(WrongRole), Err(NotJoined)],
            ),
            (
                K::AnchorResolved,
                [ok, Err(WrongRole)],
                [Err(NotJoined), Err(WrongRole)],
            ),
            (K::Erase, [ok, ok], [Err(NotJoined), Err(NotJoined)]),
            (K::Clear, [ok, ok], [Err(NotJoined), Err(NotJoined)]),
            (K::End, [ok, ok], [Err(NotJoined), Err(NotJoined)]),
            (K::BitrateHint, [Err(WrongRole); 2], [Err(WrongRole); 2]),
        ];
        assert_eq!(
            cells.iter().map(|c| c.0).collect::<Vec<_>>().len(),
            MessageKind::ALL.len()
        );
        for kind in MessageKind::ALL {
            let (_, member, stranger) = cells
                .iter()
                .find(|c| c.0 == kind)
                .unwrap_or_else(|| panic!("{kind:?} has no row"));
            for (scope, row) in [(Scope::Member, member), (Scope::Stranger, stranger)] {
                assert_eq!(
                    authorize(Role::Wearable, kind, scope),
                    row[0],
                    "wearable {kind:?} {scope:?}"
                );
                for watcher in [Role::Agent, Role::Supervisor] {
                    assert_eq!(
                        authorize(watcher, kind, scope),
                        row[1],
                        "{watcher:?} {kind:?} {scope:?}"
                    );
                }
            }
        }
    }
}
