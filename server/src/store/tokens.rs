//! Access tokens: shown once at creation, stored only as a SHA-256 hash.

use farsight_protocol::Role;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Store, StoreError, new_id, now_micros};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    #[serde(serialize_with = "role_str")]
    pub role: Role,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn role_str<S: serde::Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role.as_str())
}

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
    })
}

impl Store {
    /// Creates a token; the secret is returned here and never again.
    pub async fn create_token(
        &self,
        role: Role,
        name: &str,
    ) -> Result<(TokenRecord, String), StoreError> {
        let secret = format!("fst_{}", hex::encode(rand::random::<[u8; 32]>()));
        let rec = TokenRecord {
            id: new_id(),
            name: name.to_string(),
            role,
            created_at: now_micros(),
            revoked_at: None,
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

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, role, created_at, revoked_at FROM tokens ORDER BY created_at",
        )
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
        let row = sqlx::query(
            "SELECT id, name, role, created_at, revoked_at FROM tokens \
             WHERE hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash_token(secret))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }
}
