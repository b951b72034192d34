//! Staying connected: exponential back-off between attempts, and resuming the same session
//! after a reconnect, so watchers, marks and group numbering carry on where they were.

use std::time::Duration;

use farsight_protocol::ErrorCode;

use crate::{ClientError, ConnectOptions, Connection, connect};

/// Delays between connection attempts: doubling from `initial` up to `max`, each drawn from
/// the upper half of its step so that devices cut off together do not return in lockstep.
/// Sans-IO: it only says how long to wait.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
    state: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let seed = farsight_protocol::Micros::now().0 | 1;
        Self::with_seed(initial, max, seed)
    }

    /// A back-off whose jitter is reproducible (tests).
    pub fn with_seed(initial: Duration, max: Duration, seed: u64) -> Self {
        Self {
            initial,
            max,
            step: initial,
            // splitmix64 spreads nearby seeds (devices started together) far apart.
            state: {
                let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)) | 1
            },
        }
    }

    /// How long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        // xorshift64: enough to spread clients, no dependency.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let fraction = 0.5 + (self.state % 1000) as f64 / 2000.0;
        let delay = self.step.mul_f64(fraction);
        self.step = (self.step * 2).min(self.max);
        delay
    }

    /// After a successful connection the next outage starts from `initial` again.
    pub fn reset(&mut self) {
        self.step = self.initial;
    }
}

impl Default for Backoff {
    /// 250 ms doubling to 4 s: a restarted server is found again within a few seconds.
    fn default() -> Self {
        Self::new(Duration::from_millis(250), Duration::from_secs(4))
    }
}

/// A handshake that has not finished by then is abandoned and retried: a server that is down
/// often answers nothing at all, and QUIC would wait for its whole idle timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether retrying could help: a server that refused the token, the role, the protocol
/// version or the session will refuse it again.
fn is_final(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Refused {
            code: ErrorCode::Unauthorized
                | ErrorCode::WrongRole
                | ErrorCode::UnsupportedVersion
                | ErrorCode::NoSuchSession,
            ..
        } | ClientError::Address(_)
            | ClientError::Tls(_)
    ) || is_certificate_refused(e)
}

/// A handshake that failed on the certificate (a TLS alert, QUIC codes 0x100–0x1ff) fails the
/// same way on every retry.
fn is_certificate_refused(e: &ClientError) -> bool {
    let ClientError::Connection(quinn::ConnectionError::TransportError(error)) = e else {
        return false;
    };
    (0x100..0x200).contains(&u64::from(error.code))
}

/// Connects, retrying with back-off for up to `give_up`; final refusals return at once.
pub async fn connect_with_backoff(
    opts: &ConnectOptions,
    backoff: &mut Backoff,
    give_up: Duration,
) -> Result<Connection, ClientError> {
    let deadline = tokio::time::Instant::now() + give_up;
    loop {
        let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, connect(opts))
            .await
            .unwrap_or_else(|_| Err(ClientError::Protocol("no answer to the handshake".into())));
        match attempt {
            Ok(conn) => {
                backoff.reset();
                return Ok(conn);
            }
            Err(e) if is_final(&e) => return Err(e),
            Err(e) => {
                let delay = backoff.next_delay();
                if tokio::time::Instant::now() + delay > deadline {
                    return Err(e);
                }
                tracing::info!(error = %e, retry_in_ms = delay.as_millis() as u64, "reconnecting");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_and_reset() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_millis(800));
        let mut b = Backoff::with_seed(initial, max, 42);
        let steps = [100, 200, 400, 800, 800, 800];
        for step in steps {
            let d = b.next_delay().as_millis() as u64;
            assert!(d >= step / 2 && d <= step, "{d} ms for a {step} ms step");
        }
        b.reset();
        assert!(b.next_delay() <= initial);
    }

    #[test]
    fn devices_with_different_seeds_spread_out() {
        let delays: std::collections::HashSet<Duration> = (1..20)
            .map(|seed| {
                Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(8), seed)
                    .next_delay()
            })
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn refusals_that_a_retry_cannot_fix_are_final() {
        let refused = |code| ClientError::Refused {
            code,
            message: String::new(),
        };
        assert!(is_final(&refused(ErrorCode::Unauthorized)));
        assert!(is_final(&refused(ErrorCode::NoSuchSession)));
        assert!(!is_final(&refused(ErrorCode::Internal)));
        assert!(!is_final(&ClientError::Protocol("closed".into())));
    }
}
