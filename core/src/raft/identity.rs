//! Who a member is: the cluster it belongs to and its member id, kept in its data directory
//! (`identity.json`) next to its log.
//!
//! The cluster id is made once, when the cluster is bootstrapped, and travels in every Raft
//! hello, so a member of another cluster (or one that bootstrapped a second cluster by mistake)
//! is refused. A member whose data directory was emptied has no identity and no log: it never
//! comes back under its old id (it could vote twice in a term it had voted in), but asks the
//! cluster for a new id and joins as a new member, replacing the old one.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::types::MemberId;

/// The file, in the data directory.
const FILE: &str = "identity.json";

/// A cluster's id: 32 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterId(String);

/// Why a cluster id is not one.
#[derive(Debug, thiserror::Error)]
#[error("a cluster id is 32 hex digits, not {0:?}")]
pub struct BadClusterId(String);

impl TryFrom<String> for ClusterId {
    type Error = BadClusterId;
    fn try_from(s: String) -> Result<Self, BadClusterId> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            Ok(Self(s))
        } else {
            Err(BadClusterId(s))
        }
    }
}

impl From<ClusterId> for String {
    fn from(c: ClusterId) -> String {
        c.0
    }
}

impl std::fmt::Display for ClusterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl ClusterId {
    /// A new, random cluster id (from the kernel's random source).
    pub fn generate() -> io::Result<Self> {
        let mut bytes = [0u8; 16];
        let mut f = std::fs::File::open("/dev/urandom")?;
        io::Read::read_exact(&mut f, &mut bytes)?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }
}

/// What `identity.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The cluster; `None` for a member that has not learned it yet (added by hand and waiting
    /// for the leader's first connection) or whose data predates cluster ids.
    pub cluster: Option<ClusterId>,
    /// This member's id.
    pub member: MemberId,
}

/// Reads the identity in `dir`, if there is one.
pub fn load(dir: &Path) -> io::Result<Option<Identity>> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the identity in `dir` durably: a temporary file, fsynced, renamed over the old one,
/// and the directory fsynced.
pub fn save(dir: &Path, identity: &Identity) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(identity).map_err(io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

/// The identity of a running member, shared by its network and admin API; the cluster id can be
/// learned once, from the first member that connects, by a member added by hand.
#[derive(Debug)]
pub struct IdentityCell {
    dir: PathBuf,
    inner: RwLock<Identity>,
}

impl IdentityCell {
    /// The identity of the member whose data lives in `dir`.
    pub fn new(dir: &Path, identity: Identity) -> Self {
        Self {
            dir: dir.to_path_buf(),
            inner: RwLock::new(identity),
        }
    }

    /// The cluster, if known.
    pub fn cluster(&self) -> Option<ClusterId> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cluster
            .clone()
    }

    /// This member's id.
    pub fn member(&self) -> MemberId {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).member
    }

    /// Whether a peer claiming `theirs` belongs here: refused only when both are known and
    /// differ. A member that knows no cluster yet adopts the first one a peer names, and keeps
    /// it.
    pub fn admit(&self, theirs: Option<&ClusterId>) -> Result<(), String> {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match (&inner.cluster, theirs) {
            (Some(mine), Some(theirs)) if mine != theirs => Err(format!(
                "member of cluster {theirs}, but this member belongs to cluster {mine} (a member that bootstrapped a second cluster, or a stale address)"
            )),
            (None, Some(theirs)) => {
                inner.cluster = Some(theirs.clone());
                if let Err(e) = save(&self.dir, &inner) {
                    tracing::warn!(error = %e, "cannot save the cluster id");
                }
                tracing::info!(cluster = %theirs, "joined cluster");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_round_trips_and_a_cell_refuses_another_cluster() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let a = ClusterId::generate().unwrap();
        let b = ClusterId::generate().unwrap();
        assert_ne!(a, b);
        let id = Identity {
            cluster: None,
            member: 3,
        };
        save(dir.path(), &id).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(id.clone()));
        let cell = IdentityCell::new(dir.path(), id);
        cell.admit(None).unwrap();
        cell.admit(Some(&a)).unwrap();
        // Learned, and kept on disk.
        assert_eq!(load(dir.path()).unwrap().unwrap().cluster, Some(a.clone()));
        assert!(cell.admit(Some(&b)).unwrap_err().contains(&b.to_string()));
        cell.admit(Some(&a)).unwrap();
        assert!(ClusterId::try_from("XYZ".to_string()).is_err());
    }
}
