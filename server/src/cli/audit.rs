//! `farsight audit`: the newest entries of the audit log, as a table.

use farsight_server::config::StorageArgs;

use super::open_store;

pub async fn run(storage: &StorageArgs, limit: u32) -> anyhow::Result<()> {
    let store = open_store(storage).await?;
    println!(
        "{:<20} {:<16} {:<24} {:<18} detail",
        "at", "action", "actor", "session"
    );
    for e in store.audit_log(i64::from(limit)).await? {
        let at = jiff::Timestamp::from_microsecond(e.at).map_or(e.at.to_string(), |ts| {
            ts.strftime("%Y-%m-%d %H:%M:%S").to_string()
        });
        let session = e.session.map_or("-".to_string(), |s| s.to_string());
        println!(
            "{:<20} {:<16} {:<24} {:<18} {}",
            at,
            e.action.as_str(),
            e.actor,
            session,
            e.detail
        );
    }
    Ok(())
}
