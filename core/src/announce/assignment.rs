//! The assignment protocol's two ends as pure state machines, with the clock as a parameter:
//! the leader's [`Sender`] (one per speaker session) turns the Layer 2 addresses a node should
//! answer for into whole sets and deltas and keeps what the node may still be answering for;
//! the speaker's [`Receiver`] applies them in order and reports what it holds. The publisher
//! and the controller session (actors) only feed them messages and carry out what they decide.
//!
//! The rules:
//! - every assignment names its leadership and revision; a change (`base: Some`) applies only
//!   on top of exactly the assignment it was computed from, and nothing older than what a
//!   receiver applied is ever applied again (a late or duplicated whole set included, also
//!   after a fence); reports carry the heartbeat's sequence number and an older one is ignored;
//! - an address the sender takes away stays counted as answered by that node until the node
//!   acknowledges a revision at or after the one that took it away; until the node
//!   acknowledges anything of this leadership, it counts as answering for every address;
//! - a node that reports it is fenced holds nothing, but counts as holding nothing only if it
//!   had acknowledged something of this leadership (so it no longer follows an older one) and
//!   everything it was sent: an assignment still on its way may arrive after its lease is back
//!   (a late grant) and be applied;
//! - a new session of the same node under the same leadership (its link reconnected) numbers
//!   its assignments after the old session's, and counts only acknowledgements of its own;
//! - a receiver that cannot apply a change asks for a whole set; a sender whose assignment stays
//!   unacknowledged past `resync_after` sends a whole set again, so a lost message delays
//!   convergence and never stops it.
//!
//! The leader gives an address to a node only when no other node's sender says it may be
//! answering for it ([`Sender::answering`]); with these rules no two receivers ever hold one
//! address at overlapping times (the property test below drives both ends over a network that
//! loses, duplicates, delays and reorders).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::proto::{AssignmentId, L2Address};

/// The Layer 2 part of an assignment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AddressDelta {
    /// This assignment.
    pub id: AssignmentId,
    /// `None`: a whole set; `Some(base)`: a change to `base`.
    pub base: Option<AssignmentId>,
    /// Addresses added or changed.
    pub upsert: Vec<L2Address>,
    /// Addresses no longer announced.
    pub remove: Vec<IpAddr>,
}

/// The leader's end for one node's session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sender {
    term: u64,
    leader: u64,
    revision: u64,
    /// Revisions up to this one were sent by earlier sessions of this node under the same
    /// leadership: an acknowledgement of one says nothing about what this session sent.
    floor: u64,
    sent: BTreeMap<IpAddr, L2Address>,
    sent_id: Option<AssignmentId>,
    /// Taken away at this revision, not yet acknowledged.
    pending: BTreeMap<IpAddr, u64>,
    /// The node acknowledged an assignment of this leadership (or dropped everything).
    synced: bool,
    want_full: bool,
    last_full: Option<Instant>,
    /// When the newest assignment went out, while it is unacknowledged.
    unacked_since: Option<Instant>,
    /// The newest report's sequence number: an older report says nothing new.
    last_seq: Option<u64>,
    /// The newest assignment of this leadership the node acknowledged.
    acked: Option<AssignmentId>,
}

impl Sender {
    /// A sender for a new session under leadership (`term`, `leader`).
    pub fn new(term: u64, leader: u64) -> Self {
        Self::starting_after(term, leader, 0)
    }

    /// A sender for a new session under leadership (`term`, `leader`) whose assignments follow
    /// revision `floor`, the newest an earlier session of the same node was sent. A receiver
    /// never applies anything older than what it applied, so numbering from zero again would
    /// have the new session ignored until it caught up.
    pub fn starting_after(term: u64, leader: u64, floor: u64) -> Self {
        Sender {
            term,
            leader,
            revision: floor,
            floor,
            sent: BTreeMap::new(),
            sent_id: None,
            pending: BTreeMap::new(),
            synced: false,
            want_full: true,
            last_full: None,
            unacked_since: None,
            last_seq: None,
            acked: None,
        }
    }

    /// The sender for a new session of the same node under the same leadership.
    pub fn successor(&self) -> Self {
        Self::starting_after(self.term, self.leader, self.revision)
    }

    /// The newest revision sent (0 before any).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Whether the node may be answering for `addr`: it was sent it, it has not acknowledged
    /// losing it, or it has acknowledged nothing of this leadership yet.
    pub fn answering(&self, addr: IpAddr) -> bool {
        !self.synced || self.sent.contains_key(&addr) || self.pending.contains_key(&addr)
    }

    /// Whether the node acknowledged the newest assignment, and it holds `addr`.
    pub fn acknowledged(&self, addr: IpAddr) -> bool {
        self.acked.is_some() && self.acked == self.sent_id && self.sent.contains_key(&addr)
    }

    /// The newest assignment sent, if any.
    pub fn sent_id(&self) -> Option<AssignmentId> {
        self.sent_id
    }

    /// What the node was last sent.
    pub fn sent(&self) -> &BTreeMap<IpAddr, L2Address> {
        &self.sent
    }

    /// A report from the node (its heartbeat `seq`): the assignment it applied, whether it
    /// wants a whole set, whether it is fenced (then it holds nothing). True when what it may
    /// answer for shrank, so a move waiting on it may go ahead. A report older than one already
    /// read is ignored: it describes a past the node has left.
    pub fn report(
        &mut self,
        seq: u64,
        applied: Option<AssignmentId>,
        want_full: bool,
        fenced: bool,
    ) -> bool {
        if self.last_seq.is_some_and(|last| seq <= last) {
            return false;
        }
        self.last_seq = Some(seq);
        if fenced {
            // A fenced speaker dropped everything it had, and takes nothing until its lease is
            // back; then it asks for a whole set. But an assignment it has not acknowledged may
            // still reach it after that, and be applied: until it acknowledges a later one, it
            // stays counted as answering for what it was sent.
            // Nor does it count as holding nothing before it acknowledged anything of this
            // leadership: it may still follow an older leader, whose assignments it applies.
            self.want_full = true;
            if self.acked.is_none() || self.acked != self.sent_id {
                return false;
            }
            let shrank = !self.synced || !self.sent.is_empty() || !self.pending.is_empty();
            self.sent.clear();
            self.pending.clear();
            self.sent_id = None;
            self.synced = true;
            self.unacked_since = None;
            return shrank;
        }
        let mut shrank = false;
        // Only this session's assignments: an earlier session's says nothing of what this
        // one sent, and until the node acknowledges one of ours it may hold anything.
        let ours = |a: &AssignmentId| {
            a.term == self.term && a.leader == self.leader && a.revision > self.floor
        };
        if let Some(applied) = applied.filter(ours) {
            let (was_synced, was_pending) = (self.synced, self.pending.len());
            self.synced = true;
            self.pending.retain(|_, rev| *rev > applied.revision);
            shrank = !was_synced || self.pending.len() != was_pending;
            self.acked = self.acked.max(Some(applied));
            if Some(applied) == self.sent_id {
                self.unacked_since = None;
            }
        }
        if want_full {
            self.want_full = true;
        }
        shrank
    }

    /// Whether a whole set is due at `now`: asked for (at most once per `min_gap`), or the
    /// newest assignment unacknowledged for `resync_after`.
    pub fn full_due(&self, now: Instant, min_gap: Duration, resync_after: Duration) -> bool {
        let asked = self.want_full
            && self
                .last_full
                .is_none_or(|t| now.duration_since(t) >= min_gap);
        let lost = self
            .unacked_since
            .is_some_and(|t| now.duration_since(t) >= resync_after);
        asked || lost
    }

    /// The next assignment towards `desired` at `now`: a whole set when `full`, else a change
    /// when `desired` differs from what was sent (or `changed_elsewhere`: other parts of the
    /// assignment, which ride along). `None` when there is nothing to send.
    pub fn next(
        &mut self,
        desired: BTreeMap<IpAddr, L2Address>,
        full: bool,
        changed_elsewhere: bool,
        now: Instant,
    ) -> Option<AddressDelta> {
        let changed = desired != self.sent || changed_elsewhere;
        if !(full || changed && self.sent_id.is_some()) {
            return None;
        }
        self.revision += 1;
        let id = AssignmentId {
            term: self.term,
            leader: self.leader,
            revision: self.revision,
        };
        let delta = if full {
            self.last_full = Some(now);
            self.want_full = false;
            AddressDelta {
                id,
                base: None,
                upsert: desired.values().cloned().collect(),
                remove: Vec::new(),
            }
        } else {
            AddressDelta {
                id,
                base: self.sent_id,
                upsert: desired
                    .iter()
                    .filter(|(a, d)| self.sent.get(a) != Some(d))
                    .map(|(_, d)| d.clone())
                    .collect(),
                remove: self
                    .sent
                    .keys()
                    .filter(|a| !desired.contains_key(a))
                    .copied()
                    .collect(),
            }
        };
        for addr in self.sent.keys() {
            if !desired.contains_key(addr) {
                self.pending.insert(*addr, self.revision);
            }
        }
        self.sent = desired;
        self.sent_id = Some(id);
        self.unacked_since = Some(now);
        Some(delta)
    }

    /// The last assignment was not handed to the session: what the node holds is unknown
    /// beyond what was counted, so the next one is a whole set.
    pub fn undelivered(&mut self) {
        self.want_full = true;
        self.last_full = None;
    }
}

/// What a receiver does with an assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Apply this set (then call [`Receiver::applied`]).
    Apply(BTreeMap<IpAddr, L2Address>),
    /// Older than what is held, of another leadership, or received while fenced: nothing to do.
    Ignore,
    /// A change to something not held: ask for a whole set.
    Resync,
}

/// The speaker's end.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Receiver {
    /// The newest leadership (term, leader) heard of.
    leadership: Option<(u64, u64)>,
    applied: Option<AssignmentId>,
    /// The newest assignment ever applied; kept through fencing, so that nothing older is
    /// applied after the lease comes back either.
    newest: Option<AssignmentId>,
    held: BTreeMap<IpAddr, L2Address>,
    want_full: bool,
    fenced: bool,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver {
            leadership: None,
            applied: None,
            newest: None,
            held: BTreeMap::new(),
            want_full: true,
            // Nothing is held until a lease arrives.
            fenced: true,
        }
    }
}

impl Receiver {
    /// The assignment applied, if any.
    pub fn applied(&self) -> Option<AssignmentId> {
        self.applied
    }

    /// Whether it asks for a whole set.
    pub fn want_full(&self) -> bool {
        self.want_full
    }

    /// Whether it is fenced (holds nothing, takes nothing).
    pub fn fenced(&self) -> bool {
        self.fenced
    }

    /// The addresses held.
    pub fn held(&self) -> &BTreeMap<IpAddr, L2Address> {
        &self.held
    }

    /// Follows `seen` if it is the newest leadership heard of; false if it is older than one
    /// already followed (its messages are then ignored).
    pub fn follow(&mut self, seen: (u64, u64)) -> bool {
        match self.leadership {
            Some(current) if seen < current => false,
            Some(current) if seen == current => true,
            _ => {
                self.leadership = Some(seen);
                // The new leader knows nothing of what is held: it sends a whole set, and until
                // one is acknowledged it counts this node as answering for anything.
                self.want_full = true;
                true
            }
        }
    }

    /// The leadership followed.
    pub fn leadership(&self) -> Option<(u64, u64)> {
        self.leadership
    }

    /// The lease ran out or was revoked: hold nothing.
    pub fn fence(&mut self) {
        self.fenced = true;
        self.applied = None;
        self.want_full = true;
        self.held.clear();
    }

    /// A lease arrived: take assignments again, starting from a whole set.
    pub fn unfence(&mut self) {
        if self.fenced {
            self.fenced = false;
            self.want_full = true;
        }
    }

    /// An assignment arrived: what to do with it. On [`Accept::Apply`] the set is held from
    /// now on; [`Receiver::applied`] reports it once the responders answer accordingly.
    pub fn accept(&mut self, a: &AddressDelta) -> Accept {
        if self.fenced || self.leadership != Some((a.id.term, a.id.leader)) {
            return Accept::Ignore;
        }
        // Never step back: a late or duplicated assignment would restore what a later one
        // took away, after the leader counted it gone.
        if self.newest.is_some_and(|newest| a.id <= newest) {
            return Accept::Ignore;
        }
        let mut next = match a.base {
            None => BTreeMap::new(),
            Some(base) if Some(base) == self.applied => self.held.clone(),
            Some(_) => {
                self.want_full = true;
                return Accept::Resync;
            }
        };
        for r in &a.remove {
            next.remove(r);
        }
        for u in &a.upsert {
            next.insert(u.address, u.clone());
        }
        self.held = next.clone();
        self.applied = Some(a.id);
        self.newest = Some(a.id);
        self.want_full = false;
        Accept::Apply(next)
    }
}

#[cfg(test)]
mod tests;
