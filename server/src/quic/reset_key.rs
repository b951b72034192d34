//! The key behind QUIC stateless resets, kept in the data directory. A restarted server then
//! answers packets of its previous run's connections with a reset those clients accept, so a
//! wearable learns at its next keep-alive that the server came back, instead of waiting out
//! its idle timeout, and reconnects at once.

use std::io;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

const FILE: &str = "quic-reset-key";
const KEY_LEN: usize = 64;

/// HMAC-SHA-256 with the persisted key, as quinn's `HmacKey`.
pub struct ResetKey(Hmac<Sha256>);

impl std::fmt::Debug for ResetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetKey(..)")
    }
}

impl ResetKey {
    fn from_bytes(key: &[u8]) -> Self {
        Self(Hmac::new_from_slice(key).expect("HMAC takes keys of any length"))
    }

    /// The key in `dir`, created (owner-only) on first use.
    pub fn load_or_create(dir: &Path) -> io::Result<Self> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(key) if key.len() == KEY_LEN => return Ok(Self::from_bytes(&key)),
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a {KEY_LEN}-byte key", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let key: [u8; KEY_LEN] = std::array::from_fn(|_| rand::random());
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        io::Write::write_all(&mut options.open(&path)?, &key)?;
        Ok(Self::from_bytes(&key))
    }
}

/// Random 8-byte connection IDs that every run of the server takes as its own, so packets
/// of a previous run's connections reach the stateless-reset path (quinn's default generator
/// drops IDs it did not hash with its own per-run key, and would answer them with nothing).
#[derive(Debug)]
pub struct RandomCids;

impl quinn::ConnectionIdGenerator for RandomCids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        quinn::ConnectionId::new(&rand::random::<[u8; 8]>())
    }

    fn cid_len(&self) -> usize {
        8
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

impl quinn::crypto::HmacKey for ResetKey {
    fn sign(&self, data: &[u8], signature_out: &mut [u8]) {
        let mut mac = self.0.clone();
        mac.update(data);
        signature_out.copy_from_slice(&mac.finalize().into_bytes());
    }

    fn signature_len(&self) -> usize {
        32
    }

    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), quinn::crypto::CryptoError> {
        let mut mac = self.0.clone();
        mac.update(data);
        mac.verify_slice(signature)
            .map_err(|_| quinn::crypto::CryptoError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::crypto::HmacKey;

    #[test]
    fn the_same_key_comes_back_after_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = ResetKey::load_or_create(dir.path()).expect("created");
        let again = ResetKey::load_or_create(dir.path()).expect("loaded");
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        first.sign(b"connection id", &mut a);
        again.sign(b"connection id", &mut b);
        assert_eq!(a, b);
        assert!(again.verify(b"connection id", &a).is_ok());
        assert!(again.verify(b"another id", &a).is_err());
    }
}
