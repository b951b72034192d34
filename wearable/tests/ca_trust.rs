//! A relay with a certificate issued by a CA, as in a real deployment: the wearable told to
//! trust that CA (`--ca`, no fingerprint) publishes to it by name; told to trust another CA
//! it stops at once, naming the certificate as the reason, instead of retrying.

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use farsight_protocol::Role;
use farsight_server::ServeConfig;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use support::{HEIGHT, RUN_LIMIT, WIDTH, Wearable};

/// A CA: its certificate as PEM, and what it signs with.
struct Ca {
    pem: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        pem: cert.pem(),
        cert,
        key,
    })
}

/// Writes a certificate for `localhost` issued by `ca`, and its key, into `dir`.
fn issue_localhost(ca: &Ca, dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let key = KeyPair::generate()?;
    let cert =
        CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&key, &ca.cert, &ca.key)?;
    let (cert_path, key_path) = (dir.join("relay.pem"), dir.join("relay.key"));
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    Ok((cert_path, key_path))
}

/// Runs the wearable, publishing 10 frames to `port` on localhost, trusting the CAs in
/// `ca_file`.
fn publish(port: u16, token: &str, ca_file: &Path, dir: &Path) -> Result<Wearable> {
    let server = format!("localhost:{port}");
    let ca_file = ca_file.to_str().context("a UTF-8 temporary path")?;
    let (width, height) = (WIDTH.to_string(), HEIGHT.to_string());
    Wearable::spawn(
        &[
            "--sim",
            "--headless",
            "--frames",
            "10",
            "--width",
            &width,
            "--height",
            &height,
            "--server",
            &server,
            "--token",
            token,
            "--ca",
            ca_file,
        ],
        dir,
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wearable_trusts_the_relays_ca_and_refuses_another() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (issuer, stranger) = (ca("Farsight test CA")?, ca("Someone else's CA")?);
    let mut config = ServeConfig::ephemeral(dir.path());
    config.cert = Some(issue_localhost(&issuer, dir.path())?);
    let running = farsight_server::start(&config).await?;
    let (_, token) = running
        .shared
        .store
        .create_token(Role::Wearable, "glasses")
        .await?;
    let port = running.quic_addr.port();

    let trusted = dir.path().join("ca.pem");
    std::fs::write(&trusted, &issuer.pem)?;
    let mut wearable = publish(port, &token, &trusted, dir.path())?;
    let status = tokio::time::timeout(RUN_LIMIT, wearable.child.wait())
        .await
        .context("the wearable did not finish its 10 frames")??;
    let log = wearable.log();
    ensure!(
        status.success(),
        "publishing through the CA failed; log:\n{log}"
    );
    ensure!(log.contains("publishing session"), "log:\n{log}");

    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, &stranger.pem)?;
    let mut wearable = publish(port, &token, &other, dir.path())?;
    // A certificate that does not chain to the CA is final: no 30 s of retries.
    let status = tokio::time::timeout(Duration::from_secs(10), wearable.child.wait())
        .await
        .context("the wearable kept retrying a certificate it cannot trust")??;
    let log = wearable.log();
    ensure!(
        !status.success(),
        "a stranger's CA was trusted; log:\n{log}"
    );
    ensure!(
        log.to_lowercase().contains("certificate"),
        "the reason does not name the certificate; log:\n{log}"
    );
    running.shutdown().await;
    Ok(())
}
