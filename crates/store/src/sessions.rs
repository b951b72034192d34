//! Assist sessions and who took part in them.

use farsight_protocol::control::Participant;
use farsight_protocol::{ParticipantId, SessionId};
use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, new_id, now_micros};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SessionRecord {
    pub id: i64,
    pub owner_token: i64,
    pub name: String,
    pub created_at: i64,
    /// The last group the wearable published, so a resumed stream keeps counting up.
    pub last_group: i64,
    pub ended_at: Option<i64>,
}

const COLUMNS: &str = "id, owner_token, name, created_at, last_group, ended_at";

fn record(row: &sqlx::any::AnyRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id: row.try_get("id")?,
        owner_token: row.try_get("owner_token")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        last_group: row.try_get("last_group")?,
        ended_at: row.try_get("ended_at")?,
    })
}

impl Store {
    pub async fn create_session(
        &self,
        owner_token: i64,
        name: &str,
    ) -> Result<SessionRecord, StoreError> {
        let rec = SessionRecord {
            id: new_id(),
            owner_token,
            name: name.to_string(),
            created_at: now_micros(),
            last_group: 0,
            ended_at: None,
        };
        sqlx::query(
            "INSERT INTO sessions (id, owner_token, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(rec.id)
        .bind(rec.owner_token)
        .bind(&rec.name)
        .bind(rec.created_at)
        .execute(&self.pool)
        .await?;
        Ok(rec)
    }

    pub async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions WHERE id = $1"))
            .bind(id.0 as i64)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Sessions not ended, newest first.
    /// Marks a session ended: it leaves the queue and cannot be joined or resumed.
    pub async fn end_session(&self, id: SessionId) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
            .bind(now_micros())
            .bind(id.0 as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn open_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE ended_at IS NULL ORDER BY created_at DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    pub async fn set_last_group(&self, id: SessionId, group: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_group = $1 WHERE id = $2 AND last_group < $1")
            .bind(group as i64)
            .bind(id.0 as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn add_participant(
        &self,
        session: SessionId,
        participant: &Participant,
        token_id: i64,
    ) -> Result<(), StoreError> {
        // A watcher that left and joins again on the same connection is the same
        // participant: its row is reopened.
        sqlx::query(
            "INSERT INTO participants (id, session_id, token_id, role, name, joined_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (session_id, id) DO UPDATE SET joined_at = excluded.joined_at, \
             left_at = NULL",
        )
        .bind(participant.id.0 as i64)
        .bind(session.0 as i64)
        .bind(token_id)
        .bind(participant.role.as_str())
        .bind(&participant.name)
        .bind(now_micros())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn participant_left(
        &self,
        session: SessionId,
        id: ParticipantId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE participants SET left_at = $1 \
             WHERE session_id = $2 AND id = $3 AND left_at IS NULL",
        )
        .bind(now_micros())
        .bind(session.0 as i64)
        .bind(id.0 as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many people have taken part in a session (all roles, including those who left).
    pub async fn participant_count(&self, session: SessionId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM participants WHERE session_id = $1")
            .bind(session.0 as i64)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}
