//! Annotations with their resolved anchors, so a rejoining agent or a resumed wearable gets
//! back every mark still on screen.

use farsight_protocol::control::DepthSource;
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, FrameSeq, ParticipantId, SessionId, Style,
};
use sqlx::Row;

use super::{Store, StoreError, now_micros};

#[derive(Clone, Debug, PartialEq)]
pub struct StoredAnnotation {
    pub annotate: Annotate,
    pub anchor: Option<(DepthSource, Vec<[f32; 3]>)>,
}

fn kind_from(v: i64) -> Result<AnnotationKind, StoreError> {
    Ok(match v {
        1 => AnnotationKind::Arrow,
        2 => AnnotationKind::Circle,
        3 => AnnotationKind::Ink,
        4 => AnnotationKind::Text,
        other => return Err(StoreError::Corrupt(format!("annotation kind {other}"))),
    })
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl Store {
    /// Saves a new mark; a repeated id replaces the earlier mark.
    pub async fn save_annotation(&self, a: &Annotate) -> Result<(), StoreError> {
        let points = serde_json::to_string(&a.points).expect("floats serialise");
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM annotations WHERE session_id = $1 AND id = $2")
            .bind(a.session.0 as i64)
            .bind(a.id.0 as i64)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO annotations \
             (session_id, id, author, kind, frame, points, rgba, width, label, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(a.session.0 as i64)
        .bind(a.id.0 as i64)
        .bind(a.author.0 as i64)
        .bind(a.kind as i64)
        .bind(a.frame.0 as i64)
        .bind(points)
        .bind(a.style.rgba as i64)
        .bind(a.style.width as f64)
        .bind(&a.text)
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records where the wearable anchored a mark; false if no such live mark exists.
    pub async fn resolve_anchor(
        &self,
        session: SessionId,
        id: AnnotationId,
        depth: DepthSource,
        points: &[[f32; 3]],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE annotations SET world_points = $1, depth_source = $2 \
             WHERE session_id = $3 AND id = $4 AND erased_at IS NULL",
        )
        .bind(serde_json::to_string(points).expect("floats serialise"))
        .bind(depth as i64)
        .bind(session.0 as i64)
        .bind(id.0 as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn erase_annotation(
        &self,
        session: SessionId,
        id: AnnotationId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE annotations SET erased_at = $1 \
             WHERE session_id = $2 AND id = $3 AND erased_at IS NULL",
        )
        .bind(now_micros())
        .bind(session.0 as i64)
        .bind(id.0 as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn clear_annotations(&self, session: SessionId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE annotations SET erased_at = $1 WHERE session_id = $2 AND erased_at IS NULL",
        )
        .bind(now_micros())
        .bind(session.0 as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The marks of a session not erased, oldest first.
    pub async fn annotations(
        &self,
        session: SessionId,
    ) -> Result<Vec<StoredAnnotation>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, author, kind, frame, points, rgba, width, label, world_points, \
             depth_source FROM annotations WHERE session_id = $1 AND erased_at IS NULL \
             ORDER BY created_at, id",
        )
        .bind(session.0 as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let world: Option<String> = row.try_get("world_points")?;
                let depth: Option<i64> = row.try_get("depth_source")?;
                let anchor = match (world, depth) {
                    (Some(w), Some(d)) => Some((
                        if d == DepthSource::MedianPlane as i64 {
                            DepthSource::MedianPlane
                        } else {
                            DepthSource::Measured
                        },
                        json(&w, "world points")?,
                    )),
                    _ => None,
                };
                let width: f64 = row.try_get("width")?;
                Ok(StoredAnnotation {
                    annotate: Annotate {
                        session,
                        id: AnnotationId(row.try_get::<i64, _>("id")? as u64),
                        author: ParticipantId(row.try_get::<i64, _>("author")? as u64),
                        kind: kind_from(row.try_get("kind")?)?,
                        frame: FrameSeq(row.try_get::<i64, _>("frame")? as u64),
                        points: json(&row.try_get::<String, _>("points")?, "points")?,
                        style: Style {
                            rgba: row.try_get::<i64, _>("rgba")? as u32,
                            width: width as f32,
                        },
                        text: row.try_get("label")?,
                    },
                    anchor,
                })
            })
            .collect()
    }
}
