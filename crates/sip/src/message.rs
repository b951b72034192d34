//! SIP message codec (RFC 3261 §7): one typed [`Message`] parsed from a datagram or framed out
//! of a byte stream, and serialized back. Every parse is bounded by [`MAX_MESSAGE_BYTES`] and
//! [`MAX_HEADERS`] and fails with a [`ParseError`] naming what was wrong, never a panic.

use std::fmt::Write as _;

/// Largest SIP message accepted from the network, head and body together.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most header fields accepted in one message.
pub const MAX_HEADERS: usize = 128;

/// A request method; the ones the dialer acts on are named, the rest kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Other(String),
}

impl Method {
    pub fn parse(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Other(s) => s,
        }
    }
}

/// The first line: a request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: String },
    Response { status: u16, reason: String },
}

/// The parsed CSeq header: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

/// Why bytes from the network are not a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("no blank line ends the headers")]
    NoHeaderEnd,
    #[error("headers are not UTF-8")]
    NotUtf8,
    #[error("bad start line {0:?}")]
    BadStartLine(String),
    #[error("header line {line}: {why}")]
    BadHeader { line: usize, why: &'static str },
    #[error("more than {limit} headers")]
    TooManyHeaders { limit: usize },
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("bad Content-Length {0:?}")]
    BadContentLength(String),
    #[error("bad CSeq {0:?}")]
    BadCSeq(String),
    #[error("body truncated: Content-Length {declared} but {got} bytes follow")]
    BodyTruncated { declared: usize, got: usize },
}

/// A SIP request or response. Header names are stored in their long canonical form (compact
/// forms are expanded on parse) and looked up case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Compact header forms (RFC 3261 §7.3.3 and the registry) to their long names.
fn expand_compact(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "i" => "Call-ID",
        "m" => "Contact",
        "f" => "From",
        "t" => "To",
        "v" => "Via",
        "l" => "Content-Length",
        "c" => "Content-Type",
        "e" => "Content-Encoding",
        "k" => "Supported",
        "s" => "Subject",
        _ => return None,
    })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

impl Message {
    pub fn request(method: Method, uri: impl Into<String>) -> Message {
        Message {
            start: StartLine::Request {
                method,
                uri: uri.into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn response(status: u16, reason: impl Into<String>) -> Message {
        Message {
            start: StartLine::Response {
                status,
                reason: reason.into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Appends a header (builder style). Content-Length is always computed on serialize.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Message {
        self.push(name, value);
        self
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_string(), value.into()));
    }

    /// Replaces the first header with this name, or appends it.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(h) => h.1 = value.into(),
            None => self.push(name, value),
        }
    }

    /// The first header with this name (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header with this name, in order.
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    pub fn cseq(&self) -> Option<CSeq> {
        parse_cseq(self.header("CSeq")?).ok()
    }

    /// The first (topmost) Via value, which may be one of several comma-separated ones.
    pub fn top_via(&self) -> Option<&str> {
        let first = self.header("Via")?;
        Some(first.split(',').next().unwrap_or(first).trim())
    }

    pub fn branch(&self) -> Option<&str> {
        header_param(self.top_via()?, "branch")
    }

    /// Parses one whole message from a datagram. Without Content-Length the body is the rest;
    /// bytes beyond Content-Length are ignored (RFC 3261 §18.3).
    pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
        if buf.len() > MAX_MESSAGE_BYTES {
            return Err(ParseError::TooLarge {
                len: buf.len(),
                limit: MAX_MESSAGE_BYTES,
            });
        }
        let (head_len, body_start) = find_head_end(buf).ok_or(ParseError::NoHeaderEnd)?;
        let head = std::str::from_utf8(&buf[..head_len]).map_err(|_| ParseError::NotUtf8)?;
        let (start, headers, content_length) = parse_head(head)?;
        let rest = &buf[body_start..];
        let body = match content_length {
            Some(n) if n > rest.len() => {
                return Err(ParseError::BodyTruncated {
                    declared: n,
                    got: rest.len(),
                });
            }
            Some(n) => rest[..n].to_vec(),
            None => rest.to_vec(),
        };
        Ok(Message {
            start,
            headers,
            body,
        })
    }

    /// Frames one message out of a byte stream (TCP). `Ok(None)` asks for more bytes;
    /// `Ok(Some((msg, used)))` consumed `used` bytes (including keep-alive CRLFs before it).
    pub fn parse_stream(buf: &[u8]) -> Result<Option<(Message, usize)>, ParseError> {
        let skip = buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        let data = &buf[skip..];
        let Some((head_len, body_start)) = find_head_end(data) else {
            if data.len() > MAX_MESSAGE_BYTES {
                return Err(ParseError::TooLarge {
                    len: data.len(),
                    limit: MAX_MESSAGE_BYTES,
                });
            }
            return Ok(None);
        };
        let head = std::str::from_utf8(&data[..head_len]).map_err(|_| ParseError::NotUtf8)?;
        let (start, headers, content_length) = parse_head(head)?;
        let len = content_length.ok_or(ParseError::MissingHeader("Content-Length"))?;
        let total = body_start.saturating_add(len);
        if total > MAX_MESSAGE_BYTES {
            return Err(ParseError::TooLarge {
                len: total,
                limit: MAX_MESSAGE_BYTES,
            });
        }
        if data.len() < total {
            return Ok(None);
        }
        let msg = Message {
            start,
            headers,
            body: data[body_start..total].to_vec(),
        };
        Ok(Some((msg, skip + total)))
    }

    /// Serializes with CRLF line ends and a Content-Length computed from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(512);
        match &self.start {
            StartLine::Request { method, uri } => {
                let _ = write!(s, "{} {} SIP/2.0\r\n", method.as_str(), uri);
            }
            StartLine::Response { status, reason } => {
                let _ = write!(s, "SIP/2.0 {status} {reason}\r\n");
            }
        }
        for (n, v) in &self.headers {
            if !n.eq_ignore_ascii_case("Content-Length") {
                let _ = write!(s, "{n}: {v}\r\n");
            }
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// Where the head ends: (head length without the blank line, offset of the body).
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let limit = buf.len().min(MAX_MESSAGE_BYTES);
    let window = &buf[..limit];
    if let Some(i) = window.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some((i, i + 4));
    }
    window
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2))
}

type Head = (StartLine, Vec<(String, String)>, Option<usize>);

fn parse_head(head: &str) -> Result<Head, ParseError> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or("");
    let start = parse_start_line(first)?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        if line.starts_with([' ', '\t']) {
            // Folded continuation of the previous header (RFC 3261 §7.3.1).
            let Some(last) = headers.last_mut() else {
                return Err(ParseError::BadHeader {
                    line: line_no,
                    why: "continuation before any header",
                });
            };
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(ParseError::BadHeader {
            line: line_no,
            why: "no colon",
        })?;
        let name = name.trim();
        if !is_token(name) {
            return Err(ParseError::BadHeader {
                line: line_no,
                why: "name is not a token",
            });
        }
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::TooManyHeaders { limit: MAX_HEADERS });
        }
        let name = expand_compact(name).map_or_else(|| name.to_string(), str::to_string);
        headers.push((name, value.trim().to_string()));
    }
    let find = |n: &str| {
        headers
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    for required in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if find(required).is_none_or(str::is_empty) {
            return Err(ParseError::MissingHeader(required));
        }
    }
    parse_cseq(find("CSeq").unwrap_or_default())?;
    let content_length = match find("Content-Length") {
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| ParseError::BadContentLength(v.to_string()))?,
        ),
        None => None,
    };
    Ok((start, headers, content_length))
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    let bad = || ParseError::BadStartLine(line.chars().take(80).collect());
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 {
            return Err(bad());
        }
        let status: u16 = code.parse().map_err(|_| bad())?;
        if !(100..=699).contains(&status) {
            return Err(bad());
        }
        return Ok(StartLine::Response {
            status,
            reason: reason.to_string(),
        });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !is_token(method) || uri.is_empty() || version != "SIP/2.0" {
        return Err(bad());
    }
    Ok(StartLine::Request {
        method: Method::parse(method),
        uri: uri.to_string(),
    })
}

fn parse_cseq(value: &str) -> Result<CSeq, ParseError> {
    let bad = || ParseError::BadCSeq(value.chars().take(80).collect());
    let mut it = value.split_whitespace();
    let (Some(seq), Some(method), None) = (it.next(), it.next(), it.next()) else {
        return Err(bad());
    };
    let seq = seq.parse().map_err(|_| bad())?;
    if !is_token(method) {
        return Err(bad());
    }
    Ok(CSeq {
        seq,
        method: Method::parse(method),
    })
}

/// A `;name=value` parameter of a header value, taken from outside any `<...>` URI.
pub fn header_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let tail = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value.find(';').map_or("", |i| &value[i..]),
    };
    tail.split(';').find_map(|p| {
        let p = p.trim();
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

/// The URI of a From/To/Contact value: inside `<...>` if present, else up to the first `;`.
pub fn uri_of(value: &str) -> &str {
    if let (Some(a), Some(b)) = (value.find('<'), value.find('>'))
        && a < b
    {
        return value[a + 1..b].trim();
    }
    value.split(';').next().unwrap_or(value).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds, SIP/2.0/UDP 10.0.0.2\r\n\
Max-Forwards: 70\r\n\
t: Bob <sip:bob@example.com>\r\n\
f: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@10.0.0.1>\r\n\
c: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\r\nEXTRA";

    #[test]
    fn compact_forms_expand_and_body_is_cut_at_content_length() {
        let m = Message::parse(INVITE).expect("valid");
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.call_id(), Some("a84b4c76e66710@pc33"));
        assert_eq!(m.header("content-type"), Some("application/sdp"));
        assert_eq!(m.branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(
            m.cseq(),
            Some(CSeq {
                seq: 314159,
                method: Method::Invite
            })
        );
        assert_eq!(
            header_param(m.header("From").unwrap_or(""), "tag"),
            Some("1928301774")
        );
        assert_eq!(
            uri_of(m.header("Contact").unwrap_or("")),
            "sip:alice@10.0.0.1"
        );
        assert_eq!(m.body, b"v=0\r");
    }

    #[test]
    fn serialized_message_parses_back_identically() {
        let m = Message::parse(INVITE).expect("valid");
        let again = Message::parse(&m.to_bytes()).expect("round trip");
        assert_eq!(again, m);
    }

    #[test]
    fn stream_framing_waits_for_the_body_and_skips_keepalives() {
        let mut bytes = b"\r\n\r\n".to_vec();
        bytes.extend_from_slice(&INVITE[..INVITE.len() - 8]); // ends mid-body, after "v="
        assert_eq!(Message::parse_stream(&bytes), Ok(None));
        bytes.extend_from_slice(b"0\rNEXT");
        let (m, used) = Message::parse_stream(&bytes)
            .expect("ok")
            .expect("complete");
        assert_eq!(m.body, b"v=0\r");
        assert_eq!(&bytes[used..], b"NEXT");
    }

    #[test]
    fn oversized_and_malformed_input_gives_typed_errors() {
        let big = vec![b'a'; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            Message::parse(&big),
            Err(ParseError::TooLarge { .. })
        ));
        assert!(matches!(
            Message::parse_stream(&big),
            Err(ParseError::TooLarge { .. })
        ));
        assert_eq!(Message::parse(b"hello"), Err(ParseError::NoHeaderEnd));
        assert!(matches!(
            Message::parse(b"SIP/2.0 99 Odd\r\n\r\n"),
            Err(ParseError::BadStartLine(_))
        ));
        let no_callid =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nFrom: a\r\nTo: b\r\nCSeq: 1 INVITE\r\n\r\n";
        assert_eq!(
            Message::parse(no_callid),
            Err(ParseError::MissingHeader("Call-ID"))
        );
        let short = b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h\r\nf: a\r\nt: b\r\ni: x\r\nCSeq: 1 INVITE\r\nl: 10\r\n\r\nabc";
        assert_eq!(
            Message::parse(short),
            Err(ParseError::BodyTruncated {
                declared: 10,
                got: 3
            })
        );
        let mut many = b"OPTIONS sip:a SIP/2.0\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"X: y\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(
            Message::parse(&many),
            Err(ParseError::TooManyHeaders { .. })
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Fuzz-like: every prefix and many byte flips of a valid message.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for cut in 0..INVITE.len() {
            let _ = Message::parse(&INVITE[..cut]);
            let _ = Message::parse_stream(&INVITE[..cut]);
        }
        for _ in 0..5000 {
            let mut m = INVITE.to_vec();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = (state as usize) % m.len();
                m[i] = (state >> 32) as u8;
            }
            let _ = Message::parse(&m);
            let _ = Message::parse_stream(&m);
        }
    }
}
