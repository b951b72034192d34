//! The relay core's store work: loading a session with its marks, and each write it asks for.

use farsight_protocol::SessionId;
use farsight_relay::{Anchor, Load, Mark, Persist, StoredSession, TokenId};

use farsight_store::{Actor, AuditAction, SessionRecord, Store, StoreError};

pub async fn load(store: &Store, load: Load) -> Result<Option<StoredSession>, StoreError> {
    let record = match load {
        Load::NewSession { owner, name } => store.create_session(owner.0, &name).await?,
        Load::Session(id) => match store.session(id).await? {
            Some(record) => record,
            None => return Ok(None),
        },
    };
    let id = SessionId(record.id as u64);
    let marks = store
        .annotations(id)
        .await?
        .into_iter()
        .map(|a| Mark {
            annotate: a.annotate,
            anchor: a.anchor.map(|(depth, points)| Anchor { depth, points }),
        })
        .collect();
    Ok(Some(stored(record, marks)))
}

fn stored(record: SessionRecord, marks: Vec<Mark>) -> StoredSession {
    StoredSession {
        id: SessionId(record.id as u64),
        name: record.name,
        owner: TokenId(record.owner_token),
        ended: record.ended_at.is_some(),
        marks,
    }
}

/// Carries out one write, recording who did it in the audit log first: what is not
/// recorded is not done.
pub async fn apply(store: &Store, p: Persist) -> Result<(), StoreError> {
    match p {
        Persist::Joined {
            session,
            participant,
            token,
        } => {
            let actor = Actor {
                token: Some(token.0),
                name: participant.name.clone(),
            };
            let detail = format!("as {}", participant.role.as_str());
            store
                .audit(&actor, AuditAction::Join, Some(session), &detail)
                .await?;
            store.add_participant(session, &participant, token.0).await
        }
        Persist::Left {
            session,
            participant,
        } => {
            store
                .audit_participant(session, participant, AuditAction::Leave, "")
                .await?;
            store.participant_left(session, participant).await
        }
        Persist::Annotation(a) => {
            let detail = format!("{:?} mark {}", a.kind, a.id).to_lowercase();
            store
                .audit_participant(a.session, a.author, AuditAction::Annotate, &detail)
                .await?;
            store.save_annotation(&a).await
        }
        Persist::Anchor {
            session,
            id,
            depth,
            points,
        } => store
            .resolve_anchor(session, id, depth, &points)
            .await
            .map(drop),
        Persist::Erase { session, id, by } => {
            let detail = format!("mark {id}");
            store
                .audit_participant(session, by, AuditAction::Erase, &detail)
                .await?;
            store.erase_annotation(session, id).await
        }
        Persist::Ended { session, by } => {
            store
                .audit_participant(session, by, AuditAction::End, "for everyone")
                .await?;
            store.end_session(session).await
        }
        Persist::Clear { session, by } => {
            store
                .audit_participant(session, by, AuditAction::Clear, "every mark")
                .await?;
            store.clear_annotations(session).await
        }
        Persist::LastGroup { session, group } => {
            // Only lets a resumed stream keep counting up: not worth a connection.
            if let Err(e) = store.set_last_group(session, group.0).await {
                tracing::warn!(%session, error = %e, "could not record last group");
            }
            Ok(())
        }
    }
}
