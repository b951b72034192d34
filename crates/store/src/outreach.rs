//! Outreach storage: user profiles, usage events with their feature updates, fitted models.
//!
//! Ingest is one transaction per chunk of rows: insert the events (duplicates by id are
//! skipped, so retries are idempotent), then fold only the new ones into the stored feature
//! state of their (user, topic). Readers never see events without their features.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use sqlx::Row;

use farsight_outreach::event::{Event, EventKind, SdkVersion, Tier, UserProfile};
use farsight_outreach::features::{Signal, TopicState};
use farsight_outreach::ids::Millis;
use farsight_outreach::predict::TopicRow;

use crate::{Store, StoreError, now_micros};

/// Rows per statement: 7 parameters each stays far below SQLite's 32 766 and PostgreSQL's
/// 65 535 bound parameters.
const CHUNK: usize = 500;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestCounts {
    pub accepted: usize,
    pub duplicates: usize,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StoredModel {
    pub id: i64,
    pub created_at: i64,
    pub active: bool,
    pub metrics: Value,
    #[serde(skip)]
    pub model: String,
}

/// A user's SDK reports in one batch, reduced to what the users table keeps.
struct SdkReport<'a> {
    user: &'a str,
    version: String,
    /// When the final version was first reported in this batch's run of it.
    since: i64,
    last_ts: i64,
    /// The version changed within the batch itself.
    changed: bool,
}

fn bind_event<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    e: &'q Event,
    received: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(&e.id)
        .bind(&e.user)
        .bind(e.ts)
        .bind(e.kind.as_str())
        .bind(&e.topic)
        .bind(Value::Object(e.attrs.clone()).to_string())
        .bind(received)
}

fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn decode_state(text: &str) -> Result<TopicState, StoreError> {
    TopicState::decode(text).ok_or_else(|| StoreError::Corrupt(format!("feature state {text:?}")))
}

fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

impl Store {
    /// Creates or replaces user profiles, keeping what events taught (the SDK version).
    pub async fn upsert_users(&self, profiles: &[UserProfile]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for p in profiles {
            sqlx::query(
                "INSERT INTO users (id, tier, tz, phone, consent, do_not_call, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET tier = excluded.tier, tz = excluded.tz, \
                 phone = excluded.phone, consent = excluded.consent, \
                 do_not_call = excluded.do_not_call, updated_at = excluded.updated_at",
            )
            .bind(&p.user)
            .bind(p.tier.as_str())
            .bind(&p.tz)
            .bind(p.phone.as_deref())
            .bind(p.consent as i64)
            .bind(p.do_not_call as i64)
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserProfile>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tier, tz, phone, consent, do_not_call FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(UserProfile {
                user: row.try_get("id")?,
                tier: Tier::parse(&row.try_get::<String, _>("tier")?).unwrap_or_default(),
                tz: row.try_get("tz")?,
                phone: row.try_get("phone")?,
                consent: row.try_get::<i64, _>("consent")? != 0,
                do_not_call: row.try_get::<i64, _>("do_not_call")? != 0,
            })
        })
        .transpose()
    }

    /// Stores events and updates the features of the new ones, in one transaction.
    /// Events already stored (same id) are counted as duplicates and change nothing.
    pub async fn ingest_events(&self, events: &[Event]) -> Result<IngestCounts, StoreError> {
        let received = now_micros();
        let mut tx = self.pool.begin().await?;
        let mut inserted = std::collections::HashSet::new();
        for chunk in events.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO events (id, user_id, ts, kind, topic, attrs, received_at) VALUES {} \
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                placeholders(chunk.len(), 7)
            );
            let mut insert = sqlx::query(&sql);
            for e in chunk {
                insert = bind_event(insert, e, received);
            }
            for row in insert.fetch_all(&mut *tx).await? {
                inserted.insert(row.try_get::<String, _>("id")?);
            }
        }
        // A repeated id inside one batch is stored once; its first occurrence counts.
        let fresh: Vec<&Event> = events.iter().filter(|e| inserted.remove(&e.id)).collect();

        self.record_sdk_versions(&mut tx, &fresh).await?;
        self.update_features(&mut tx, &fresh).await?;
        tx.commit().await?;
        Ok(IngestCounts {
            accepted: fresh.len(),
            duplicates: events.len() - fresh.len(),
        })
    }

    /// Creates a row for users known only from their events (profiles may come later).
    async fn ensure_users(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        users: &[&str],
    ) -> Result<(), StoreError> {
        let now = now_micros();
        for chunk in users.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO users (id, updated_at) VALUES {} ON CONFLICT (id) DO NOTHING",
                placeholders(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql);
            for u in chunk {
                q = q.bind(*u).bind(now);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Records each user's newest SDK report in one statement per chunk of users. Within a
    /// batch, the version a user ends on counts from the first of its reports in a row; a
    /// report older than the stored one changes nothing, whatever the arrival order.
    async fn record_sdk_versions(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        events: &[&Event],
    ) -> Result<(), StoreError> {
        let mut reports: BTreeMap<&str, Vec<(i64, SdkVersion)>> = BTreeMap::new();
        for e in events.iter().filter(|e| e.kind == EventKind::SdkVersion) {
            if let Some(v) = e.sdk_version() {
                reports.entry(&e.user).or_default().push((e.ts, v));
            }
        }
        let latest: Vec<SdkReport> = reports
            .into_iter()
            .map(|(user, mut r)| {
                r.sort();
                let &(last_ts, version) = r.last().expect("at least one report");
                let run = r.iter().rev().take_while(|(_, v)| *v == version).count();
                SdkReport {
                    user,
                    version: version.to_string(),
                    since: r[r.len() - run].0,
                    last_ts,
                    changed: run < r.len(),
                }
            })
            .collect();
        let users: Vec<&str> = latest.iter().map(|r| r.user).collect();
        self.ensure_users(tx, &users).await?;
        for chunk in latest.chunks(CHUNK) {
            // VALUES columns are column1… on both SQLite and PostgreSQL.
            let sql = format!(
                "UPDATE users SET \
                 sdk_upgraded_at = CASE WHEN v.column5 = 1 \
                   OR (users.sdk_version IS NOT NULL AND users.sdk_version <> v.column2) \
                   THEN v.column3 ELSE users.sdk_upgraded_at END, \
                 sdk_version = v.column2, sdk_seen_at = v.column4 \
                 FROM (VALUES {}) AS v WHERE users.id = v.column1 AND users.sdk_seen_at <= v.column4",
                placeholders(chunk.len(), 5)
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(r.user)
                    .bind(&r.version)
                    .bind(r.since)
                    .bind(r.last_ts)
                    .bind(i64::from(r.changed));
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn update_features(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        events: &[&Event],
    ) -> Result<(), StoreError> {
        let mut by_pair: BTreeMap<(&str, &str), Vec<&Event>> = BTreeMap::new();
        for e in events {
            if Signal::of(e.kind).is_some() {
                by_pair.entry((&e.user, &e.topic)).or_default().push(e);
            }
        }
        let pairs: Vec<_> = by_pair.into_iter().collect();
        for chunk in pairs.chunks(CHUNK) {
            // A join against the listed pairs lets PostgreSQL hash-join instead of testing
            // a long OR chain.
            let sql = format!(
                "SELECT f.user_id, f.topic, f.state FROM topic_features f \
                 JOIN (VALUES {}) AS v ON f.user_id = v.column1 AND f.topic = v.column2",
                placeholders(chunk.len(), 2)
            );
            let mut select = sqlx::query(&sql);
            for ((user, topic), _) in chunk {
                select = select.bind(*user).bind(*topic);
            }
            let mut states: HashMap<(String, String), TopicState> = HashMap::new();
            for row in select.fetch_all(&mut **tx).await? {
                let state: String = row.try_get("state")?;
                states.insert(
                    (row.try_get("user_id")?, row.try_get("topic")?),
                    decode_state(&state)?,
                );
            }

            let sql = format!(
                "INSERT INTO topic_features (user_id, topic, state, reference_ms) VALUES {} \
                 ON CONFLICT (user_id, topic) DO UPDATE SET state = excluded.state, \
                 reference_ms = excluded.reference_ms",
                placeholders(chunk.len(), 4)
            );
            let mut upsert = sqlx::query(&sql);
            for ((user, topic), pair_events) in chunk {
                let mut state = states
                    .remove(&(user.to_string(), topic.to_string()))
                    .unwrap_or_default();
                for e in pair_events {
                    if let Some(signal) = Signal::of(e.kind) {
                        state.observe(signal, e.ts);
                    }
                }
                upsert = upsert
                    .bind(*user)
                    .bind(*topic)
                    .bind(state.encode())
                    .bind(state.reference_ms);
            }
            upsert.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Inserts the same rows as plain events, with no feature work, in one transaction:
    /// the benchmark's reference.
    pub async fn insert_events_plain(&self, events: &[Event]) -> Result<(), StoreError> {
        let received = now_micros();
        let mut tx = self.pool.begin().await?;
        for chunk in events.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO events (id, user_id, ts, kind, topic, attrs, received_at) VALUES {} \
                 ON CONFLICT (id) DO NOTHING",
                placeholders(chunk.len(), 7)
            );
            let mut insert = sqlx::query(&sql);
            for e in chunk {
                insert = bind_event(insert, e, received);
            }
            insert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every stored (user, topic) state with the user's tier and SDK version.
    pub async fn topic_rows(&self) -> Result<Vec<TopicRow>, StoreError> {
        self.topic_rows_where("1 = 1", None).await
    }

    /// One user's rows, for their needs alone.
    pub async fn user_topic_rows(&self, user: &str) -> Result<Vec<TopicRow>, StoreError> {
        self.topic_rows_where("f.user_id = $1", Some(user)).await
    }

    async fn topic_rows_where(
        &self,
        filter: &str,
        user: Option<&str>,
    ) -> Result<Vec<TopicRow>, StoreError> {
        let sql = format!(
            "SELECT f.user_id, f.topic, f.state, COALESCE(u.tier, 'free') AS tier, \
             u.sdk_version, COALESCE(u.sdk_upgraded_at, 0) AS sdk_upgraded_at \
             FROM topic_features f LEFT JOIN users u ON u.id = f.user_id WHERE {filter}"
        );
        let mut query = sqlx::query(&sql);
        if let Some(user) = user {
            query = query.bind(user);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                let sdk: Option<String> = row.try_get("sdk_version")?;
                Ok(TopicRow {
                    user: row.try_get("user_id")?,
                    topic: row.try_get("topic")?,
                    state: decode_state(&state)?,
                    tier: Tier::parse(&row.try_get::<String, _>("tier")?).unwrap_or_default(),
                    sdk_version: sdk.as_deref().and_then(SdkVersion::parse),
                    sdk_upgraded_at: row.try_get("sdk_upgraded_at")?,
                })
            })
            .collect()
    }

    /// The newest SDK version any user reported (the yardstick for "behind"), without
    /// loading every user's features.
    pub async fn newest_sdk_version(&self) -> Result<Option<SdkVersion>, StoreError> {
        let rows =
            sqlx::query("SELECT DISTINCT sdk_version FROM users WHERE sdk_version IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        let mut newest = None;
        for row in &rows {
            let text: String = row.try_get("sdk_version")?;
            newest = newest.max(SdkVersion::parse(&text));
        }
        Ok(newest)
    }

    /// All stored events in time order (model training replays them).
    pub async fn events_in_order(&self) -> Result<Vec<Event>, StoreError> {
        let rows =
            sqlx::query("SELECT id, user_id, ts, kind, topic, attrs FROM events ORDER BY ts, id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                let attrs: String = row.try_get("attrs")?;
                Ok(Event {
                    id: row.try_get("id")?,
                    user: row.try_get("user_id")?,
                    ts: row.try_get("ts")?,
                    kind: EventKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("event kind {kind}")))?,
                    topic: row.try_get("topic")?,
                    attrs: serde_json::from_str(&attrs).map_err(corrupt("event attrs"))?,
                })
            })
            .collect()
    }

    pub async fn event_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Stores a fitted model and makes it the active one.
    pub async fn save_model(&self, model: &str, metrics: &Value) -> Result<i64, StoreError> {
        let id = super::new_id();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE models SET active = 0 WHERE active = 1")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO models (id, created_at, active, metrics, model) VALUES ($1, $2, 1, $3, $4)",
        )
        .bind(id)
        .bind(now_micros())
        .bind(metrics.to_string())
        .bind(model)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    fn model_row(row: &sqlx::any::AnyRow) -> Result<StoredModel, StoreError> {
        let metrics: String = row.try_get("metrics")?;
        Ok(StoredModel {
            id: row.try_get("id")?,
            created_at: row.try_get("created_at")?,
            active: row.try_get::<i64, _>("active")? != 0,
            metrics: serde_json::from_str(&metrics).map_err(corrupt("model metrics"))?,
            model: row.try_get("model")?,
        })
    }

    pub async fn active_model(&self) -> Result<Option<StoredModel>, StoreError> {
        let row = sqlx::query(
            "SELECT id, created_at, active, metrics, model FROM models WHERE active = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::model_row).transpose()
    }

    pub async fn models(&self) -> Result<Vec<StoredModel>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, created_at, active, metrics, model FROM models ORDER BY created_at DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::model_row).collect()
    }
}

impl Store {
    /// Every user's plan tier, for replaying history.
    pub async fn user_tiers(&self) -> Result<HashMap<String, Tier>, StoreError> {
        let rows = sqlx::query("SELECT id, tier FROM users")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let tier: String = row.try_get("tier")?;
                Ok((row.try_get("id")?, Tier::parse(&tier).unwrap_or_default()))
            })
            .collect()
    }

    /// The time of the newest event stored: "now" for predictions on recorded history.
    pub async fn newest_event(&self) -> Result<Option<Millis>, StoreError> {
        let row = sqlx::query("SELECT MAX(ts) AS ts FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("ts")?.map(Millis))
    }

    /// One user's plan tier; `None` for a user never imported.
    pub async fn user_tier(&self, user: &str) -> Result<Option<Tier>, StoreError> {
        let row = sqlx::query("SELECT tier FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Tier::parse(&row.try_get::<String, _>("tier")?)),
            None => Ok(None),
        }
    }
}
