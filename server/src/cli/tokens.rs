//! `farsight token`: create, list (as a table, never secrets), rotate and revoke access
//! tokens.

use anyhow::bail;
use clap::Subcommand;
use farsight_server::config::StorageArgs;
use farsight_store::{AuditAction, Store, TokenRole};

use super::open_store;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (it is shown only this once).
    Create {
        /// wearable, agent, supervisor, or service (posts usage events over HTTP).
        #[arg(long)]
        role: TokenRole,
        #[arg(long)]
        name: String,
        /// For a wearable: the platform user (as in `users import`) it belongs to, whose
        /// plan tier and likely need route their assist requests in the agents' queue.
        #[arg(long)]
        user: Option<String>,
        /// How long the token is accepted: a number with s, m, h or d (`90d`); default:
        /// until revoked.
        #[arg(long, value_name = "DURATION", value_parser = parse_lifetime)]
        expires_in: Option<std::time::Duration>,
        /// Limit the token to one session (as `GET /v1/sessions` lists them): an agent or
        /// supervisor may join only it and sees only it in the queue; a wearable may only
        /// resume it. Not for service tokens.
        #[arg(long, value_name = "ID")]
        session: Option<u64>,
    },
    /// List tokens (never their secrets).
    List,
    /// Replace a token by a new secret with the same role, name, user, session and expiry, and
    /// revoke the old one. Prints the new secret (shown only this once).
    Rotate { id: i64 },
    /// Revoke a token by id.
    Revoke { id: i64 },
}

/// `30s`, `15m`, `12h`, `90d`.
fn parse_lifetime(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: give a number with s, m, h or d, e.g. 90d"
            ));
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: give a number with s, m, h or d, e.g. 90d"))?;
    if n == 0 {
        return Err("a token must live longer than 0".into());
    }
    Ok(std::time::Duration::from_secs(n.saturating_mul(seconds)))
}

async fn audit(store: &Store, action: AuditAction, detail: &str) -> anyhow::Result<()> {
    let actor = super::command_line_actor();
    Ok(store.audit(&actor, action, None, detail).await?)
}

pub async fn run(storage: &StorageArgs, cmd: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(storage).await?;
    match cmd {
        TokenCommand::Create {
            role,
            name,
            user,
            expires_in,
            session,
        } => {
            if session.is_some() && role == TokenRole::Service {
                bail!("a service token cannot be limited to a session: it posts usage events");
            }
            let session = session.map(i64::try_from).transpose()?;
            let (record, secret) = store.create_token(role, &name).await?;
            if let Some(session) = session {
                store.set_token_session(record.id, session).await?;
            }
            if let Some(user) = &user {
                store.set_token_subject(record.id, user).await?;
            }
            if let Some(lifetime) = expires_in {
                let micros = i64::try_from(lifetime.as_micros()).unwrap_or(i64::MAX);
                let at = record.created_at.saturating_add(micros);
                store.set_token_expiry(record.id, at).await?;
            }
            let detail = format!(
                "{} token {} ({}){}",
                role.as_str(),
                record.id,
                record.name,
                session.map_or(String::new(), |s| format!(", limited to session {s}"))
            );
            audit(&store, AuditAction::TokenCreate, &detail).await?;
            eprintln!(
                "created {} token {} ({}); it is shown only now:",
                role.as_str(),
                record.id,
                record.name
            );
            println!("{secret}");
        }
        TokenCommand::List => {
            println!(
                "{:<18} {:<11} {:<8} {:<20} {:<20} name",
                "id", "role", "state", "expires", "session"
            );
            let now = farsight_store::now_micros();
            for t in store.list_tokens().await? {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(_), _) => "revoked",
                    (None, Some(at)) if at <= now => "expired",
                    _ => "active",
                };
                let expires = t.expires_at.map_or("never".to_string(), |at| {
                    jiff::Timestamp::from_microsecond(at).map_or(at.to_string(), |ts| {
                        ts.strftime("%Y-%m-%d %H:%M UTC").to_string()
                    })
                });
                let session = t.session.map_or("any".to_string(), |s| s.to_string());
                println!(
                    "{:<18} {:<11} {:<8} {:<20} {:<20} {}",
                    t.id,
                    t.role.as_str(),
                    state,
                    expires,
                    session,
                    t.name
                );
            }
        }
        TokenCommand::Rotate { id } => {
            let Some((record, secret)) = store.rotate_token(id).await? else {
                bail!("no active token with id {id}");
            };
            let detail = format!("token {id} replaced by {} ({})", record.id, record.name);
            audit(&store, AuditAction::TokenRotate, &detail).await?;
            eprintln!(
                "token {id} revoked; its replacement is {} ({}), shown only now:",
                record.id, record.name
            );
            println!("{secret}");
        }
        TokenCommand::Revoke { id } => {
            if !store.revoke_token(id).await? {
                bail!("no active token with id {id}");
            }
            audit(&store, AuditAction::TokenRevoke, &format!("token {id}")).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
