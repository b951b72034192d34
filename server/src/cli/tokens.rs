//! `farsight token`: create, list (as a table, never secrets) and revoke access tokens.

use anyhow::bail;
use clap::Subcommand;
use farsight_server::config::StorageArgs;
use farsight_store::TokenRole;

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
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

pub async fn run(storage: &StorageArgs, cmd: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(storage).await?;
    match cmd {
        TokenCommand::Create { role, name, user } => {
            let (record, secret) = store.create_token(role, &name).await?;
            if let Some(user) = &user {
                store.set_token_subject(record.id, user).await?;
            }
            eprintln!(
                "created {} token {} ({}); it is shown only now:",
                role.as_str(),
                record.id,
                record.name
            );
            println!("{secret}");
        }
        TokenCommand::List => {
            println!("{:<18} {:<11} {:<8} name", "id", "role", "state");
            for t in store.list_tokens().await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<18} {:<11} {:<8} {}",
                    t.id,
                    t.role.as_str(),
                    state,
                    t.name
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if !store.revoke_token(id).await? {
                bail!("no active token with id {id}");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}
