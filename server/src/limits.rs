//! Per-address limits against abuse: how many connections one address may hold before it
//! has signed in, and how many sign-ins it may fail before it must wait. One book for QUIC,
//! WebTransport, WebSocket and HTTP, so an address cannot spread its tries over them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections one address may hold that have not signed in (handshaking, or before their
/// `Hello` is answered).
pub const MAX_UNAUTHENTICATED: usize = 32;
/// Failed sign-ins one address may make per [`FAILURE_WINDOW`] before it is refused
/// without its token being looked at.
pub const MAX_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked for failures before expired ones are forgotten.
const PRUNE_AT: usize = 10_000;

#[derive(Debug, Default)]
pub struct AddressLimits {
    book: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    unauthenticated: HashMap<IpAddr, usize>,
    /// Per address: when its current window began and the failures in it.
    failures: HashMap<IpAddr, (Instant, u32)>,
}

/// A connection from `ip` that has not signed in; dropping it (on sign-in or close) frees
/// its place.
#[derive(Debug)]
pub struct Unauthenticated {
    limits: Arc<AddressLimits>,
    ip: IpAddr,
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        let mut book = self.limits.lock();
        if let Some(n) = book.unauthenticated.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                book.unauthenticated.remove(&self.ip);
            }
        }
    }
}

impl AddressLimits {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().expect("address limits lock poisoned")
    }

    /// A place for a new connection from `ip`; `None` when the address already holds
    /// [`MAX_UNAUTHENTICATED`] connections that have not signed in.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Unauthenticated> {
        let mut book = self.lock();
        let n = book.unauthenticated.entry(ip).or_default();
        if *n >= MAX_UNAUTHENTICATED {
            return None;
        }
        *n += 1;
        Some(Unauthenticated {
            limits: self.clone(),
            ip,
        })
    }

    /// `Err(wait)` while `ip` has used up its failed sign-ins for the window.
    pub fn may_sign_in(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.lock().failures.get(&ip) {
            Some(&(start, n)) if n >= MAX_FAILURES && now < start + FAILURE_WINDOW => {
                Err(start + FAILURE_WINDOW - now)
            }
            _ => Ok(()),
        }
    }

    /// A sign-in from `ip` failed (a token unknown, revoked or expired).
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut book = self.lock();
        if book.failures.len() >= PRUNE_AT {
            book.failures
                .retain(|_, (start, _)| now < *start + FAILURE_WINDOW);
        }
        let entry = book.failures.entry(ip).or_insert((now, 0));
        if now >= entry.0 + FAILURE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// How many connections from `ip` have not signed in now.
    pub fn unauthenticated(&self, ip: IpAddr) -> usize {
        self.lock().unauthenticated.get(&ip).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn an_address_holds_at_most_its_share_of_unauthenticated_connections() {
        let limits = Arc::new(AddressLimits::default());
        let held: Vec<_> = (0..MAX_UNAUTHENTICATED)
            .map(|_| limits.admit(A).expect("within the cap"))
            .collect();
        assert!(limits.admit(A).is_none(), "one more from A is refused");
        assert!(limits.admit(B).is_some(), "another address is served");
        drop(held);
        assert_eq!(limits.unauthenticated(A), 0, "signed in or closed: freed");
        assert!(limits.admit(A).is_some());
    }

    #[test]
    fn failed_sign_ins_make_an_address_wait_out_the_window() {
        let limits = AddressLimits::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(limits.may_sign_in(A, t0), Ok(()), "try {i}");
            limits.failed(A, t0);
        }
        let wait = limits.may_sign_in(A, t0 + Duration::from_secs(20));
        assert_eq!(wait, Err(FAILURE_WINDOW - Duration::from_secs(20)));
        assert_eq!(
            limits.may_sign_in(B, t0),
            Ok(()),
            "another address is served"
        );
        assert_eq!(limits.may_sign_in(A, t0 + FAILURE_WINDOW), Ok(()));
        limits.failed(A, t0 + FAILURE_WINDOW);
        assert_eq!(
            limits.may_sign_in(A, t0 + FAILURE_WINDOW),
            Ok(()),
            "a new window starts counting afresh"
        );
    }
}
