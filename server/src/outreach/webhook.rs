//! The webhook dialer: hands each call to a contact-center platform as signed JSON; the
//! platform dials and reports the outcome later through `POST /v1/calls/{id}/disposition`.
//!
//! Signature: `X-Farsight-Signature: sha256=HEX` where HEX is HMAC-SHA256 with the shared
//! secret over `TIMESTAMP.BODY`, and `X-Farsight-Timestamp` is Unix milliseconds, so a
//! receiver can reject replays.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use farsight_outreach::calls::ClaimedCall;
use farsight_outreach::dial::Outcome;
use farsight_outreach::ids::CallId;

#[derive(Clone, Debug)]
pub struct WebhookDialer {
    pub url: String,
    secret: String,
    client: reqwest::Client,
    /// Tries per call before giving up on the platform.
    pub tries: u32,
    /// Wait before the second try; doubles after each.
    pub backoff: Duration,
}

#[derive(Debug, Serialize)]
struct CallPayload<'a> {
    call: CallId,
    call_id: &'a str,
    user: &'a str,
    phone: Option<&'a str>,
    topic: &'a str,
    probability: f64,
    reasons: &'a str,
    attempt: i64,
    disposition_url: String,
}

/// HMAC-SHA256 over `timestamp.body`, hex.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

impl WebhookDialer {
    pub fn new(url: String, secret: String) -> Self {
        Self {
            url,
            secret,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            tries: 3,
            backoff: Duration::from_millis(500),
        }
    }

    pub async fn dial(&self, call: &ClaimedCall) -> Outcome {
        let body = serde_json::to_vec(&CallPayload {
            call: call.id,
            call_id: &call.call_id,
            user: call.user.as_str(),
            phone: call.phone.as_deref(),
            topic: call.topic.as_str(),
            probability: call.probability,
            reasons: &call.reasons,
            attempt: call.attempts,
            disposition_url: format!("/v1/calls/{}/disposition", call.id),
        })
        .expect("payload serialises");
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 1..=self.tries {
            let timestamp = jiff::Timestamp::now().as_millisecond().to_string();
            let sent = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-farsight-timestamp", &timestamp)
                .header(
                    "x-farsight-signature",
                    format!("sha256={}", signature(&self.secret, &timestamp, &body)),
                )
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return Outcome::Placed,
                // The platform understood and refused: retrying will not change its mind.
                Ok(r) if r.status().is_client_error() => {
                    return Outcome::Failed(format!("platform refused the call: {}", r.status()));
                }
                Ok(r) => last = format!("platform answered {}", r.status()),
                Err(e) => last = format!("platform unreachable: {e}"),
            }
            tracing::warn!(call = call.id.0, attempt, error = %last, "webhook failed");
            if attempt < self.tries {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Outcome::Unreachable(last)
    }
}
