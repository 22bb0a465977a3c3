//! Which interfaces the speaker answers on, and the rescan that follows them as they come and
//! go.
//!
//! Without `--interfaces` the speaker discovers them: every Ethernet interface except the
//! loopback, those enslaved to a bridge, bond or VRF (the master answers), those flagged NOARP
//! and those whose name matches the exclusion list. The default list is MetalLB's
//! (`announcedInterfacesToExclude` of its `metallb-excludel2` ConfigMap): container, CNI and
//! kube-proxy devices, which face pods rather than the LAN. As in MetalLB, an excluded
//! interface is never answered on, even when an L2Advertisement names it (the node does not
//! report it, so the leader places nothing there); naming it in `--interfaces` does answer on
//! it, since that list is used as given.
//!
//! Every rescan period the speaker lists the interfaces again: responders open on interfaces
//! that appeared, close on those that vanished (or changed index or MAC, as a VLAN recreated
//! under the same name does), and the next heartbeat reports the new list.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::time::Duration;

use actix::Addr;
use pnet_base::MacAddr;

use super::agent::{NodeAgent, SetInterfaces};
use super::session::{ControllerSession, InterfacesChanged};
use crate::config::model::InterfaceName;
use crate::names::NodeName;
use crate::net::raw;

/// MetalLB's default exclusions (its `metallb-excludel2` ConfigMap), as globs.
pub const DEFAULT_EXCLUDED: [&str; 14] = [
    "docker*",
    "cbr*",
    "dummy*",
    "virbr*",
    "lxcbr*",
    "veth*",
    "lo",
    "cali*",
    "tunl*",
    "flannel*",
    "kube-ipvs*",
    "cni*",
    "nodelocaldns*",
    "lxc*",
];

/// How often the interfaces are listed again by default.
pub const DEFAULT_RESCAN: Duration = Duration::from_secs(5);

/// Why an exclusion pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern uses syntax beyond the supported subset.
    #[error("interface pattern {0:?}: {1}")]
    Unsupported(String, &'static str),
    /// `none` was combined with patterns.
    #[error("`none` excludes nothing and cannot be combined with patterns")]
    NoneWithOthers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    AnyOne,
    AnyRun,
}

/// A pattern matched against a whole interface name: a glob (`veth*`, `eth?`), or a regular
/// expression anchored with `^` or `$` limited to literals, `\`-escapes, `.` and `.*`
/// (MetalLB's `^veth.*` form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePattern {
    source: String,
    tokens: Vec<Token>,
}

impl NamePattern {
    /// Parses a glob, or the regular expression subset when it starts with `^` or ends
    /// with `$`.
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        let tokens = if source.starts_with('^') || source.ends_with('$') {
            regex_tokens(source)?
        } else {
            glob_tokens(source)?
        };
        Ok(Self {
            source: source.to_string(),
            tokens,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        wildcard_match(&self.tokens, &name.chars().collect::<Vec<_>>())
    }
}

fn glob_tokens(source: &str) -> Result<Vec<Token>, PatternError> {
    let unsupported = |why| PatternError::Unsupported(source.to_string(), why);
    source
        .chars()
        .map(|c| match c {
            '*' => Ok(Token::AnyRun),
            '?' => Ok(Token::AnyOne),
            '[' | ']' => Err(unsupported("character classes are not supported")),
            c => Ok(Token::Char(c)),
        })
        .collect()
}

fn regex_tokens(source: &str) -> Result<Vec<Token>, PatternError> {
    let unsupported = |why| PatternError::Unsupported(source.to_string(), why);
    let mut body = source;
    let anchored_start = body.starts_with('^');
    body = body.strip_prefix('^').unwrap_or(body);
    // A trailing `$` anchors unless escaped.
    let anchored_end = body.ends_with('$') && !body.ends_with("\\$");
    if anchored_end {
        body = &body[..body.len() - 1];
    }
    let mut tokens = Vec::new();
    if !anchored_start {
        tokens.push(Token::AnyRun);
    }
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if !e.is_ascii_alphanumeric() => tokens.push(Token::Char(e)),
                _ => return Err(unsupported("only punctuation may be escaped")),
            },
            '.' if chars.peek() == Some(&'*') => {
                chars.next();
                tokens.push(Token::AnyRun);
            }
            '.' => tokens.push(Token::AnyOne),
            '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' => {
                return Err(unsupported(
                    "only literals, `.`, `.*`, `^` and `$` are supported (or use a glob)",
                ))
            }
            c => tokens.push(Token::Char(c)),
        }
    }
    if !anchored_end {
        tokens.push(Token::AnyRun);
    }
    Ok(tokens)
}

/// Glob matching with backtracking to the last `AnyRun` only (linear for these patterns).
fn wildcard_match(pattern: &[Token], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(Token::AnyRun) => {
                star = Some((p, n));
                p += 1;
            }
            Some(Token::AnyOne) => {
                p += 1;
                n += 1;
            }
            Some(Token::Char(c)) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|t| *t == Token::AnyRun)
}

/// Interface names never discovered (an explicit `--interfaces` list is not filtered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExcludeList {
    patterns: Vec<NamePattern>,
}

impl Default for ExcludeList {
    fn default() -> Self {
        Self {
            patterns: DEFAULT_EXCLUDED
                .iter()
                .filter_map(|p| NamePattern::parse(p).ok())
                .collect(),
        }
    }
}

impl ExcludeList {
    /// Excludes nothing.
    pub fn none() -> Self {
        Self {
            patterns: Vec::new(),
        }
    }

    /// A comma-separated list of patterns; `default` stands for [`DEFAULT_EXCLUDED`], and
    /// `none` (alone) or an empty list excludes nothing.
    pub fn parse(spec: &str) -> Result<Self, PatternError> {
        let items: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if items.contains(&"none") {
            return match items.len() {
                1 => Ok(Self::none()),
                _ => Err(PatternError::NoneWithOthers),
            };
        }
        let mut patterns = Vec::new();
        for item in items {
            if item == "default" {
                patterns.extend(Self::default().patterns);
            } else {
                patterns.push(NamePattern::parse(item)?);
            }
        }
        Ok(Self { patterns })
    }

    /// The first pattern `name` matches, if any.
    pub fn matching(&self, name: &str) -> Option<&str> {
        self.patterns
            .iter()
            .find(|p| p.matches(name))
            .map(NamePattern::as_str)
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> Vec<&str> {
        self.patterns.iter().map(NamePattern::as_str).collect()
    }
}

/// Whether an interface of this name may be discovered (no exclusion pattern matches it).
pub fn eligible(name: &str, excluded: &ExcludeList) -> bool {
    excluded.matching(name).is_none()
}

/// Where the speaker answers: the interfaces named (used as given), or those discovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Exactly these, whatever their names or kinds, as they exist.
    Named(Vec<String>),
    /// Every eligible Ethernet interface.
    Discover(ExcludeList),
}

/// What a responder is bound to: an interface changing either is a new interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The interface's index.
    pub index: u32,
    /// Its hardware address.
    pub mac: MacAddr,
}

/// The kernel's facts about an interface that decide whether it is discovered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkFacts {
    /// ARPHRD type (`/sys/class/net/<name>/type`; 1 is Ethernet, 772 the loopback).
    pub kind: u16,
    /// Interface flags (`/sys/class/net/<name>/flags`).
    pub flags: u32,
    /// The bridge, bond or VRF it is enslaved to, if any.
    pub master: Option<String>,
}

/// Why a discovered interface is not answered on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not Ethernet (or the loopback).
    NotEthernet,
    /// Its name matches an exclusion pattern.
    Excluded(String),
    /// A port of a bridge, bond or VRF: its master answers.
    Enslaved(String),
    /// Flagged NOARP.
    NoArp,
    /// Its index or MAC could not be read (it is going, or has no MAC).
    Unreadable(String),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::NotEthernet => f.write_str("not Ethernet"),
            Skip::Excluded(p) => write!(f, "excluded by pattern {p:?}"),
            Skip::Enslaved(m) => write!(f, "a port of {m}"),
            Skip::NoArp => f.write_str("NOARP"),
            Skip::Unreadable(e) => write!(f, "unreadable: {e}"),
        }
    }
}

const ARPHRD_ETHER: u16 = 1;
const IFF_NOARP: u32 = 0x80;

/// Whether an interface found by discovery is answered on, and if not why.
pub fn discoverable(name: &str, facts: &LinkFacts, excluded: &ExcludeList) -> Result<(), Skip> {
    if facts.kind != ARPHRD_ETHER || name == "lo" {
        return Err(Skip::NotEthernet);
    }
    if let Some(p) = excluded.matching(name) {
        return Err(Skip::Excluded(p.to_string()));
    }
    if let Some(m) = &facts.master {
        return Err(Skip::Enslaved(m.clone()));
    }
    if facts.flags & IFF_NOARP != 0 {
        return Err(Skip::NoArp);
    }
    Ok(())
}

/// What one listing found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The interfaces to answer on.
    pub links: BTreeMap<String, Link>,
    /// The interfaces passed over, and why.
    pub skipped: BTreeMap<String, Skip>,
}

/// The responders to close and to open to go from `open` to `found`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Vanished, or changed index or MAC.
    pub close: BTreeSet<String>,
    /// New, or changed index or MAC.
    pub open: BTreeMap<String, Link>,
}

impl Changes {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.close.is_empty() && self.open.is_empty()
    }
}

/// The difference between the interfaces answered on and those found.
pub fn diff(open: &BTreeMap<String, Link>, found: &BTreeMap<String, Link>) -> Changes {
    let mut changes = Changes::default();
    for (name, link) in open {
        if found.get(name) != Some(link) {
            changes.close.insert(name.clone());
        }
    }
    for (name, link) in found {
        if open.get(name) != Some(link) {
            changes.open.insert(name.clone(), *link);
        }
    }
    changes
}

const SYS_NET: &str = "/sys/class/net";

/// The index and MAC of interface `name`.
pub fn link_of(name: &str) -> io::Result<Link> {
    Ok(Link {
        index: raw::interface_index(name)?,
        mac: raw::interface_mac(name)?,
    })
}

fn facts_of(dir: &Path) -> LinkFacts {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let flags = read("flags");
    let master = std::fs::read_link(dir.join("master"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    LinkFacts {
        kind: read("type").trim().parse().unwrap_or(0),
        flags: u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0),
        master,
    }
}

/// Lists the interfaces `selection` answers on in this network namespace now. An interface
/// that vanishes while it is read is passed over.
pub fn scan(selection: &Selection) -> io::Result<Scan> {
    let mut out = Scan::default();
    match selection {
        Selection::Named(names) => {
            for name in names {
                match link_of(name) {
                    Ok(link) => {
                        out.links.insert(name.clone(), link);
                    }
                    Err(e) => {
                        out.skipped
                            .insert(name.clone(), Skip::Unreadable(e.to_string()));
                    }
                }
            }
        }
        Selection::Discover(excluded) => {
            for entry in std::fs::read_dir(SYS_NET)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let found = discoverable(&name, &facts_of(&entry.path()), excluded)
                    .and_then(|()| link_of(&name).map_err(|e| Skip::Unreadable(e.to_string())));
                match found {
                    Ok(link) => {
                        out.links.insert(name, link);
                    }
                    Err(skip) => {
                        out.skipped.insert(name, skip);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The names as the heartbeat carries them (a name the configuration model refuses is left
/// out, with a warning).
pub fn names_of<'a>(
    node: &NodeName,
    names: impl IntoIterator<Item = &'a String>,
) -> Vec<InterfaceName> {
    names
        .into_iter()
        .filter_map(|n| match InterfaceName::new(n.clone()) {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!(%node, interface = %n, error = %e, "interface not reported");
                None
            }
        })
        .collect()
}

/// Logs the interfaces passed over in `now` but not (or not for the same reason) in `before`.
pub fn log_skipped(node: &NodeName, before: &BTreeMap<String, Skip>, now: &BTreeMap<String, Skip>) {
    for (name, why) in now {
        if before.get(name) == Some(why) {
            continue;
        }
        match why {
            Skip::Unreadable(e) => {
                tracing::warn!(%node, interface = %name, error = %e, "interface not answered on")
            }
            Skip::NotEthernet => {
                tracing::debug!(%node, interface = %name, reason = %why, "interface not answered on")
            }
            _ => {
                tracing::info!(%node, interface = %name, reason = %why, "interface not answered on")
            }
        }
    }
}

/// Lists the interfaces every `period` and brings the agent's responders and the session's
/// heartbeats in line with them, until the agent or the session goes away. `initial` is what
/// the speaker started with (answered on, and reported).
pub async fn rescan(
    node: NodeName,
    selection: Selection,
    period: Duration,
    agent: Addr<NodeAgent>,
    session: Addr<ControllerSession>,
    initial: Scan,
) {
    let mut reported: Vec<String> = initial.links.into_keys().collect();
    let mut skipped = initial.skipped;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let listed = tokio::task::spawn_blocking({
            let selection = selection.clone();
            move || scan(&selection)
        })
        .await;
        let found = match listed {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!(%node, error = %e, "cannot list the interfaces");
                continue;
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "the interface listing failed");
                continue;
            }
        };
        log_skipped(&node, &skipped, &found.skipped);
        skipped = found.skipped;
        let Ok(answering) = agent.send(SetInterfaces(found.links)).await else {
            return;
        };
        if answering != reported {
            tracing::info!(%node, interfaces = ?answering, "the interfaces answered on changed");
            let names = names_of(&node, &answering);
            if session.send(InterfacesChanged(names)).await.is_err() {
                return;
            }
            reported = answering;
        }
    }
}

#[cfg(test)]
mod tests;
