//! Where a client's access token comes from: a file (`--token-file`) or the environment
//! (`FARSIGHT_TOKEN`), which other users of the machine cannot read, or `--token`, which
//! they can (`ps` shows every command line).

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading the token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the token file {path} is empty")]
    Empty { path: String },
    #[error("no access token: give --token-file PATH or set FARSIGHT_TOKEN")]
    Missing,
}

/// The token given directly (by `--token` or `FARSIGHT_TOKEN`), else the first line of the
/// token file.
pub fn resolve_token(token: Option<&str>, file: Option<&Path>) -> Result<String, TokenError> {
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        return Ok(token.to_owned());
    }
    let Some(path) = file else {
        return Err(TokenError::Missing);
    };
    let shown = || path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: shown(),
        source,
    })?;
    match text.lines().next().map(str::trim) {
        Some(token) if !token.is_empty() => Ok(token.to_owned()),
        _ => Err(TokenError::Empty { path: shown() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_gives_its_first_line_trimmed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "fst_abc\n").expect("write");
        assert_eq!(resolve_token(None, Some(&path)).expect("token"), "fst_abc");
        assert_eq!(
            resolve_token(Some("fst_direct"), Some(&path)).expect("token"),
            "fst_direct"
        );
    }

    #[test]
    fn a_missing_or_empty_token_is_an_error_that_says_what_to_give() {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        assert!(matches!(
            resolve_token(None, Some(&empty)),
            Err(TokenError::Empty { .. })
        ));
        assert!(matches!(
            resolve_token(None, Some(&dir.path().join("absent"))),
            Err(TokenError::Read { .. })
        ));
        let missing = resolve_token(None, None).expect_err("no token");
        assert!(missing.to_string().contains("--token-file"), "{missing}");
    }
}
