//! The sans-IO state machine of one third-party-controlled call (RFC 3725 flow I): it owns both
//! legs' dialogs and client transactions, takes messages and the time as inputs and is polled
//! for datagrams to send and the next instant to wake. No sockets, no clocks.
//!
//! Flow: INVITE agent without SDP → 200 (offer A) → INVITE customer with A → 200 (answer B) →
//! ACK customer → ACK agent with B. The legs use the Call-IDs `<call-id>-agent` and
//! `<call-id>-customer`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::digest::{Challenge, Credentials};
use super::message::{Message, Method, header_param, uri_of};
use super::{Disposition, Party, Transport};

/// Longest `X-Farsight-Reason` value sent to the agent's phone.
pub const MAX_REASON_BYTES: usize = 256;
/// Longest display name or Subject we put in a header.
const MAX_DISPLAY_BYTES: usize = 128;
const MAX_URI_BYTES: usize = 256;
const MAX_CALL_ID_BYTES: usize = 128;

/// Which leg of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Agent,
    Customer,
}

impl Role {
    fn other(self) -> Role {
        match self {
            Role::Agent => Role::Customer,
            Role::Customer => Role::Agent,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Customer => "customer",
        }
    }
}

/// RFC 3261 timer base values and the call's own limits.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// RTT estimate; INVITE retransmits at T1, 2·T1, 4·T1…; Timer B/F are 64·T1.
    pub t1: Duration,
    /// Cap of the non-INVITE retransmit interval.
    pub t2: Duration,
    /// How long a leg may ring before it is CANCELled.
    pub no_answer: Duration,
    /// Talk time after which both legs are hung up.
    pub max_call: Duration,
}

/// Everything the state machine needs to place one call.
#[derive(Debug, Clone)]
pub struct CallParams {
    pub call_id: String,
    pub agent: Party,
    pub customer: Party,
    pub reason: String,
    /// Our address as the peers should see it (Via sent-by and Contact).
    pub local: SocketAddr,
    pub transport: Transport,
    pub credentials: Option<Credentials>,
    pub timers: Timers,
}

/// A request that cannot be dialled as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("bad SIP URI {0:?}")]
    BadUri(String),
    #[error("bad Call-ID {0:?}")]
    BadCallId(String),
}

/// Bytes to send to one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub role: Role,
    pub dest: SocketAddr,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AgentRinging,
    CustomerRinging,
    Joined,
    Ending,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    Idle,
    Inviting,
    /// 2xx received, not yet ACKed (the agent waits here for the customer's answer).
    Answered,
    Confirmed,
    Ended,
}

/// A client transaction (RFC 3261 §17.1) reduced to what a UAC needs.
#[derive(Debug)]
struct ClientTx {
    branch: String,
    method: Method,
    bytes: Vec<u8>,
    /// Timer A/E; `None` over TCP or once a provisional response stopped INVITE retransmits.
    next_retransmit: Option<Instant>,
    interval: Duration,
    /// Timer B/F, or the 64·T1 guard after a CANCEL.
    deadline: Option<Instant>,
    provisional: bool,
}

#[derive(Debug)]
struct Ctx {
    local: SocketAddr,
    transport: Transport,
    timers: Timers,
}

impl Ctx {
    fn via(&self, branch: &str) -> String {
        let t = match self.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        };
        format!("SIP/2.0/{t} {};branch={branch};rport", self.local)
    }

    fn contact(&self) -> String {
        let t = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        format!("<sip:farsight@{};transport={t}>", self.local)
    }

    fn new_tx(&self, now: Instant, method: Method, branch: String, bytes: Vec<u8>) -> ClientTx {
        let t1 = self.timers.t1;
        ClientTx {
            branch,
            method,
            bytes,
            next_retransmit: (self.transport == Transport::Udp).then(|| now + t1),
            interval: t1,
            deadline: Some(now + t1 * 64),
            provisional: false,
        }
    }
}

#[derive(Debug)]
struct Leg {
    role: Role,
    party: Party,
    call_id: String,
    local_tag: String,
    from: String,
    /// Extra INVITE headers (Subject, X-Farsight-Reason on the agent leg).
    extra: Vec<(&'static str, String)>,
    cseq: u32,
    state: LegState,
    invite: Option<ClientTx>,
    invite_cseq: u32,
    invite_body: Vec<u8>,
    others: Vec<ClientTx>,
    /// ACKs sent for non-2xx finals, by INVITE branch: resent when the final is retransmitted.
    completed: Vec<(String, Vec<u8>)>,
    remote_tag: Option<String>,
    remote_target: Option<String>,
    route: Vec<String>,
    remote_sdp: Vec<u8>,
    /// The ACK for the 2xx, resent when the 2xx is retransmitted.
    ack: Option<Vec<u8>>,
    auth_tried: bool,
    no_answer_at: Option<Instant>,
    cancelled: bool,
    /// No answer fired before any provisional: CANCEL goes out when one arrives.
    cancel_pending: bool,
}

impl Leg {
    fn new(
        role: Role,
        params: &CallParams,
        seed: u64,
        from: String,
        extra: Vec<(&'static str, String)>,
    ) -> Leg {
        let party = match role {
            Role::Agent => &params.agent,
            Role::Customer => &params.customer,
        };
        let local_tag = format!("{:016x}", splitmix(seed ^ role as u64));
        Leg {
            role,
            party: party.clone(),
            call_id: format!("{}-{}", params.call_id, role.suffix()),
            from: format!("{from};tag={local_tag}"),
            local_tag,
            extra,
            cseq: 0,
            state: LegState::Idle,
            invite: None,
            invite_cseq: 0,
            invite_body: Vec::new(),
            others: Vec::new(),
            completed: Vec::new(),
            remote_tag: None,
            remote_target: None,
            route: Vec::new(),
            remote_sdp: Vec::new(),
            ack: None,
            auth_tried: false,
            no_answer_at: None,
            cancelled: false,
            cancel_pending: false,
        }
    }

    fn request(&self, ctx: &Ctx, method: Method, uri: &str, branch: &str, cseq: u32) -> Message {
        let to = match &self.remote_tag {
            Some(tag) if method != Method::Cancel => format!("<{}>;tag={tag}", self.party.uri),
            _ => format!("<{}>", self.party.uri),
        };
        let cseq = format!("{cseq} {}", method.as_str());
        Message::request(method, uri)
            .with("Via", ctx.via(branch))
            .with("Max-Forwards", "70")
            .with("From", self.from.clone())
            .with("To", to)
            .with("Call-ID", self.call_id.clone())
            .with("CSeq", cseq)
    }

    fn in_dialog(&self, ctx: &Ctx, method: Method, branch: &str, cseq: u32) -> Message {
        let target = self
            .remote_target
            .clone()
            .unwrap_or_else(|| self.party.uri.clone());
        let mut m = self.request(ctx, method, &target, branch, cseq);
        for r in &self.route {
            m.push("Route", r.clone());
        }
        m
    }

    /// Takes the dialog state from the 2xx to our INVITE (RFC 3261 §12.1.2).
    fn enter_dialog(&mut self, msg: &Message) {
        self.remote_tag = msg
            .header("To")
            .and_then(|v| header_param(v, "tag"))
            .map(str::to_string);
        self.remote_target = msg.header("Contact").map(|c| uri_of(c).to_string());
        self.route = msg
            .headers("Record-Route")
            .flat_map(split_list)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        self.remote_sdp = msg.body.clone();
        self.state = LegState::Answered;
    }

    fn transmit(&self, payload: Vec<u8>) -> Transmit {
        Transmit {
            role: self.role,
            dest: self.party.addr,
            payload,
        }
    }
}

/// One 3PCC call in progress. Drive it with [`Call::handle_input`] and [`Call::handle_timeout`],
/// drain [`Call::poll_transmit`], sleep until [`Call::poll_timeout`], stop at [`Call::outcome`].
#[derive(Debug)]
pub struct Call {
    ctx: Ctx,
    phase: Phase,
    agent: Leg,
    customer: Leg,
    credentials: Option<Credentials>,
    outbox: VecDeque<Transmit>,
    disposition: Option<Disposition>,
    talk_start: Option<Instant>,
    max_call_at: Option<Instant>,
    seed: u64,
    counter: u64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One line, no control characters, at most `max` bytes (cut on a character boundary).
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::new();
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn display_name(s: &str) -> String {
    sanitize(&s.replace(['"', '\\'], ""), MAX_DISPLAY_BYTES)
}

fn valid_uri(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    (lower.starts_with("sip:") || lower.starts_with("sips:"))
        && uri.len() > 4
        && uri.len() <= MAX_URI_BYTES
        && !uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\"".contains(c))
}

fn valid_call_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CALL_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+~@:".contains(&b))
}

/// The final response's disposition (for everything but 2xx and answered challenges).
pub fn disposition_for(status: u16) -> Disposition {
    match status {
        486 | 600 => Disposition::Busy,
        603 => Disposition::Declined,
        404 | 484 | 604 => Disposition::NotFound,
        401 | 407 => Disposition::AuthFailed,
        408 | 480 | 487 => Disposition::NoAnswer,
        500..=599 => Disposition::ServerError(status),
        _ => Disposition::Rejected(status),
    }
}

/// An SDP answer that declines every stream of `offer` (port 0), for ACKing a 2xx whose offer
/// we cannot use because the call is being torn down.
fn rejecting_answer(offer: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(offer);
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts: Vec<&str> = m.split(' ').collect();
            if parts.len() >= 2 {
                parts[1] = "0";
            }
            out.push_str("m=");
            out.push_str(&parts.join(" "));
            out.push_str("\r\n");
        } else if ["v=", "o=", "s=", "c=", "t="]
            .iter()
            .any(|p| line.starts_with(p))
        {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.into_bytes()
}

/// Splits a header list on commas outside `<...>` and quotes.
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut cur) = (0u32, false, String::new());
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Rejects URIs and Call-IDs that would break the headers they go into.
fn validate(params: &CallParams) -> Result<(), RequestError> {
    for uri in [&params.agent.uri, &params.customer.uri] {
        if !valid_uri(uri) {
            return Err(RequestError::BadUri(uri.chars().take(80).collect()));
        }
    }
    if !valid_call_id(&params.call_id) {
        return Err(RequestError::BadCallId(
            params.call_id.chars().take(80).collect(),
        ));
    }
    Ok(())
}

/// The agent leg's From and extra INVITE headers: the agent's phone shows whom it is about to
/// talk to and why.
fn agent_identity(params: &CallParams) -> (String, Vec<(&'static str, String)>) {
    let customer_name = display_name(&params.customer.display);
    let from = format!("\"{customer_name}\" <{}>", params.customer.uri);
    let extra = vec![
        (
            "Subject",
            sanitize(
                &format!("Outreach call to {customer_name} {}", params.customer.uri),
                MAX_DISPLAY_BYTES * 2,
            ),
        ),
        (
            "X-Farsight-Reason",
            sanitize(&params.reason, MAX_REASON_BYTES),
        ),
    ];
    (from, extra)
}

/// The customer leg's From: the agent's name at our address, with the digest user as the user
/// part when it is safe to put in a URI.
fn customer_identity(params: &CallParams) -> String {
    let user = params
        .credentials
        .as_ref()
        .map(|c| c.username.clone())
        .filter(|u| {
            u.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
        })
        .unwrap_or_else(|| "farsight".to_string());
    format!(
        "\"{}\" <sip:{user}@{}>",
        display_name(&params.agent.display),
        params.local.ip()
    )
}

impl Call {
    /// Validates the request and queues the INVITE to the agent. `seed` feeds tags and the
    /// digest cnonce (the shell passes a random value; tests a fixed one).
    pub fn new(params: CallParams, now: Instant, seed: u64) -> Result<Call, RequestError> {
        validate(&params)?;
        let ctx = Ctx {
            local: params.local,
            transport: params.transport,
            timers: params.timers,
        };
        let (agent_from, agent_extra) = agent_identity(&params);
        let customer_from = customer_identity(&params);
        let mut call = Call {
            agent: Leg::new(Role::Agent, &params, seed, agent_from, agent_extra),
            customer: Leg::new(Role::Customer, &params, seed, customer_from, Vec::new()),
            ctx,
            phase: Phase::AgentRinging,
            credentials: params.credentials,
            outbox: VecDeque::new(),
            disposition: None,
            talk_start: None,
            max_call_at: None,
            seed,
            counter: 0,
        };
        call.send_invite(now, Role::Agent, Vec::new(), None);
        call.agent.no_answer_at = Some(now + call.ctx.timers.no_answer);
        Ok(call)
    }

    /// The Call-ID used on one leg.
    pub fn leg_call_id(&self, role: Role) -> &str {
        &self.leg(role).call_id
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The final disposition, once every transaction of both legs has ended.
    pub fn outcome(&self) -> Option<Disposition> {
        (self.phase == Phase::Done)
            .then(|| self.disposition.clone())
            .flatten()
    }

    /// The earliest instant at which [`Call::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Done {
            return None;
        }
        let mut times = Vec::new();
        for leg in [&self.agent, &self.customer] {
            for tx in leg.invite.iter().chain(leg.others.iter()) {
                times.extend(tx.next_retransmit);
                times.extend(tx.deadline);
            }
            if leg.state == LegState::Inviting && !leg.cancelled {
                times.extend(leg.no_answer_at);
            }
        }
        if self.phase == Phase::Joined {
            times.extend(self.max_call_at);
        }
        times.into_iter().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let t2 = self.ctx.timers.t2;
        for role in [Role::Agent, Role::Customer] {
            let leg = self.leg_mut(role);
            let mut resend = Vec::new();
            for tx in leg.invite.iter_mut().chain(leg.others.iter_mut()) {
                if let Some(at) = tx.next_retransmit
                    && at <= now
                {
                    resend.push(tx.bytes.clone());
                    tx.interval = if tx.method == Method::Invite {
                        tx.interval * 2
                    } else {
                        (tx.interval * 2).min(t2)
                    };
                    tx.next_retransmit = Some(at + tx.interval);
                }
            }
            leg.others.retain(|t| t.deadline.is_none_or(|d| d > now));
            let expired = leg
                .invite
                .as_ref()
                .is_some_and(|t| t.deadline.is_some_and(|d| d <= now));
            let no_answer = leg.state == LegState::Inviting
                && !leg.cancelled
                && leg.no_answer_at.is_some_and(|t| t <= now);
            for bytes in resend {
                let t = self.leg(role).transmit(bytes);
                self.outbox.push_back(t);
            }
            if expired {
                let leg = self.leg_mut(role);
                leg.invite = None;
                leg.state = LegState::Ended;
                let d = if leg.cancelled && !leg.cancel_pending {
                    Disposition::NoAnswer
                } else {
                    Disposition::Transport(format!("no response from {}", leg.party.uri))
                };
                tracing::info!(leg = role.suffix(), "INVITE transaction timed out");
                self.on_leg_failed(now, role, d);
            } else if no_answer {
                tracing::info!(leg = role.suffix(), "no answer; cancelling");
                self.cancel(now, role);
            }
        }
        if self.phase == Phase::Joined
            && let Some(at) = self.max_call_at
            && at <= now
        {
            self.decide(Disposition::Answered {
                talk: now - self.talk_start.unwrap_or(now),
            });
            self.phase = Phase::Ending;
            self.hang_up(now, Role::Agent);
            self.hang_up(now, Role::Customer);
        }
        self.check_done();
    }

    /// A send failed (TCP connect refused, unreachable): the leg's transactions fail with it.
    pub fn handle_send_error(&mut self, now: Instant, role: Role, reason: &str) {
        let leg = self.leg_mut(role);
        leg.others.clear();
        if leg.invite.take().is_some() {
            leg.state = LegState::Ended;
            self.on_leg_failed(now, role, Disposition::Transport(reason.to_string()));
        } else {
            self.check_done();
        }
    }

    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, msg: Message) {
        let role = match msg.call_id() {
            Some(id) if id == self.agent.call_id => Some(Role::Agent),
            Some(id) if id == self.customer.call_id => Some(Role::Customer),
            _ => None,
        };
        match (role, msg.status()) {
            (Some(role), Some(status)) => self.on_response(now, role, status, &msg),
            (Some(role), None) => self.on_request(now, role, from, &msg),
            (None, None) if msg.method() != Some(&Method::Ack) => {
                self.respond(
                    Role::Agent,
                    from,
                    &msg,
                    481,
                    "Call/Transaction Does Not Exist",
                );
            }
            (None, _) => {}
        }
    }

    fn leg(&self, role: Role) -> &Leg {
        match role {
            Role::Agent => &self.agent,
            Role::Customer => &self.customer,
        }
    }

    fn leg_mut(&mut self, role: Role) -> &mut Leg {
        match role {
            Role::Agent => &mut self.agent,
            Role::Customer => &mut self.customer,
        }
    }

    fn next_branch(&mut self) -> String {
        self.counter += 1;
        format!(
            "z9hG4bK{:012x}{}",
            splitmix(self.seed ^ 0x5a5a) & 0xffff_ffff_ffff,
            self.counter
        )
    }

    fn decide(&mut self, d: Disposition) {
        if self.disposition.is_none() {
            tracing::info!(disposition = ?d, "call disposition");
            self.disposition = Some(d);
        }
    }

    fn send_invite(
        &mut self,
        now: Instant,
        role: Role,
        body: Vec<u8>,
        auth: Option<(&str, String)>,
    ) {
        let branch = self.next_branch();
        let ctx = &self.ctx;
        let leg = match role {
            Role::Agent => &mut self.agent,
            Role::Customer => &mut self.customer,
        };
        leg.cseq += 1;
        leg.invite_cseq = leg.cseq;
        let uri = leg.party.uri.clone();
        let mut m = leg
            .request(ctx, Method::Invite, &uri, &branch, leg.cseq)
            .with("Contact", ctx.contact())
            .with("User-Agent", "Farsight");
        for (n, v) in &leg.extra {
            m.push(n, v.clone());
        }
        if let Some((n, v)) = auth {
            m.push(n, v);
        }
        if !body.is_empty() {
            m.push("Content-Type", "application/sdp");
        }
        m.body = body.clone();
        leg.invite_body = body;
        let bytes = m.to_bytes();
        leg.invite = Some(ctx.new_tx(now, Method::Invite, branch, bytes.clone()));
        leg.state = LegState::Inviting;
        let t = leg.transmit(bytes);
        self.outbox.push_back(t);
    }

    fn send_ack(&mut self, role: Role, body: Vec<u8>) {
        let branch = self.next_branch();
        let ctx = &self.ctx;
        let leg = match role {
            Role::Agent => &mut self.agent,
            Role::Customer => &mut self.customer,
        };
        let mut m = leg.in_dialog(ctx, Method::Ack, &branch, leg.invite_cseq);
        if !body.is_empty() {
            m.push("Content-Type", "application/sdp");
        }
        m.body = body;
        let bytes = m.to_bytes();
        leg.ack = Some(bytes.clone());
        leg.state = LegState::Confirmed;
        let t = leg.transmit(bytes);
        self.outbox.push_back(t);
    }

    fn send_bye(&mut self, now: Instant, role: Role) {
        let branch = self.next_branch();
        let ctx = &self.ctx;
        let leg = match role {
            Role::Agent => &mut self.agent,
            Role::Customer => &mut self.customer,
        };
        leg.cseq += 1;
        let bytes = leg
            .in_dialog(ctx, Method::Bye, &branch, leg.cseq)
            .to_bytes();
        leg.others
            .push(ctx.new_tx(now, Method::Bye, branch, bytes.clone()));
        leg.state = LegState::Ended;
        let t = leg.transmit(bytes);
        self.outbox.push_back(t);
    }

    fn send_cancel(&mut self, now: Instant, role: Role) {
        let ctx = &self.ctx;
        let leg = match role {
            Role::Agent => &mut self.agent,
            Role::Customer => &mut self.customer,
        };
        let Some(invite) = leg.invite.as_mut() else {
            return;
        };
        // RFC 3261 §9.1: give the INVITE 64·T1 after the CANCEL to end with a final response.
        invite.deadline = Some(now + ctx.timers.t1 * 64);
        let branch = invite.branch.clone();
        let uri = leg.party.uri.clone();
        let bytes = leg
            .request(ctx, Method::Cancel, &uri, &branch, leg.invite_cseq)
            .to_bytes();
        leg.others
            .push(ctx.new_tx(now, Method::Cancel, branch, bytes.clone()));
        let t = leg.transmit(bytes);
        self.outbox.push_back(t);
    }

    /// Stops a ringing leg: CANCEL now if it has answered provisionally, else as soon as it does.
    fn cancel(&mut self, now: Instant, role: Role) {
        let leg = self.leg_mut(role);
        if leg.state != LegState::Inviting || leg.cancelled {
            return;
        }
        leg.cancelled = true;
        if leg.invite.as_ref().is_some_and(|t| t.provisional) {
            self.send_cancel(now, role);
        } else {
            leg.cancel_pending = true;
        }
    }

    /// Ends whatever this leg has: CANCEL a ringing INVITE, ACK an unacknowledged 2xx, BYE.
    fn hang_up(&mut self, now: Instant, role: Role) {
        match self.leg(role).state {
            LegState::Inviting => self.cancel(now, role),
            LegState::Answered => {
                // The agent's 2xx carried an offer, so its ACK must carry an answer: decline it.
                let body = match role {
                    Role::Agent => rejecting_answer(&self.agent.remote_sdp),
                    Role::Customer => Vec::new(),
                };
                self.send_ack(role, body);
                self.send_bye(now, role);
            }
            LegState::Confirmed => self.send_bye(now, role),
            LegState::Idle | LegState::Ended => {}
        }
    }

    fn on_leg_failed(&mut self, now: Instant, role: Role, d: Disposition) {
        match role {
            Role::Agent => self.decide(Disposition::AgentUnavailable(Box::new(d))),
            Role::Customer => self.decide(d),
        }
        if self.phase != Phase::Done {
            self.phase = Phase::Ending;
        }
        self.hang_up(now, Role::Agent);
        self.hang_up(now, Role::Customer);
        self.check_done();
    }

    fn check_done(&mut self) {
        let idle = |l: &Leg| l.invite.is_none() && l.others.is_empty();
        if self.phase == Phase::Ending && idle(&self.agent) && idle(&self.customer) {
            self.phase = Phase::Done;
        }
    }

    fn on_response(&mut self, now: Instant, role: Role, status: u16, msg: &Message) {
        let (Some(cseq), Some(branch)) = (msg.cseq(), msg.branch()) else {
            return;
        };
        if cseq.method == Method::Invite {
            self.on_invite_response(now, role, status, branch, msg);
            return;
        }
        let t2 = self.ctx.timers.t2;
        let leg = self.leg_mut(role);
        if let Some(i) = leg
            .others
            .iter()
            .position(|t| t.branch == branch && t.method == cseq.method)
        {
            if status >= 200 {
                leg.others.remove(i);
            } else {
                let tx = &mut leg.others[i];
                tx.provisional = true;
                tx.interval = t2;
            }
        }
        self.check_done();
    }

    fn on_invite_response(
        &mut self,
        now: Instant,
        role: Role,
        status: u16,
        branch: &str,
        msg: &Message,
    ) {
        if self
            .leg(role)
            .invite
            .as_ref()
            .is_none_or(|t| t.branch != branch)
        {
            self.repeat_ack(role, status, branch);
        } else if status < 200 {
            self.on_invite_provisional(now, role, status);
        } else {
            let leg = self.leg_mut(role);
            leg.invite = None;
            leg.others.retain(|t| t.method != Method::Cancel);
            if status < 300 {
                leg.enter_dialog(msg);
                self.on_answered(now, role);
            } else {
                self.on_invite_rejected(now, role, status, branch, msg);
            }
        }
    }

    /// A retransmitted final response: repeat our ACK for it.
    fn repeat_ack(&mut self, role: Role, status: u16, branch: &str) {
        let leg = self.leg(role);
        let ack = if (200..300).contains(&status) {
            leg.ack.clone()
        } else {
            leg.completed
                .iter()
                .find(|(b, _)| b == branch)
                .map(|(_, a)| a.clone())
        };
        if let Some(ack) = ack {
            let t = leg.transmit(ack);
            self.outbox.push_back(t);
        }
    }

    fn on_invite_provisional(&mut self, now: Instant, role: Role, status: u16) {
        let leg = self.leg_mut(role);
        let cancel_now = leg.cancel_pending;
        leg.cancel_pending = false;
        if let Some(tx) = leg.invite.as_mut() {
            tx.provisional = true;
            tx.next_retransmit = None;
            if !leg.cancelled {
                tx.deadline = None; // Proceeding: the no-answer timer takes over.
            }
        }
        if status == 180 || status == 183 {
            tracing::debug!(leg = role.suffix(), status, "ringing");
        }
        if cancel_now {
            self.send_cancel(now, role);
        }
    }

    /// A non-2xx final response: ACK it, then retry with credentials or give the leg up.
    fn on_invite_rejected(
        &mut self,
        now: Instant,
        role: Role,
        status: u16,
        branch: &str,
        msg: &Message,
    ) {
        self.ack_rejection(role, branch, msg);
        if self.retry_with_credentials(now, role, status, msg) {
            return;
        }
        let d = if self.leg(role).cancelled {
            Disposition::NoAnswer
        } else {
            disposition_for(status)
        };
        self.on_leg_failed(now, role, d);
    }

    /// The ACK for a non-2xx final belongs to the INVITE's transaction: same branch
    /// (RFC 3261 §17.1.1.3). It is kept to answer retransmissions of that final.
    fn ack_rejection(&mut self, role: Role, branch: &str, msg: &Message) {
        let ctx = &self.ctx;
        let leg = match role {
            Role::Agent => &mut self.agent,
            Role::Customer => &mut self.customer,
        };
        let uri = leg.party.uri.clone();
        let mut ack = leg.request(ctx, Method::Ack, &uri, branch, leg.invite_cseq);
        // The ACK's To carries the tag of the response it acknowledges.
        ack.set("To", msg.header("To").unwrap_or_default().to_string());
        let ack = ack.to_bytes();
        leg.completed.push((branch.to_string(), ack.clone()));
        let t = leg.transmit(ack);
        self.outbox.push_back(t);
        leg.state = LegState::Ended;
    }

    /// Answers a 401/407 once per leg by resending the INVITE with an Authorization header.
    /// Returns whether it did.
    fn retry_with_credentials(
        &mut self,
        now: Instant,
        role: Role,
        status: u16,
        msg: &Message,
    ) -> bool {
        let leg = self.leg(role);
        if !(status == 401 || status == 407) || leg.auth_tried || leg.cancelled {
            return false;
        }
        let (challenge_header, auth_header) = if status == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let challenge = msg.header(challenge_header).map(Challenge::parse);
        let (Some(Ok(ch)), Some(creds)) = (challenge, self.credentials.clone()) else {
            return false;
        };
        let uri = leg.party.uri.clone();
        self.leg_mut(role).auth_tried = true;
        let cnonce = format!("{:016x}", splitmix(self.seed ^ 0xc0ffee));
        let auth = ch.authorize(&creds, "INVITE", &uri, &cnonce, 1);
        let body = self.leg(role).invite_body.clone();
        tracing::debug!(leg = role.suffix(), status, "answering digest challenge");
        self.send_invite(now, role, body, Some((auth_header, auth)));
        true
    }

    fn on_answered(&mut self, now: Instant, role: Role) {
        if self.leg(role).cancelled {
            // The 2xx crossed our CANCEL: the call is established, so end it properly.
            self.hang_up(now, role);
            self.on_leg_failed(now, role, Disposition::NoAnswer);
            return;
        }
        match (role, self.phase) {
            (Role::Agent, Phase::AgentRinging) => {
                if self.agent.remote_sdp.is_empty() {
                    // Flow I needs the agent's offer in its 2xx.
                    self.on_leg_failed(now, role, Disposition::Rejected(488));
                    return;
                }
                self.phase = Phase::CustomerRinging;
                let offer = self.agent.remote_sdp.clone();
                self.send_invite(now, Role::Customer, offer, None);
                self.customer.no_answer_at = Some(now + self.ctx.timers.no_answer);
            }
            (Role::Customer, Phase::CustomerRinging) => {
                if self.customer.remote_sdp.is_empty() {
                    self.on_leg_failed(now, role, Disposition::Rejected(488));
                    return;
                }
                self.send_ack(Role::Customer, Vec::new());
                let answer = self.customer.remote_sdp.clone();
                self.send_ack(Role::Agent, answer);
                self.phase = Phase::Joined;
                self.talk_start = Some(now);
                self.max_call_at = Some(now + self.ctx.timers.max_call);
                tracing::info!(call = %self.agent.call_id, "agent and customer joined");
            }
            _ => {
                self.hang_up(now, role);
                self.check_done();
            }
        }
    }

    fn on_request(&mut self, now: Instant, role: Role, from: SocketAddr, msg: &Message) {
        match msg.method() {
            Some(Method::Ack) | None => {}
            Some(Method::Bye) => {
                self.respond(role, from, msg, 200, "OK");
                let leg = self.leg_mut(role);
                let was = leg.state;
                if was == LegState::Ended || was == LegState::Idle {
                    return; // a retransmitted BYE, or one for a dialog we never had
                }
                leg.state = LegState::Ended;
                tracing::info!(leg = role.suffix(), "remote hung up");
                match self.phase {
                    Phase::Joined => {
                        let talk = now - self.talk_start.unwrap_or(now);
                        self.decide(Disposition::Answered { talk });
                    }
                    // The agent gave up while the customer was ringing.
                    Phase::CustomerRinging => self.decide(Disposition::AgentUnavailable(Box::new(
                        Disposition::Declined,
                    ))),
                    _ => {}
                }
                self.phase = Phase::Ending;
                self.hang_up(now, role.other());
                self.check_done();
            }
            Some(Method::Options) => self.respond(role, from, msg, 200, "OK"),
            Some(_) => self.respond(role, from, msg, 501, "Not Implemented"),
        }
    }

    fn respond(&mut self, role: Role, from: SocketAddr, req: &Message, status: u16, reason: &str) {
        let mut m = Message::response(status, reason);
        for v in req.headers("Via") {
            m.push("Via", v.to_string());
        }
        let to = req.header("To").unwrap_or_default();
        let to = if header_param(to, "tag").is_some() {
            to.to_string()
        } else {
            format!("{to};tag={}", self.leg(role).local_tag)
        };
        m.push("From", req.header("From").unwrap_or_default().to_string());
        m.push("To", to);
        m.push("Call-ID", req.call_id().unwrap_or_default().to_string());
        m.push("CSeq", req.header("CSeq").unwrap_or_default().to_string());
        self.outbox.push_back(Transmit {
            role,
            dest: from,
            payload: m.to_bytes(),
        });
    }
}

#[cfg(test)]
mod tests;
