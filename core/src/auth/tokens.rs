//! Bearer tokens for the admin API outside Kubernetes: a file of `<token> <role> <name>` lines
//! (`#` starts a comment), read at start.

use std::path::{Path, PathBuf};

use super::principal::{Principal, PrincipalError, Role};

/// The shortest token accepted: guessing one must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

/// The tokens a member accepts.
#[derive(Clone, Default)]
pub struct TokenBook {
    entries: Vec<(Vec<u8>, Principal)>,
}

impl std::fmt::Debug for TokenBook {
    // Never the tokens themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(_, p)| p.to_string()))
            .finish()
    }
}

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file cannot be read.
    #[error("cannot read token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `<token> <role> <name>`.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl TokenBook {
    /// Reads a token file.
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| TokenError::Line {
            path: path.to_owned(),
            line,
            reason,
        })
    }

    /// Parses a token file's text; an error names the line.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut book = TokenBook::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [token, role, name] = fields[..] else {
                return Err((i + 1, "expected <token> <role> <name>".into()));
            };
            if token.len() < MIN_TOKEN_LEN {
                return Err((
                    i + 1,
                    format!("the token is shorter than {MIN_TOKEN_LEN} characters"),
                ));
            }
            let role: Role = role
                .parse()
                .map_err(|e: PrincipalError| (i + 1, e.to_string()))?;
            let principal = Principal::parse_uri(&format!(
                "{}{}/{name}",
                super::principal::URI_PREFIX,
                role.as_str()
            ))
            .map_err(|e| (i + 1, e.to_string()))?;
            if book.entries.iter().any(|(t, _)| t == token.as_bytes()) {
                return Err((i + 1, "the same token appears twice".into()));
            }
            book.entries.push((token.as_bytes().to_vec(), principal));
        }
        Ok(book)
    }

    /// Who holds `token`. Every entry is compared, by SHA-256 digest and without stopping
    /// at the first differing byte, so the time taken says nothing about how close a guess was.
    pub fn lookup(&self, token: &str) -> Option<&Principal> {
        let digest = |b: &[u8]| ring::digest::digest(&ring::digest::SHA256, b);
        let asked = digest(token.as_bytes());
        let mut found = None;
        for (t, p) in &self.entries {
            let known = digest(t);
            let diff = known
                .as_ref()
                .iter()
                .zip(asked.as_ref())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(p);
            }
        }
        found
    }

    /// Whether no token is accepted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_holder_and_role() {
        let book = TokenBook::parse(
            "# ops\n0123456789abcdef0123 admin alice\n\nfedcba9876543210fedc read grafana # dash\n",
        )
        .unwrap();
        assert_eq!(
            book.lookup("0123456789abcdef0123"),
            Some(&Principal::Client {
                name: "alice".into(),
                role: Role::Admin
            })
        );
        assert_eq!(
            book.lookup("fedcba9876543210fedc")
                .and_then(Principal::role),
            Some(Role::Read)
        );
        assert_eq!(book.lookup("0123456789abcdef012"), None);
        assert_eq!(book.lookup(""), None);
        assert!(!format!("{book:?}").contains("0123"));
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(TokenBook::parse("short admin a\n").unwrap_err().0, 1);
        assert_eq!(
            TokenBook::parse("# c\n0123456789abcdef0123 root a\n")
                .unwrap_err()
                .0,
            2
        );
        assert!(TokenBook::parse("0123456789abcdef0123 admin\n").is_err());
        assert!(
            TokenBook::parse("0123456789abcdef0123 admin a\n0123456789abcdef0123 read b\n")
                .is_err()
        );
    }
}
