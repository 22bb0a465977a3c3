//! Who holds a Kubernetes token, asked of the API server with a TokenReview: speakers prove
//! their node with a projected ServiceAccount token bound to their pod, and API clients may use
//! ServiceAccount tokens in place of certificates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::Api;

use crate::auth::Role;

/// How long the API server's answer about a token is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(30);
/// How many answers are kept (a flood of distinct bad tokens is not cached at all).
const CACHE_MAX: usize = 4096;

/// The extra field of a bound token naming the node its pod runs on.
pub const NODE_NAME_EXTRA: &str = "authentication.kubernetes.io/node-name";
/// The extra field of a bound token naming its pod.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";

/// Who the API server says holds a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenOwner {
    /// `system:serviceaccount:<namespace>:<name>` for a ServiceAccount.
    pub username: String,
    /// What the token is bound to (pod name, node name...).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl TokenOwner {
    /// The single value of an extra field, if it has exactly one.
    pub fn extra_one(&self, key: &str) -> Option<&str> {
        match self.extra.get(key).map(Vec::as_slice) {
            Some([one]) => Some(one),
            _ => None,
        }
    }
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The API server does not know the token, or it is expired or for another audience.
    #[error("the Kubernetes API server did not authenticate the token: {0}")]
    Unauthenticated(String),
    /// The API server could not be asked.
    #[error("TokenReview failed: {0}")]
    Api(#[from] kube::Error),
}

/// Reviews tokens for one set of audiences, remembering answers for a while.
pub struct TokenReviewer {
    client: kube::Client,
    audiences: Vec<String>,
    cache: Mutex<HashMap<[u8; 32], (Instant, TokenOwner)>>,
}

impl std::fmt::Debug for TokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewer")
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl TokenReviewer {
    /// Reviews tokens meant for `audiences` (empty: the API server's own audience).
    pub fn new(client: kube::Client, audiences: Vec<String>) -> Self {
        TokenReviewer {
            client,
            audiences,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &[u8; 32]) -> Option<TokenOwner> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .map(|(_, owner)| owner.clone())
    }

    /// Who holds `token`. Only authenticated answers are remembered, so a token revoked or
    /// expired is refused at most `CACHE_FOR` late and never accepted late.
    pub async fn review(&self, token: &str) -> Result<TokenOwner, ReviewError> {
        let key = digest(token);
        if let Some(owner) = self.cached(&key) {
            return Ok(owner);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(ReviewError::Unauthenticated(
                status.error.unwrap_or_else(|| "not authenticated".into()),
            ));
        }
        if let (Some(wanted), Some(got)) = (
            (!self.audiences.is_empty()).then_some(&self.audiences),
            &status.audiences,
        ) {
            // The API server answers with the audiences the token is valid for among those
            // asked; none in common means it was minted for someone else.
            if !got.iter().any(|a| wanted.contains(a)) {
                return Err(ReviewError::Unauthenticated(format!(
                    "the token is for {got:?}, not {wanted:?}"
                )));
            }
        }
        let user = status.user.unwrap_or_default();
        let owner = TokenOwner {
            username: user.username.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
        }
        if cache.len() < CACHE_MAX {
            cache.insert(key, (Instant::now(), owner.clone()));
        }
        Ok(owner)
    }
}

/// The `system:serviceaccount:<namespace>:<name>` username of a ServiceAccount.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Which ServiceAccounts may use the admin API, and as what: parsed from
/// `<namespace>:<name>=<role>` (`--admin-service-account`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountRoles(BTreeMap<String, Role>);

impl AccountRoles {
    /// Parses `<namespace>:<name>=<role>` entries.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for e in entries {
            let e = e.as_ref();
            let bad = || {
                format!("--admin-service-account {e:?}: expected <namespace>:<name>=<read|admin>")
            };
            let (account, role) = e.split_once('=').ok_or_else(bad)?;
            let (ns, name) = account.split_once(':').ok_or_else(bad)?;
            if ns.is_empty() || name.is_empty() {
                return Err(bad());
            }
            let role: Role = role.parse().map_err(|_| bad())?;
            out.insert(service_account_user(ns, name), role);
        }
        Ok(AccountRoles(out))
    }

    /// The role of a token's owner, if it has one.
    pub fn role_of(&self, username: &str) -> Option<Role> {
        self.0.get(username).copied()
    }

    /// Whether no account has a role.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_roles_parse_and_name_the_bad_entry() {
        let roles = AccountRoles::parse(&["ops:viewer=read", "ops:deployer=admin"]).unwrap();
        assert_eq!(
            roles.role_of("system:serviceaccount:ops:viewer"),
            Some(Role::Read)
        );
        assert_eq!(
            roles.role_of("system:serviceaccount:ops:deployer"),
            Some(Role::Admin)
        );
        assert_eq!(roles.role_of("system:serviceaccount:ops:other"), None);
        for bad in ["ops=read", "ops:viewer", ":x=read", "ops:viewer=root"] {
            let e = AccountRoles::parse(&[bad]).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
