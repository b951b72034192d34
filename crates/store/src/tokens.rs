//! Access tokens: shown once at creation, stored only as a SHA-256 hash.

use farsight_protocol::Role;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Store, StoreError, new_id, now_micros};

/// What a token may do: the QUIC roles, plus `service` for platforms that post usage
/// events over HTTP and never connect over QUIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    Wearable,
    Agent,
    Supervisor,
    Service,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Wearable => "wearable",
            TokenRole::Agent => "agent",
            TokenRole::Supervisor => "supervisor",
            TokenRole::Service => "service",
        }
    }

    /// The role this token may claim in a QUIC `Hello`, if any.
    pub fn protocol_role(self) -> Option<Role> {
        match self {
            TokenRole::Wearable => Some(Role::Wearable),
            TokenRole::Agent => Some(Role::Agent),
            TokenRole::Supervisor => Some(Role::Supervisor),
            TokenRole::Service => None,
        }
    }

    /// Agents and supervisors, who work in the console.
    pub fn is_staff(self) -> bool {
        matches!(self, TokenRole::Agent | TokenRole::Supervisor)
    }
}

impl From<Role> for TokenRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Wearable => TokenRole::Wearable,
            Role::Agent => TokenRole::Agent,
            Role::Supervisor => TokenRole::Supervisor,
        }
    }
}

impl std::str::FromStr for TokenRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "service" => Ok(TokenRole::Service),
            other => other.parse::<Role>().map(TokenRole::from).map_err(|_| {
                format!("unknown role {other:?} (wearable, agent, supervisor or service)")
            }),
        }
    }
}

impl PartialEq<Role> for TokenRole {
    fn eq(&self, other: &Role) -> bool {
        self.protocol_role() == Some(*other)
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: TokenRole,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// µs since the Unix epoch; `None`: never.
    pub expires_at: Option<i64>,
    /// The one session the token may take part in; `None`: any.
    pub session: Option<i64>,
}

/// What the store knows of a presented secret.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenCheck {
    Valid(TokenRecord),
    Unknown,
    Revoked,
    Expired,
}

impl TokenCheck {
    pub fn valid(self) -> Option<TokenRecord> {
        match self {
            TokenCheck::Valid(record) => Some(record),
            _ => None,
        }
    }

    /// Why the token is refused, in words for the one who presented it.
    pub fn refusal(&self) -> Option<&'static str> {
        match self {
            TokenCheck::Valid(_) => None,
            TokenCheck::Unknown => Some("unknown token"),
            TokenCheck::Revoked => Some("the token was revoked"),
            TokenCheck::Expired => Some("the token has expired"),
        }
    }
}

const COLUMNS: &str = "id, name, role, created_at, revoked_at, expires_at, session_id";

/// Tokens carry 256 random bits, so an unsalted hash is as strong as the token itself.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn record(row: &sqlx::any::AnyRow) -> Result<TokenRecord, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(TokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role
            .parse()
            .map_err(|e: String| StoreError::Corrupt(format!("token role: {e}")))?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        expires_at: row.try_get("expires_at")?,
        session: row.try_get("session_id")?,
    })
}

impl Store {
    /// Creates a token; the secret is returned here and never again.
    pub async fn create_token(
        &self,
        role: impl Into<TokenRole>,
        name: &str,
    ) -> Result<(TokenRecord, String), StoreError> {
        let role = role.into();
        let secret = format!("fst_{}", hex::encode(rand::random::<[u8; 32]>()));
        let rec = TokenRecord {
            id: new_id(),
            name: name.to_string(),
            role,
            created_at: now_micros(),
            revoked_at: None,
            expires_at: None,
            session: None,
        };
        sqlx::query(
            "INSERT INTO tokens (id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(rec.id)
        .bind(&rec.name)
        .bind(role.as_str())
        .bind(hash_token(&secret))
        .bind(rec.created_at)
        .execute(&self.pool)
        .await?;
        Ok((rec, secret))
    }

    /// Names the platform user (outreach `users.id`) a wearable token acts for, so that
    /// user's assist requests are routed by their plan tier and likely need.
    pub async fn set_token_subject(&self, id: i64, user: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE tokens SET subject = $1 WHERE id = $2")
            .bind(user)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets when a token stops being accepted (µs since the Unix epoch).
    pub async fn set_token_expiry(&self, id: i64, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE tokens SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Limits a token to one session.
    pub async fn set_token_session(&self, id: i64, session: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE tokens SET session_id = $1 WHERE id = $2")
            .bind(session)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces a live token by a new secret with the same role, name, user, session and
    /// lifetime left, and revokes the old one; the new secret is returned here and never again.
    /// `None` when no live token has that id.
    pub async fn rotate_token(&self, id: i64) -> Result<Option<(TokenRecord, String)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, subject FROM tokens WHERE id = $1 AND revoked_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let old = record(&row)?;
        let subject: Option<String> = row.try_get("subject")?;
        let (mut new, secret) = self.create_token(old.role, &old.name).await?;
        if let Some(subject) = subject {
            self.set_token_subject(new.id, &subject).await?;
        }
        if let Some(at) = old.expires_at {
            self.set_token_expiry(new.id, at).await?;
            new.expires_at = Some(at);
        }
        if let Some(session) = old.session {
            self.set_token_session(new.id, session).await?;
            new.session = Some(session);
        }
        self.revoke_token(id).await?;
        Ok(Some((new, secret)))
    }

    /// The platform user a token acts for, if one was named.
    pub async fn token_subject(&self, id: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT subject FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get("subject")?,
            None => None,
        })
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens ORDER BY created_at"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record).collect()
    }

    /// Revokes by id; false when no live token has that id.
    pub async fn revoke_token(&self, id: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_micros())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The live token with this secret, if any.
    pub async fn verify_token(&self, secret: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.check_token(secret).await?.valid())
    }

    /// Whether a secret is a live token, and if not, why.
    pub async fn check_token(&self, secret: &str) -> Result<TokenCheck, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE hash = $1"))
            .bind(hash_token(secret))
            .fetch_optional(&self.pool)
            .await?;
        judge(row.as_ref().map(record).transpose()?)
    }

    /// Whether the token with this id is live, and if not, why.
    pub async fn check_token_id(&self, id: i64) -> Result<TokenCheck, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        judge(row.as_ref().map(record).transpose()?)
    }
}

/// A looked-up token as a check: unknown, revoked, expired or valid.
fn judge(found: Option<TokenRecord>) -> Result<TokenCheck, StoreError> {
    let Some(record) = found else {
        return Ok(TokenCheck::Unknown);
    };
    Ok(if record.revoked_at.is_some() {
        TokenCheck::Revoked
    } else if record.expires_at.is_some_and(|at| at <= now_micros()) {
        TokenCheck::Expired
    } else {
        TokenCheck::Valid(record)
    })
}
