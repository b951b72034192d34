//! ID tokens: an RS256 JSON Web Token checked against the provider's keys, issuer, audience,
//! expiry and the nonce of its sign-in. Pure: the keys and the time are given.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

/// One key of the provider's JWK set; RSA keys only are used.
#[derive(Clone, Debug, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JwtError {
    #[error("the ID token is not a JSON Web Token")]
    Malformed,
    #[error("the ID token is signed with {0}; Farsight accepts RS256")]
    Algorithm(String),
    #[error("no key of the provider matches the ID token's key id {0:?}")]
    UnknownKey(Option<String>),
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("the ID token was issued by {0:?}, not the configured issuer")]
    Issuer(String),
    #[error("the ID token is not for this client")]
    Audience,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token does not carry this sign-in's nonce")]
    Nonce,
}

/// What the ID token must say.
#[derive(Debug)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn decode(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)
}

/// The key id an ID token names, to know whether the key set must be fetched again.
pub fn key_id(token: &str) -> Result<Option<String>, JwtError> {
    let header = token.split('.').next().ok_or(JwtError::Malformed)?;
    let header: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
    Ok(header.kid)
}

/// The token's claims, once its signature, issuer, audience, expiry and nonce hold.
pub fn verify(
    token: &str,
    keys: &JwkSet,
    expected: &Expected,
) -> Result<Map<String, Value>, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let head: Header = serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
    if head.alg != "RS256" {
        return Err(JwtError::Algorithm(head.alg));
    }
    let key = keys
        .keys
        .iter()
        .filter(|k| k.kty == "RSA")
        .find(|k| head.kid.is_none() || k.kid == head.kid)
        .ok_or_else(|| JwtError::UnknownKey(head.kid.clone()))?;
    let (Some(n), Some(e)) = (&key.n, &key.e) else {
        return Err(JwtError::UnknownKey(head.kid));
    };
    let public = ring::signature::RsaPublicKeyComponents {
        n: decode(n)?,
        e: decode(e)?,
    };
    let signed = &token[..header.len() + 1 + payload.len()];
    public
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &decode(signature)?,
        )
        .map_err(|_| JwtError::Signature)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&decode(payload)?).map_err(|_| JwtError::Malformed)?;
    check_claims(&claims, expected)?;
    Ok(claims)
}

fn check_claims(claims: &Map<String, Value>, expected: &Expected) -> Result<(), JwtError> {
    let issuer = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if issuer != expected.issuer {
        return Err(JwtError::Issuer(issuer.to_string()));
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == expected.client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected.client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err(JwtError::Audience);
    }
    // A minute's grace for clocks that disagree.
    let expires = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if expires + 60 < expected.now {
        return Err(JwtError::Expired);
    }
    if claims.get("nonce").and_then(Value::as_str) != Some(expected.nonce) {
        return Err(JwtError::Nonce);
    }
    Ok(())
}

/// PKCE (RFC 7636): the S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A random URL-safe string of 256 bits: states, nonces, verifiers.
pub fn random_string() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: Value) -> Map<String, Value> {
        json.as_object().expect("object").clone()
    }

    const EXPECTED: Expected<'static> = Expected {
        issuer: "https://idp.example",
        client_id: "farsight",
        nonce: "n-1",
        now: 1_000,
    };

    #[test]
    fn claims_must_name_the_issuer_client_nonce_and_be_fresh() {
        let good = serde_json::json!({"iss": "https://idp.example", "aud": ["x", "farsight"], "exp": 1_200, "nonce": "n-1"});
        assert_eq!(check_claims(&claims(good.clone()), &EXPECTED), Ok(()));
        let with = |k: &str, v: Value| {
            let mut c = claims(good.clone());
            c.insert(k.into(), v);
            check_claims(&c, &EXPECTED)
        };
        assert_eq!(
            with("iss", "https://evil.example".into()),
            Err(JwtError::Issuer("https://evil.example".into()))
        );
        assert_eq!(with("aud", "other".into()), Err(JwtError::Audience));
        assert_eq!(with("exp", 900.into()), Err(JwtError::Expired));
        assert_eq!(with("exp", 950.into()), Ok(()), "a minute's grace");
        assert_eq!(with("nonce", "n-2".into()), Err(JwtError::Nonce));
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_token_that_is_not_rs256_or_not_a_jwt_is_refused() {
        let keys = JwkSet { keys: vec![] };
        assert_eq!(verify("abc", &keys, &EXPECTED), Err(JwtError::Malformed));
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let token = format!("{header}.e30.");
        assert_eq!(
            verify(&token, &keys, &EXPECTED),
            Err(JwtError::Algorithm("none".into()))
        );
    }
}
