//! The audit log: what people did, appended and never changed, removed only by age.

use farsight_protocol::{ParticipantId, SessionId};
use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, new_id, now_micros};

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    SignIn,
    SignInRefused,
    SignOut,
    Join,
    Leave,
    Annotate,
    Erase,
    Clear,
    End,
    TokenCreate,
    TokenRotate,
    TokenRevoke,
}

impl AuditAction {
    const ALL: [AuditAction; 12] = [
        Self::SignIn,
        Self::SignInRefused,
        Self::SignOut,
        Self::Join,
        Self::Leave,
        Self::Annotate,
        Self::Erase,
        Self::Clear,
        Self::End,
        Self::TokenCreate,
        Self::TokenRotate,
        Self::TokenRevoke,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::SignInRefused => "sign_in_refused",
            Self::SignOut => "sign_out",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Annotate => "annotate",
            Self::Erase => "erase",
            Self::Clear => "clear",
            Self::End => "end",
            Self::TokenCreate => "token_create",
            Self::TokenRotate => "token_rotate",
            Self::TokenRevoke => "token_revoke",
        }
    }
}

/// Who acted: a token (with its name then), or someone without one.
#[derive(Clone, Debug, PartialEq)]
pub struct Actor {
    pub token: Option<i64>,
    pub name: String,
}

/// One line of the log.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    /// µs since the Unix epoch.
    pub at: i64,
    pub token: Option<i64>,
    pub actor: String,
    pub action: AuditAction,
    pub session: Option<i64>,
    pub detail: String,
}

impl Store {
    /// Appends what `actor` did.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: AuditAction,
        session: Option<SessionId>,
        detail: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (id, at, token_id, actor, action, session_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind(now_micros())
        .bind(actor.token)
        .bind(&actor.name)
        .bind(action.as_str())
        .bind(session.map(|s| s.0 as i64))
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Appends what a participant of `session` did, named as it joined.
    pub async fn audit_participant(
        &self,
        session: SessionId,
        participant: ParticipantId,
        action: AuditAction,
        detail: &str,
    ) -> Result<(), StoreError> {
        let row = sqlx::query(
            "SELECT token_id, name FROM participants WHERE session_id = $1 AND id = $2",
        )
        .bind(session.0 as i64)
        .bind(participant.0 as i64)
        .fetch_optional(&self.pool)
        .await?;
        let actor = match row {
            Some(row) => Actor {
                token: row.try_get("token_id")?,
                name: row.try_get("name")?,
            },
            None => Actor {
                token: None,
                name: format!("participant {participant}"),
            },
        };
        self.audit(&actor, action, Some(session), detail).await
    }

    /// The newest `limit` entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, token_id, actor, action, session_id, detail FROM audit \
             ORDER BY at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let action: String = row.try_get("action")?;
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    token: row.try_get("token_id")?,
                    actor: row.try_get("actor")?,
                    action: AuditAction::ALL
                        .into_iter()
                        .find(|a| a.as_str() == action)
                        .ok_or_else(|| StoreError::Corrupt(format!("audit action {action:?}")))?,
                    session: row.try_get("session_id")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }

    /// Removes the entries older than `before` (µs since the Unix epoch); how many.
    pub async fn prune_audit(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
