//! Outbound SIP dialer: third-party call control (RFC 3725 flow I) over UDP or TCP to a trunk
//! or PBX. [`dial`] rings the agent's phone, then the customer, joins their media by handing
//! each the other's SDP, and returns how the call ended as a [`Disposition`].
//!
//! The protocol lives in the sans-IO [`call::Call`]; [`transport`] only moves bytes. Each leg
//! has its own Call-ID derived from the caller's: `<call_id>-agent` and `<call_id>-customer`.

pub mod call;
pub mod digest;
pub mod message;
pub mod transport;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use call::{Call, CallParams, Timers};
use digest::Credentials;
use transport::Shell;

/// The transport used to reach the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

/// How to reach the trunk and what limits apply to each call.
#[derive(Debug, Clone)]
pub struct SipConfig {
    pub transport: Transport,
    /// Local address to bind (port 0 picks one). An unspecified IP is replaced by the address
    /// the OS would use to reach the agent's trunk.
    pub local: SocketAddr,
    pub username: Option<String>,
    pub password: Option<String>,
    /// How long each phone may ring before the INVITE is CANCELled. Keep it under 64·T1: the
    /// agent's phone waits that long for the ACK that carries the customer's answer.
    pub no_answer: Duration,
    /// Talk time after which the dialer hangs up both phones.
    pub max_call: Duration,
    /// RFC 3261 T1 (500 ms by default); tests shorten it.
    pub t1: Duration,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            transport: Transport::Udp,
            local: SocketAddr::from(([0, 0, 0, 0], 0)),
            username: None,
            password: None,
            no_answer: Duration::from_secs(30),
            max_call: Duration::from_secs(3600),
            t1: Duration::from_millis(500),
        }
    }
}

/// One phone to ring: its SIP URI and the trunk/PBX address that reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub uri: String,
    pub addr: SocketAddr,
    pub display: String,
}

/// A call the scheduler wants placed. `call_id` is generated and stored before dialing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    pub call_id: String,
    pub agent: Party,
    pub customer: Party,
    /// Why we call (the prediction's explanation); shown on the agent's phone, one line,
    /// at most 256 bytes.
    pub reason: String,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Both phones were joined; `talk` runs from the customer's answer to the first hang-up.
    Answered { talk: Duration },
    /// 486 or 600.
    Busy,
    /// Rang past the no-answer timeout (then CANCELled), or 408/480.
    NoAnswer,
    /// 603.
    Declined,
    /// 404, 484 or 604.
    NotFound,
    /// 5xx.
    ServerError(u16),
    /// Another 4xx/6xx final response (e.g. 488, 403).
    Rejected(u16),
    /// A digest challenge we could not answer, or a second one after answering.
    AuthFailed,
    /// The agent's leg ended as the inner disposition; the customer was not called.
    AgentUnavailable(Box<Disposition>),
    /// No response, a refused connection or a socket error.
    Transport(String),
    /// The request cannot be dialled (bad URI or Call-ID).
    Invalid(String),
}

/// Places one 3PCC call and returns how it ended. Never panics on network input.
pub async fn dial(config: &SipConfig, call: &CallRequest) -> Disposition {
    let mut shell = match Shell::bind(config.transport, config.local, call.agent.addr).await {
        Ok(s) => s,
        Err(e) => return Disposition::Transport(format!("binding {}: {e}", config.local)),
    };
    let credentials = match (&config.username, &config.password) {
        (Some(u), Some(p)) => Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        }),
        _ => None,
    };
    let params = CallParams {
        call_id: call.call_id.clone(),
        agent: call.agent.clone(),
        customer: call.customer.clone(),
        reason: call.reason.clone(),
        local: shell.local_addr(),
        transport: config.transport,
        credentials,
        timers: Timers {
            t1: config.t1,
            t2: Duration::from_secs(4).max(config.t1),
            no_answer: config.no_answer,
            max_call: config.max_call,
        },
    };
    let mut core = match Call::new(params, Instant::now(), rand::random()) {
        Ok(c) => c,
        Err(e) => return Disposition::Invalid(e.to_string()),
    };
    let span = tracing::info_span!("sip_call", call = %call.call_id);
    let _enter = span.enter();
    loop {
        while let Some(t) = core.poll_transmit() {
            if let Err(e) = shell.send(t.dest, &t.payload).await {
                tracing::warn!(dest = %t.dest, error = %e, "SIP send failed");
                core.handle_send_error(Instant::now(), t.role, &format!("{}: {e}", t.dest));
            }
        }
        if let Some(d) = core.outcome() {
            return d;
        }
        let Some(wake) = core.poll_timeout() else {
            return Disposition::Transport("call stalled with no timer".into());
        };
        tokio::select! {
            received = shell.recv() => match received {
                Ok((from, Ok(msg))) => core.handle_input(Instant::now(), from, msg),
                Ok((from, Err(e))) => tracing::warn!(%from, error = %e, "dropping malformed SIP message"),
                Err(e) => return Disposition::Transport(format!("receiving: {e}")),
            },
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                core.handle_timeout(Instant::now());
            }
        }
    }
}
