//! Calls: the hold-out assignment, planned calls, claiming due ones for dialling (exactly
//! once, across scheduler nodes), and their outcomes.

use std::collections::HashMap;

use farsight_outreach::calls::{CallRecord, ClaimedCall, NewCall};
use farsight_outreach::event::{Tier, UserProfile};
use farsight_outreach::ids::{CallId, Millis, Topic, UserId};
use sqlx::Row;

use crate::{Backend, Store, StoreError, new_id};

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Store {
    /// Each user's hold-out group, drawing it with `draw` the first time a user is seen and
    /// keeping it forever after.
    pub async fn holdout_groups(
        &self,
        users: &[&str],
        draw: impl Fn(&str) -> bool,
    ) -> Result<HashMap<String, bool>, StoreError> {
        let mut tx = self.pool.begin().await?;
        for u in users {
            sqlx::query(
                "INSERT INTO outreach_groups (user_id, holdout, assigned_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id) DO NOTHING",
            )
            .bind(*u)
            .bind(i64::from(draw(u)))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let rows = sqlx::query("SELECT user_id, holdout FROM outreach_groups")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("user_id")?, r.try_get::<i64, _>("holdout")? != 0)))
            .collect()
    }

    /// Per (user, topic) and group (hold-out or not): when it was last called, or for the
    /// hold-out would have been, and whether a call is still planned or in progress.
    pub async fn call_history(
        &self,
    ) -> Result<HashMap<(String, String), (Option<Millis>, bool)>, StoreError> {
        let rows = sqlx::query("SELECT user_id, topic, state, first_dialed_at, due_at FROM calls")
            .fetch_all(&self.pool)
            .await?;
        let mut out: HashMap<(String, String), (Option<Millis>, bool)> = HashMap::new();
        for r in rows {
            let key = (r.try_get("user_id")?, r.try_get("topic")?);
            let state: String = r.try_get("state")?;
            let at: Option<i64> = if state == "holdout" {
                Some(r.try_get("due_at")?)
            } else {
                r.try_get("first_dialed_at")?
            };
            let entry = out.entry(key).or_default();
            entry.0 = entry.0.max(at.map(Millis));
            entry.1 |= matches!(state.as_str(), "planned" | "dialing" | "retry" | "placed");
        }
        Ok(out)
    }

    /// Puts a claimed call back, uncounted, to be dialled at `due_at` (it came due outside
    /// the window, after the scheduler was down).
    pub async fn reschedule(&self, id: CallId, due_at: Millis) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE calls SET state = 'retry', attempts = attempts - 1, due_at = $1, \
             updated_at = $2 WHERE id = $3 AND state = 'dialing'",
        )
        .bind(due_at.0)
        .bind(now_ms())
        .bind(id.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every user's contact profile, for the policy.
    pub async fn user_profiles(&self) -> Result<HashMap<String, UserProfile>, StoreError> {
        let rows = sqlx::query("SELECT id, tier, tz, phone, consent, do_not_call FROM users")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let tier: String = r.try_get("tier")?;
                let user: String = r.try_get("id")?;
                Ok((
                    user.clone(),
                    UserProfile {
                        user,
                        tier: Tier::parse(&tier).unwrap_or_default(),
                        tz: r.try_get("tz")?,
                        phone: r.try_get("phone")?,
                        consent: r.try_get::<i64, _>("consent")? != 0,
                        do_not_call: r.try_get::<i64, _>("do_not_call")? != 0,
                    },
                ))
            })
            .collect()
    }

    /// Calls already planned per (skill, hour bucket) from `now` on, and how many were
    /// planned in the 24 hours before it (the daily budget's count).
    pub async fn planned_load(
        &self,
        now: Millis,
    ) -> Result<(HashMap<(Topic, i64), u32>, usize), StoreError> {
        let now_ms = now.0;
        let rows = sqlx::query(
            "SELECT topic, due_at, created_at FROM calls WHERE holdout = 0 \
             AND (state IN ('planned', 'retry') OR created_at > $1)",
        )
        .bind(now_ms - 86_400_000)
        .fetch_all(&self.pool)
        .await?;
        let mut used = HashMap::new();
        let mut today = 0;
        for r in rows {
            let topic = Topic(r.try_get("topic")?);
            let due: i64 = r.try_get("due_at")?;
            let created: i64 = r.try_get("created_at")?;
            if due >= now_ms {
                *used.entry((topic, due.div_euclid(3_600_000))).or_insert(0) += 1;
            }
            today += usize::from(created > now_ms - 86_400_000);
        }
        Ok((used, today))
    }

    pub async fn insert_calls(&self, calls: &[NewCall]) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for c in calls {
            sqlx::query(
                "INSERT INTO calls (id, user_id, topic, probability, priority, reasons, holdout, \
                 state, due_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
            )
            .bind(new_id())
            .bind(c.user.as_str())
            .bind(c.topic.as_str())
            .bind(c.probability)
            .bind(c.priority)
            .bind(&c.reasons)
            .bind(i64::from(c.holdout))
            .bind(if c.holdout { "holdout" } else { "planned" })
            .bind(c.due_at.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` due calls for `node` and gives each attempt its Call-ID, all
    /// committed before anything is dialled. On PostgreSQL, concurrent schedulers skip each
    /// other's rows (`FOR UPDATE SKIP LOCKED`); SQLite serialises writers anyway.
    pub async fn claim_due_calls(
        &self,
        now: Millis,
        limit: usize,
        node: &str,
    ) -> Result<Vec<ClaimedCall>, StoreError> {
        let now_ms = now.0;
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.pool.begin().await?;
        let ids: Vec<i64> = sqlx::query(&format!(
            "SELECT id FROM calls WHERE state IN ('planned', 'retry') AND holdout = 0 \
             AND due_at <= $1 ORDER BY priority DESC, id LIMIT $2 {lock}"
        ))
        .bind(now_ms)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
        let mut claimed = Vec::new();
        for id in ids {
            let call_id = format!("{}@farsight", hex::encode(rand::random::<[u8; 12]>()));
            let row = sqlx::query(
                "UPDATE calls SET state = 'dialing', attempts = attempts + 1, call_id = $1, \
                 claimed_by = $2, updated_at = $3, \
                 first_dialed_at = COALESCE(first_dialed_at, $3) \
                 WHERE id = $4 AND state IN ('planned', 'retry') \
                 RETURNING user_id, topic, probability, reasons, attempts",
            )
            .bind(&call_id)
            .bind(node)
            .bind(now_ms)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { continue };
            let user = UserId(row.try_get("user_id")?);
            let contact = sqlx::query("SELECT phone, tz FROM users WHERE id = $1")
                .bind(user.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let (phone, tz) = match contact {
                Some(c) => (c.try_get("phone")?, c.try_get("tz")?),
                None => (None, "UTC".to_string()),
            };
            claimed.push(ClaimedCall {
                id: CallId(id),
                user,
                topic: Topic(row.try_get("topic")?),
                probability: row.try_get("probability")?,
                reasons: row.try_get("reasons")?,
                attempts: row.try_get("attempts")?,
                call_id,
                phone,
                tz,
            });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records an attempt's outcome: a final state, or back to `retry` at `retry_at`.
    pub async fn finish_attempt(
        &self,
        id: CallId,
        state: &str,
        disposition: &str,
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        let (state, due) = match retry_at {
            Some(at) => ("retry", Some(at.0)),
            None => (state, None),
        };
        sqlx::query(
            "UPDATE calls SET state = $1, disposition = $2, due_at = COALESCE($3, due_at), \
             updated_at = $4 WHERE id = $5",
        )
        .bind(state)
        .bind(disposition)
        .bind(due)
        .bind(now_ms())
        .bind(id.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Calls left `dialing` by a process that stopped before recording the outcome: marked
    /// `interrupted` and never dialled again (a person may already have been called).
    pub async fn interrupt_stale_calls(&self, older_than: Millis) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET state = 'interrupted', updated_at = $1 \
             WHERE state = 'dialing' AND updated_at < $2",
        )
        .bind(now_ms())
        .bind(older_than.0)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn call(&self, id: CallId) -> Result<Option<CallRecord>, StoreError> {
        Ok(self.calls_where("id = $1", Some(id.0)).await?.pop())
    }

    pub async fn calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        self.calls_where("1 = 1", None).await
    }

    async fn calls_where(
        &self,
        condition: &str,
        id: Option<i64>,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let sql = format!(
            "SELECT id, user_id, topic, probability, reasons, holdout, state, attempts, due_at, \
             first_dialed_at, call_id, claimed_by FROM calls WHERE {condition} ORDER BY due_at, id"
        );
        let mut q = sqlx::query(&sql);
        if let Some(id) = id {
            q = q.bind(id);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(CallRecord {
                    id: CallId(r.try_get("id")?),
                    user: UserId(r.try_get("user_id")?),
                    topic: Topic(r.try_get("topic")?),
                    probability: r.try_get("probability")?,
                    reasons: r.try_get("reasons")?,
                    holdout: r.try_get::<i64, _>("holdout")? != 0,
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    due_at: Millis(r.try_get("due_at")?),
                    first_dialed_at: r.try_get::<Option<i64>, _>("first_dialed_at")?.map(Millis),
                    call_id: r.try_get("call_id")?,
                    claimed_by: r.try_get("claimed_by")?,
                })
            })
            .collect()
    }

    /// Support contacts per (user, topic), in time order: the report's outcome.
    pub async fn support_contacts(
        &self,
    ) -> Result<HashMap<(UserId, Topic), Vec<Millis>>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, topic, ts FROM events WHERE kind = 'support_contact' ORDER BY ts",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<(UserId, Topic), Vec<Millis>> = HashMap::new();
        for r in rows {
            out.entry((UserId(r.try_get("user_id")?), Topic(r.try_get("topic")?)))
                .or_default()
                .push(Millis(r.try_get("ts")?));
        }
        Ok(out)
    }
}
