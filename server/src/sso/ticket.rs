//! Tickets: what a page signed in by single sign-on presents in `Hello` and to the API. The
//! sign-in itself is a token whose secret stays in an HttpOnly cookie, out of the page's
//! reach; a ticket names that token, expires within minutes and is signed with a key that
//! lives only in this process (a restart asks pages for new tickets). Revoking the sign-in
//! revokes its tickets.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Every ticket starts so; tokens start with `fst_`.
const PREFIX: &str = "fsk_";

/// How long a ticket is accepted; the page fetches a new one well before.
pub const LIFETIME: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub struct Tickets {
    key: [u8; 32],
}

impl Default for Tickets {
    fn default() -> Self {
        Self {
            key: rand::random(),
        }
    }
}

/// What a presented secret is, as far as tickets go.
#[derive(Debug, PartialEq)]
pub enum TicketCheck {
    /// Not a ticket: a token, to be looked up.
    NotATicket,
    /// A valid ticket for the sign-in token with this id.
    Valid(i64),
    Expired,
    Forged,
}

impl Tickets {
    /// A ticket for the sign-in token `token`, valid until `now_secs + LIFETIME`.
    pub fn issue(&self, token: i64, now_secs: i64) -> String {
        let until = now_secs + LIFETIME.as_secs() as i64;
        let body = format!("{token}.{until}");
        format!("{PREFIX}{body}.{}", hex::encode(self.mac(&body)))
    }

    pub fn check(&self, secret: &str, now_secs: i64) -> TicketCheck {
        let Some(rest) = secret.strip_prefix(PREFIX) else {
            return TicketCheck::NotATicket;
        };
        let Some((body, mac)) = rest.rsplit_once('.') else {
            return TicketCheck::Forged;
        };
        let Ok(mac) = hex::decode(mac) else {
            return TicketCheck::Forged;
        };
        let mut check = self.hmac();
        check.update(body.as_bytes());
        if check.verify_slice(&mac).is_err() {
            return TicketCheck::Forged;
        }
        let parsed = body
            .split_once('.')
            .and_then(|(token, until)| Some((token.parse().ok()?, until.parse::<i64>().ok()?)));
        match parsed {
            Some((_, until)) if until < now_secs => TicketCheck::Expired,
            Some((token, _)) => TicketCheck::Valid(token),
            None => TicketCheck::Forged,
        }
    }

    fn hmac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    fn mac(&self, body: &str) -> Vec<u8> {
        let mut mac = self.hmac();
        mac.update(body.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_names_its_sign_in_until_it_expires_and_cannot_be_forged() {
        let tickets = Tickets::default();
        let ticket = tickets.issue(42, 1_000);
        assert_eq!(tickets.check(&ticket, 1_000), TicketCheck::Valid(42));
        assert_eq!(tickets.check(&ticket, 1_600), TicketCheck::Valid(42));
        assert_eq!(tickets.check(&ticket, 1_601), TicketCheck::Expired);
        let other = ticket.replacen("fsk_42.", "fsk_43.", 1);
        assert_eq!(tickets.check(&other, 1_000), TicketCheck::Forged);
        assert_eq!(
            Tickets::default().check(&ticket, 1_000),
            TicketCheck::Forged,
            "another process's key"
        );
        assert_eq!(tickets.check("fst_abc", 1_000), TicketCheck::NotATicket);
        assert_eq!(tickets.check("fsk_garbage", 1_000), TicketCheck::Forged);
    }
}
