//! The server's TLS certificate: a real one from `--cert/--key`, or a development
//! certificate generated on first start and kept in the data directory.
//!
//! The development certificate is ECDSA P-256 and valid for 13 days, the limits browsers
//! set for pinning by hash (WebTransport `serverCertificateHashes`); it is renewed when
//! fewer than two days remain. Clients pin it by the SHA-256 fingerprint printed at start.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("generating certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the leaf certificate, hex.
    pub fingerprint: String,
    pub generated: bool,
}

const DEV_CERT: &str = "dev-cert.pem";
const DEV_KEY: &str = "dev-key.pem";
const VALIDITY_DAYS: u64 = 13;
const RENEW_BEFORE_DAYS: u64 = 2;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn pem(path: &Path) -> impl Fn(rustls::pki_types::pem::Error) -> CertError + '_ {
    move |e| CertError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Loads a certificate chain and key from PEM files.
pub fn load(cert: &Path, key: &Path) -> Result<Identity, CertError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(pem(cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem(cert))?;
    let Some(leaf) = chain.first() else {
        return Err(CertError::Pem {
            path: cert.to_path_buf(),
            message: "no certificate in file".into(),
        });
    };
    let fingerprint = farsight_client::fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem(key))?;
    Ok(Identity {
        chain,
        key,
        fingerprint,
        generated: false,
    })
}

/// The development certificate in `dir`, generated when missing or about to expire.
pub fn dev_identity(dir: &Path) -> Result<Identity, CertError> {
    let (cert, key) = (dir.join(DEV_CERT), dir.join(DEV_KEY));
    let fresh = std::fs::metadata(&cert)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < days(VALIDITY_DAYS - RENEW_BEFORE_DAYS));
    if !(fresh && key.exists()) {
        generate(&cert, &key)?;
    }
    Ok(Identity {
        generated: true,
        ..load(&cert, &key)?
    })
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

fn generate(cert_path: &Path, key_path: &Path) -> Result<(), CertError> {
    let mut params = rcgen::CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    let now = SystemTime::now();
    params.not_before = (now - days(1)).into();
    params.not_after = (now + days(VALIDITY_DAYS - 1)).into();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "farsight development");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(cert_path, cert.pem()).map_err(io(cert_path))?;
    write_private(key_path, &key.serialize_pem()).map_err(io(key_path))?;
    Ok(())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certificate_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = dev_identity(dir.path()).expect("generate");
        let second = dev_identity(dir.path()).expect("load");
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(first.fingerprint.len(), 64);
    }
}
