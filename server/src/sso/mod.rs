//! Single sign-on for agents and supervisors: OpenID Connect's authorization code flow with
//! PKCE (RFC 7636) against the company's identity provider. Its endpoints come from its
//! discovery document, the ID token is checked here (`jwt`), and the role comes from a claim
//! mapped in the `[oidc]` table. What the page then presents is a ticket (`ticket`).

pub mod jwt;
pub mod ticket;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use farsight_store::TokenRole;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use jwt::JwkSet;

/// The `[oidc]` table of the configuration file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    /// The provider's issuer URL, as its discovery document names it.
    pub issuer: String,
    pub client_id: String,
    /// Sent with HTTP Basic to the token endpoint; none for a public client.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// This server's `/v1/auth/callback` as the provider knows it.
    pub redirect_url: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim that lists the user's groups or roles.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Values of that claim that make an agent, and a supervisor.
    #[serde(default)]
    pub agent: Vec<String>,
    #[serde(default)]
    pub supervisor: Vec<String>,
    /// How long a sign-in lasts.
    #[serde(default = "default_session_hours")]
    pub session_hours: u32,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(String::from).to_vec()
}

fn default_roles_claim() -> String {
    "groups".into()
}

fn default_session_hours() -> u32 {
    8
}

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("the identity provider could not be reached at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the identity provider answered {url} with {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("this sign-in was not started here, or took over 10 minutes: sign in again")]
    UnknownState,
    #[error("too many sign-ins in progress: try again in a minute")]
    Busy,
    #[error("{0}")]
    Token(#[from] jwt::JwtError),
    #[error(
        "your account ({0}) has no Farsight role: ask to be put in the agents' or supervisors' group"
    )]
    NoRole(String),
    #[error("the identity provider's answer is not OpenID Connect: {0}")]
    Protocol(String),
}

/// What a secret presented in `Hello` or to the API is: a ticket of a live sign-in, or a
/// token.
pub async fn check_secret(
    store: &farsight_store::Store,
    tickets: &ticket::Tickets,
    secret: &str,
) -> Result<farsight_store::TokenCheck, farsight_store::StoreError> {
    use farsight_store::TokenCheck;
    use ticket::TicketCheck;
    match tickets.check(secret, jiff::Timestamp::now().as_second()) {
        TicketCheck::NotATicket => store.check_token(secret).await,
        TicketCheck::Valid(sign_in) => store.check_token_id(sign_in).await,
        TicketCheck::Expired => Ok(TokenCheck::Expired),
        TicketCheck::Forged => Ok(TokenCheck::Unknown),
    }
}

/// Who signed in.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedIn {
    pub subject: String,
    pub name: String,
    pub role: TokenRole,
}

#[derive(Clone, Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Debug)]
struct Pending {
    verifier: String,
    nonce: String,
    started: Instant,
}

/// A sign-in is kept from the redirect to the provider until it comes back, for so long.
const PENDING_FOR: Duration = Duration::from_secs(600);
/// At most so many sign-ins in progress; more are refused, not dropped.
const PENDING_MAX: usize = 4096;

#[derive(Debug)]
pub struct Sso {
    pub config: SsoConfig,
    http: reqwest::Client,
    discovery: tokio::sync::Mutex<Option<Discovery>>,
    keys: tokio::sync::Mutex<Option<JwkSet>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Sso {
    pub fn new(config: SsoConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            config,
            http,
            discovery: tokio::sync::Mutex::default(),
            keys: tokio::sync::Mutex::default(),
            pending: Mutex::default(),
        }
    }

    /// Where to send the browser to sign in.
    pub async fn begin(&self) -> Result<String, SsoError> {
        let discovery = self.discovery().await?;
        let (state, nonce, verifier) = (
            jwt::random_string(),
            jwt::random_string(),
            jwt::random_string(),
        );
        let challenge = jwt::pkce_challenge(&verifier);
        {
            let mut pending = self.pending.lock().expect("pending sign-ins");
            pending.retain(|_, p| p.started.elapsed() < PENDING_FOR);
            if pending.len() >= PENDING_MAX {
                return Err(SsoError::Busy);
            }
            let started = Instant::now();
            pending.insert(
                state.clone(),
                Pending {
                    verifier,
                    nonce: nonce.clone(),
                    started,
                },
            );
        }
        let scope = self.config.scopes.join(" ");
        let url = reqwest::Url::parse_with_params(
            &discovery.authorization_endpoint,
            [
                ("response_type", "code"),
                ("client_id", &self.config.client_id),
                ("redirect_uri", &self.config.redirect_url),
                ("scope", &scope),
                ("state", &state),
                ("nonce", &nonce),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .map_err(|e| SsoError::Protocol(format!("authorization_endpoint: {e}")))?;
        Ok(url.into())
    }

    /// The provider sent the browser back with `code` for the sign-in `state`.
    pub async fn finish(&self, code: &str, state: &str) -> Result<SignedIn, SsoError> {
        let pending = self
            .pending
            .lock()
            .expect("pending sign-ins")
            .remove(state)
            .filter(|p| p.started.elapsed() < PENDING_FOR)
            .ok_or(SsoError::UnknownState)?;
        let discovery = self.discovery().await?;
        let id_token = self.exchange(&discovery, code, &pending.verifier).await?;
        let kid = jwt::key_id(&id_token)?;
        let keys = self.keys(&discovery, kid.as_deref()).await?;
        let expected = jwt::Expected {
            issuer: &self.config.issuer,
            client_id: &self.config.client_id,
            nonce: &pending.nonce,
            now: jiff::Timestamp::now().as_second(),
        };
        let claims = jwt::verify(&id_token, &keys, &expected)?;
        let subject = text(&claims, "sub").ok_or_else(|| SsoError::Protocol("no sub".into()))?;
        let name = ["name", "preferred_username", "email"]
            .iter()
            .find_map(|c| text(&claims, c))
            .unwrap_or_else(|| subject.clone());
        let role = role_of(&claims, &self.config).ok_or_else(|| SsoError::NoRole(name.clone()))?;
        Ok(SignedIn {
            subject,
            name,
            role,
        })
    }

    async fn discovery(&self) -> Result<Discovery, SsoError> {
        let mut cached = self.discovery.lock().await;
        if let Some(d) = cached.as_ref() {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let found: Discovery = self.get_json(&url).await?;
        if found.issuer != self.config.issuer {
            let message = format!("its discovery document names issuer {:?}", found.issuer);
            return Err(SsoError::Protocol(message));
        }
        *cached = Some(found.clone());
        Ok(found)
    }

    /// The provider's keys, fetched again when the token names a key not among them (keys
    /// rotate).
    async fn keys(&self, discovery: &Discovery, kid: Option<&str>) -> Result<JwkSet, SsoError> {
        let mut cached = self.keys.lock().await;
        let known = cached
            .as_ref()
            .is_some_and(|set| kid.is_none() || set.keys.iter().any(|k| k.kid.as_deref() == kid));
        if !known {
            *cached = Some(self.get_json(&discovery.jwks_uri).await?);
        }
        Ok(cached.clone().unwrap_or(JwkSet { keys: Vec::new() }))
    }

    async fn exchange(
        &self,
        d: &Discovery,
        code: &str,
        verifier: &str,
    ) -> Result<String, SsoError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.config.redirect_url),
            ("client_id", &self.config.client_id),
            ("code_verifier", verifier),
        ];
        let mut request = self.http.post(&d.token_endpoint).form(&form);
        if let Some(secret) = &self.config.client_secret {
            request = request.basic_auth(&self.config.client_id, Some(secret));
        }
        let answer: Map<String, Value> = read_json(&d.token_endpoint, request.send().await).await?;
        text(&answer, "id_token").ok_or_else(|| SsoError::Protocol("no id_token".into()))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, SsoError> {
        read_json(url, self.http.get(url).send().await).await
    }
}

/// The most of a provider's answer that is read: discovery documents, key sets and token
/// answers are a few kilobytes.
const MAX_ANSWER: usize = 1 << 20;

async fn read_json<T: serde::de::DeserializeOwned>(
    url: &str,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, SsoError> {
    let unreachable = |source| SsoError::Unreachable {
        url: url.to_string(),
        source,
    };
    let mut response = sent.map_err(unreachable)?;
    let status = response.status();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_ANSWER {
            return Err(SsoError::Protocol(format!("{url}: an answer over 1 MiB")));
        }
    }
    let body = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        let body: String = body.chars().take(300).collect();
        return Err(SsoError::Refused {
            url: url.to_string(),
            status: status.as_u16(),
            body,
        });
    }
    serde_json::from_str(&body).map_err(|e| SsoError::Protocol(format!("{url}: {e}")))
}

fn text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The role the configured claim gives: supervisor before agent; none when neither matches.
pub fn role_of(claims: &Map<String, Value>, config: &SsoConfig) -> Option<TokenRole> {
    let values: Vec<&str> = match claims.get(&config.roles_claim) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let any = |wanted: &[String]| values.iter().any(|v| wanted.iter().any(|w| w == v));
    if any(&config.supervisor) {
        Some(TokenRole::Supervisor)
    } else if any(&config.agent) {
        Some(TokenRole::Agent)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_comes_from_the_configured_claim_supervisor_first() {
        let config: SsoConfig = toml::from_str(
            "issuer = \"https://idp\"\nclient_id = \"f\"\nredirect_url = \"https://f/cb\"\n\
             agent = [\"support\"]\nsupervisor = [\"leads\"]",
        )
        .expect("config");
        assert_eq!(config.roles_claim, "groups");
        let role = |claims: Value| role_of(claims.as_object().expect("object"), &config);
        assert_eq!(
            role(serde_json::json!({"groups": ["x", "support"]})),
            Some(TokenRole::Agent)
        );
        assert_eq!(
            role(serde_json::json!({"groups": ["support", "leads"]})),
            Some(TokenRole::Supervisor)
        );
        assert_eq!(
            role(serde_json::json!({"groups": "leads"})),
            Some(TokenRole::Supervisor)
        );
        assert_eq!(role(serde_json::json!({"groups": ["sales"]})), None);
        assert_eq!(role(serde_json::json!({"roles": ["support"]})), None);
    }
}
