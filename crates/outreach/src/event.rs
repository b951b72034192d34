//! Usage events and user profiles as the platform sends them: parsing and validation of
//! one row at a time, so a bad row is rejected by number while the good rows are kept.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest request body `POST /v1/events` accepts.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Most rows in one batch.
pub const MAX_BATCH_ROWS: usize = 100_000;
pub const MAX_ID_LEN: usize = 128;
pub const MAX_USER_LEN: usize = 128;
pub const MAX_TOPIC_LEN: usize = 64;
/// Bytes of `attrs` once serialised.
pub const MAX_ATTRS_LEN: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A documentation page read; `topic` is the page's subject.
    DocView,
    /// An API call that failed; `attrs.code` may carry the error code.
    ApiError,
    /// The SDK version the user's app runs; `attrs.version` as `MAJOR.MINOR.PATCH`.
    SdkVersion,
    /// A feature of the platform used successfully.
    FeatureUse,
    /// The user contacted support about `topic`: what the model predicts.
    SupportContact,
    /// Farsight (or someone) called the user about `topic`.
    OutreachCall,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::DocView => "doc_view",
            EventKind::ApiError => "api_error",
            EventKind::SdkVersion => "sdk_version",
            EventKind::FeatureUse => "feature_use",
            EventKind::SupportContact => "support_contact",
            EventKind::OutreachCall => "outreach_call",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

/// One usage event. `ts` is milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub user: String,
    pub ts: i64,
    pub kind: EventKind,
    /// Lower-case subject such as `live-streaming`; empty for `sdk_version`.
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub attrs: Map<String, Value>,
}

impl Event {
    /// The SDK version an `sdk_version` event reports.
    pub fn sdk_version(&self) -> Option<SdkVersion> {
        self.attrs
            .get("version")
            .and_then(Value::as_str)
            .and_then(SdkVersion::parse)
    }
}

/// `MAJOR.MINOR.PATCH`, compared numerically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SdkVersion(pub u32, pub u32, pub u32);

impl SdkVersion {
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().trim_start_matches('v').split('.');
        let mut next = || parts.next().map(str::parse::<u32>);
        let major = next()?.ok()?;
        let minor = next().unwrap_or(Ok(0)).ok()?;
        let patch = next().unwrap_or(Ok(0)).ok()?;
        Some(Self(major, minor, patch))
    }

    /// How far behind `newest`, in minor releases (a major release counts as ten).
    pub fn lag_behind(self, newest: SdkVersion) -> f64 {
        if self >= newest {
            return 0.0;
        }
        let major = newest.0.saturating_sub(self.0) as f64;
        if major > 0.0 {
            major * 10.0 + newest.1 as f64
        } else {
            newest.1.saturating_sub(self.1) as f64
        }
    }
}

impl std::fmt::Display for SdkVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Support plan, in increasing order of priority.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    #[default]
    Free,
    Standard,
    Gold,
    Platinum,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Standard => "standard",
            Tier::Gold => "gold",
            Tier::Platinum => "platinum",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }

    /// 0 for free up to 3 for platinum: the model's tier feature.
    pub fn rank(self) -> f64 {
        self as u8 as f64
    }
}

/// What the platform tells us about a user: plan, where they are, how to reach them and
/// whether we may.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    pub user: String,
    #[serde(default)]
    pub tier: Tier,
    /// IANA time zone, e.g. `Europe/Berlin`.
    #[serde(default = "utc")]
    pub tz: String,
    /// E.164, e.g. `+4930123456`.
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub consent: bool,
    #[serde(default)]
    pub do_not_call: bool,
}

fn utc() -> String {
    "UTC".to_string()
}

/// A row that was not accepted, by its 1-based number in the batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub row: usize,
    pub reason: String,
}

/// Why a whole batch is refused (a bad row only rejects that row).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("body is not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    #[error("body is not a JSON array: {0}")]
    NotJsonArray(serde_json::Error),
    #[error("{0} rows exceed the limit of {MAX_BATCH_ROWS} per batch")]
    TooManyRows(usize),
}

/// Why one row of a batch was rejected; the text is what the caller sees in `rejected`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RowRejection {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("row is not a JSON object")]
    NotObject,
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{field} must be a string, got {got}")]
    NotString { field: &'static str, got: String },
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{field} is {len} bytes, limit {limit}")]
    TooLong {
        field: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("ts {0} is not a millisecond time between 1970 and 9999")]
    TsOutOfRange(String),
    #[error("ts {value:?} is not RFC 3339: {reason}")]
    TsNotRfc3339 { value: String, reason: String },
    #[error("ts must be RFC 3339 or milliseconds, got {0}")]
    TsNotTime(String),
    #[error(
        "kind {0:?} is not one of doc_view, api_error, sdk_version, feature_use, \
         support_contact, outreach_call"
    )]
    UnknownKind(String),
    #[error("attrs must be an object, got {0}")]
    AttrsNotObject(String),
    #[error("attrs is {0} bytes, limit {MAX_ATTRS_LEN}")]
    AttrsTooLong(usize),
    #[error("sdk_version needs attrs.version as MAJOR.MINOR.PATCH")]
    NoSdkVersion,
    #[error("not a user profile: {0}")]
    NotProfile(String),
    #[error("user must be 1 to {MAX_USER_LEN} bytes")]
    UserLength,
    #[error("tz {0:?} is not an IANA time zone")]
    UnknownTimeZone(String),
    #[error("phone {0:?} is not E.164 (+ and 8 to 15 digits)")]
    NotE164(String),
}

/// A row's 1-based number and its JSON, or why it is not JSON.
pub type NumberedRow = (usize, Result<Value, RowRejection>);

/// Splits a batch into rows: a JSON array, or NDJSON (one object per line, blank lines
/// skipped). Row numbers are array positions or line numbers, from 1. A body that is not
/// valid JSON as a whole still yields its good lines when it is NDJSON.
pub fn split_rows(body: &[u8]) -> Result<Vec<NumberedRow>, BatchError> {
    let text = std::str::from_utf8(body).map_err(BatchError::NotUtf8)?;
    let rows: Vec<_> = if text.trim_start().starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(text).map_err(BatchError::NotJsonArray)?;
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, Ok(v)))
            .collect()
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                (
                    i + 1,
                    serde_json::from_str(line).map_err(|e| RowRejection::NotJson(e.to_string())),
                )
            })
            .collect()
    };
    if rows.len() > MAX_BATCH_ROWS {
        return Err(BatchError::TooManyRows(rows.len()));
    }
    Ok(rows)
}

fn bounded(v: &Value, field: &'static str, limit: usize) -> Result<String, RowRejection> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if field == "id" => n.to_string(),
        Value::Null => return Err(RowRejection::Missing(field)),
        other => {
            return Err(RowRejection::NotString {
                field,
                got: other.to_string(),
            });
        }
    };
    if s.is_empty() {
        return Err(RowRejection::Empty(field));
    }
    if s.len() > limit {
        return Err(RowRejection::TooLong {
            field,
            len: s.len(),
            limit,
        });
    }
    Ok(s)
}

/// Milliseconds since the epoch from an RFC 3339 string or a number of milliseconds.
pub fn parse_ts(v: &Value) -> Result<i64, RowRejection> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .filter(|ms| (0..=253_402_300_799_999).contains(ms))
            .ok_or_else(|| RowRejection::TsOutOfRange(n.to_string())),
        Value::String(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .map_err(|e| RowRejection::TsNotRfc3339 {
                value: s.clone(),
                reason: e.to_string(),
            }),
        Value::Null => Err(RowRejection::Missing("ts")),
        other => Err(RowRejection::TsNotTime(other.to_string())),
    }
}

/// Validates one event row.
pub fn parse_event(v: Value) -> Result<Event, RowRejection> {
    let Value::Object(obj) = v else {
        return Err(RowRejection::NotObject);
    };
    let get = |k: &str| obj.get(k).cloned().unwrap_or(Value::Null);
    let id = bounded(&get("id"), "id", MAX_ID_LEN)?;
    let user = bounded(&get("user"), "user", MAX_USER_LEN)?;
    let ts = parse_ts(&get("ts"))?;
    let kind_text = bounded(&get("kind"), "kind", 32)?;
    let kind =
        EventKind::parse(&kind_text).ok_or_else(|| RowRejection::UnknownKind(kind_text.clone()))?;
    // The SDK version belongs to the user: any topic it carries is ignored.
    let topic = match kind {
        EventKind::SdkVersion => String::new(),
        _ => bounded(&get("topic"), "topic", MAX_TOPIC_LEN)?
            .trim()
            .to_lowercase(),
    };
    let attrs = match get("attrs") {
        Value::Null => Map::new(),
        Value::Object(m) => m,
        other => return Err(RowRejection::AttrsNotObject(other.to_string())),
    };
    let attrs_len = serde_json::to_string(&attrs).map(|s| s.len()).unwrap_or(0);
    if attrs_len > MAX_ATTRS_LEN {
        return Err(RowRejection::AttrsTooLong(attrs_len));
    }
    let event = Event {
        id,
        user,
        ts,
        kind,
        topic,
        attrs,
    };
    if kind == EventKind::SdkVersion && event.sdk_version().is_none() {
        return Err(RowRejection::NoSdkVersion);
    }
    Ok(event)
}

/// Validates one user profile row.
pub fn parse_profile(v: Value) -> Result<UserProfile, RowRejection> {
    let profile: UserProfile =
        serde_json::from_value(v).map_err(|e| RowRejection::NotProfile(e.to_string()))?;
    if profile.user.is_empty() || profile.user.len() > MAX_USER_LEN {
        return Err(RowRejection::UserLength);
    }
    if jiff::tz::TimeZone::get(&profile.tz).is_err() {
        return Err(RowRejection::UnknownTimeZone(profile.tz));
    }
    if let Some(phone) = &profile.phone
        && !is_e164(phone)
    {
        return Err(RowRejection::NotE164(phone.clone()));
    }
    Ok(profile)
}

/// `+` then 8 to 15 digits, the first not 0.
pub fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_rfc3339_and_millisecond_times() {
        let a = parse_event(
            json!({"id": "e1", "user": "u1", "ts": "2026-11-20T10:00:00Z",
            "kind": "doc_view", "topic": "Live-Streaming"}),
        )
        .expect("valid");
        let b = parse_event(
            json!({"id": 2, "user": "u1", "ts": a.ts, "kind": "doc_view",
            "topic": "live-streaming"}),
        )
        .expect("valid");
        assert_eq!(a.ts, 1_795_168_800_000);
        assert_eq!((a.ts, a.topic.as_str()), (b.ts, b.topic.as_str()));
        assert_eq!(b.id, "2");
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (
                json!({"user": "u", "ts": 1, "kind": "doc_view", "topic": "t"}),
                "id is missing",
            ),
            (
                json!({"id": "x", "user": "u", "ts": "yesterday", "kind": "doc_view", "topic": "t"}),
                "not RFC 3339",
            ),
            (
                json!({"id": "x", "user": "u", "ts": 1, "kind": "page_view", "topic": "t"}),
                "kind \"page_view\"",
            ),
            (
                json!({"id": "x", "user": "u", "ts": 1, "kind": "doc_view"}),
                "topic is missing",
            ),
            (
                json!({"id": "x", "user": "u", "ts": 1, "kind": "sdk_version"}),
                "attrs.version",
            ),
            (
                json!({"id": "x", "user": "u".repeat(200), "ts": 1, "kind": "doc_view", "topic": "t"}),
                "user is 200 bytes",
            ),
            (json!([1, 2]), "not a JSON object"),
        ];
        for (row, expected) in cases {
            let err = parse_event(row).expect_err(expected).to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
    }

    #[test]
    fn ndjson_rows_are_numbered_by_line_and_bad_lines_kept_apart() {
        let body = b"{\"a\":1}\n\nnot json\n{\"b\":2}\n";
        let rows = split_rows(body).expect("splits");
        let numbers: Vec<usize> = rows.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 3, 4]);
        assert!(rows[1].1.is_err() && rows[2].1.is_ok());
        let array = split_rows(b" [ {\"a\":1}, 5 ]").expect("splits");
        assert_eq!(array.len(), 2);
    }

    #[test]
    fn sdk_lag_counts_minor_releases() {
        let v = |s| SdkVersion::parse(s).expect("version");
        assert_eq!(v("3.4.1").lag_behind(v("3.7.0")), 3.0);
        assert_eq!(v("3.7.2").lag_behind(v("3.7.0")), 0.0);
        assert_eq!(v("2.9.0").lag_behind(v("3.1.0")), 11.0);
        assert_eq!(SdkVersion::parse("three"), None);
    }

    #[test]
    fn profiles_check_time_zone_and_phone() {
        let ok = parse_profile(
            json!({"user": "u1", "tier": "platinum", "tz": "Asia/Shanghai",
            "phone": "+8613800138000", "consent": true}),
        )
        .expect("valid");
        assert_eq!(ok.tier, Tier::Platinum);
        assert!(!ok.do_not_call);
        let bad_tz = parse_profile(json!({"user": "u1", "tz": "Mars/Olympus"}))
            .expect_err("tz")
            .to_string();
        assert!(bad_tz.contains("IANA"));
        let bad_phone = parse_profile(json!({"user": "u1", "phone": "0301234"}))
            .expect_err("phone")
            .to_string();
        assert!(bad_phone.contains("E.164"));
    }
}
