//! The speaker's BGP routes, held once for all its sessions.
//!
//! A node announces mostly the same prefixes with the same few attribute sets to each of its
//! peers, so the table keeps one entry per prefix: which peers get it, as a bitset, and an
//! index into the interned attribute sets. The controller session writes it; every BGP
//! session reads its own column of it (through [`SharedTable`]) when told the table changed,
//! and compares it with what it sent, a chunk at a time (see [`diff_chunk`]), so that neither
//! a per-peer copy nor the whole set of UPDATEs for a large change is ever built.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ipnet::IpNet;

use super::attrs::RouteAttrs;
use crate::names::PeerName;

/// A peer's index in a [`RouteTable`]; stable for the table's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u32);

/// Peers `bank * 64 ..` that get a prefix with one attribute set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Group {
    bits: u64,
    attr: u32,
    bank: u32,
}

/// The peers of one prefix and their attributes: in the common case one attribute set for
/// every peer (no allocation beyond the map's own node).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    One(Group),
    Many(Box<[Group]>),
}

impl Entry {
    fn groups(&self) -> &[Group] {
        match self {
            Entry::One(g) => std::slice::from_ref(g),
            Entry::Many(gs) => gs,
        }
    }

    fn get(&self, peer: PeerId) -> Option<u32> {
        let (bank, bit) = split(peer);
        self.groups()
            .iter()
            .find(|g| g.bank == bank && g.bits & bit != 0)
            .map(|g| g.attr)
    }

    /// The entry with `peer` set to `attr` (or taken out, `None`), and the attribute it had.
    /// `None` for the entry: no peer is left.
    fn with(&self, peer: PeerId, attr: Option<u32>) -> (Option<Entry>, Option<u32>) {
        let (bank, bit) = split(peer);
        let old = self.get(peer);
        let mut gs: Vec<Group> = self.groups().to_vec();
        for g in gs.iter_mut().filter(|g| g.bank == bank) {
            g.bits &= !bit;
        }
        if let Some(attr) = attr {
            match gs.iter_mut().find(|g| g.bank == bank && g.attr == attr) {
                Some(g) => g.bits |= bit,
                None => gs.push(Group {
                    bits: bit,
                    attr,
                    bank,
                }),
            }
        }
        gs.retain(|g| g.bits != 0);
        let entry = match gs.len() {
            0 => None,
            1 => Some(Entry::One(gs[0])),
            _ => Some(Entry::Many(gs.into_boxed_slice())),
        };
        (entry, old)
    }
}

fn split(peer: PeerId) -> (u32, u64) {
    (peer.0 / 64, 1u64 << (peer.0 % 64))
}

/// The attribute sets in use, each held once, counted by the routes that use it.
#[derive(Clone, Debug, Default)]
struct Interned {
    slots: Vec<Option<(Arc<RouteAttrs>, usize)>>,
    free: Vec<u32>,
    index: HashMap<Arc<RouteAttrs>, u32>,
}

impl Interned {
    fn intern(&mut self, attrs: RouteAttrs) -> u32 {
        if let Some(&id) = self.index.get(&attrs) {
            if let Some((_, n)) = self.slot_mut(id) {
                *n += 1;
            }
            return id;
        }
        let attrs = Arc::new(attrs);
        let slot = Some((attrs.clone(), 1));
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(s) = self.slots.get_mut(id as usize) {
                    *s = slot;
                }
                id
            }
            None => {
                self.slots.push(slot);
                // More distinct attribute sets than u32 counts cannot fit in memory.
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.index.insert(attrs, id);
        id
    }

    fn slot_mut(&mut self, id: u32) -> Option<&mut (Arc<RouteAttrs>, usize)> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    fn release(&mut self, id: u32) {
        let gone = match self.slot_mut(id) {
            Some((_, n)) => {
                *n -= 1;
                *n == 0
            }
            None => false,
        };
        if gone {
            if let Some(Some((a, _))) = self.slots.get_mut(id as usize).map(Option::take) {
                self.index.remove(&a);
            }
            self.free.push(id);
        }
    }

    fn get(&self, id: u32) -> Option<&Arc<RouteAttrs>> {
        self.slots
            .get(id as usize)
            .and_then(Option::as_ref)
            .map(|(a, _)| a)
    }

    fn len(&self) -> usize {
        self.index.len()
    }
}

/// Every route a speaker announces: per prefix, the peers it goes to and its attributes.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    peers: Vec<PeerName>,
    attrs: Interned,
    routes: BTreeMap<IpNet, Entry>,
    pairs: usize,
    version: u64,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The prefixes announced to some peer.
    pub fn prefixes(&self) -> usize {
        self.routes.len()
    }

    /// The routes, a (prefix, peer) pair each.
    pub fn len(&self) -> usize {
        self.pairs
    }

    /// Whether no route is announced.
    pub fn is_empty(&self) -> bool {
        self.pairs == 0
    }

    /// The distinct attribute sets in use.
    pub fn attribute_sets(&self) -> usize {
        self.attrs.len()
    }

    /// Counts the changes: it differs after any insert, remove or clear.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Takes every route out (peer indexes are forgotten too).
    pub fn clear(&mut self) {
        *self = Self {
            version: self.version.wrapping_add(1),
            ..Self::default()
        };
    }

    /// `peer`'s index, if the table has seen it.
    pub fn peer(&self, name: &PeerName) -> Option<PeerId> {
        self.peers
            .iter()
            .position(|p| p == name)
            .and_then(|i| u32::try_from(i).ok())
            .map(PeerId)
    }

    fn peer_or_add(&mut self, name: &PeerName) -> PeerId {
        if let Some(id) = self.peer(name) {
            return id;
        }
        self.peers.push(name.clone());
        PeerId(u32::try_from(self.peers.len() - 1).unwrap_or(u32::MAX))
    }

    /// Announces `prefix` to `peer` with `attrs` (replacing what it had).
    pub fn insert(&mut self, prefix: IpNet, peer: &PeerName, attrs: RouteAttrs) {
        self.version = self.version.wrapping_add(1);
        let id = self.peer_or_add(peer);
        let attr = self.attrs.intern(attrs);
        let (entry, old) = match self.routes.get(&prefix) {
            Some(e) => e.with(id, Some(attr)),
            None => (
                {
                    let (bank, bit) = split(id);
                    Some(Entry::One(Group {
                        bits: bit,
                        attr,
                        bank,
                    }))
                },
                None,
            ),
        };
        if let Some(e) = entry {
            self.routes.insert(prefix, e);
        }
        match old {
            Some(old) => self.attrs.release(old),
            None => self.pairs += 1,
        }
    }

    /// Withdraws `prefix` from `peer`; whether it was announced.
    pub fn remove(&mut self, prefix: &IpNet, peer: &PeerName) -> bool {
        let Some(id) = self.peer(peer) else {
            return false;
        };
        let Some(e) = self.routes.get(prefix) else {
            return false;
        };
        let (entry, old) = e.with(id, None);
        self.version = self.version.wrapping_add(1);
        match entry {
            Some(e) => {
                self.routes.insert(*prefix, e);
            }
            None => {
                self.routes.remove(prefix);
            }
        }
        match old {
            Some(old) => {
                self.attrs.release(old);
                self.pairs -= 1;
                true
            }
            None => false,
        }
    }

    /// The attributes `prefix` goes to `peer` with, if it does.
    pub fn get(&self, prefix: &IpNet, peer: PeerId) -> Option<&Arc<RouteAttrs>> {
        self.routes
            .get(prefix)
            .and_then(|e| e.get(peer))
            .and_then(|a| self.attrs.get(a))
    }

    /// `peer`'s routes after `after` (from the first without it), in prefix order.
    pub fn routes_of(
        &self,
        peer: PeerId,
        after: Option<IpNet>,
    ) -> impl Iterator<Item = (IpNet, &Arc<RouteAttrs>)> + '_ {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.routes
            .range((from, Bound::Unbounded))
            .filter_map(move |(p, e)| e.get(peer).and_then(|a| self.attrs.get(a)).map(|a| (*p, a)))
    }

    /// Every route, by prefix and peer (for tests and reports; it copies everything).
    pub fn to_map(&self) -> BTreeMap<(IpNet, PeerName), RouteAttrs> {
        let mut out = BTreeMap::new();
        for (i, name) in self.peers.iter().enumerate() {
            let id = PeerId(u32::try_from(i).unwrap_or(u32::MAX));
            for (p, a) in self.routes_of(id, None) {
                out.insert((p, name.clone()), (**a).clone());
            }
        }
        out
    }
}

/// A [`RouteTable`] shared by the writer (the controller session) and its readers (the BGP
/// sessions). Readers hold the lock only while they compare a chunk, never across a send.
#[derive(Clone, Debug, Default)]
pub struct SharedTable(Arc<RwLock<RouteTable>>);

impl SharedTable {
    /// A new, empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the table. A writer that panicked left a table that is still whole (every
    /// change is a single insert or remove), so a poisoned lock is used as is.
    pub fn read(&self) -> RwLockReadGuard<'_, RouteTable> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the table (see [`SharedTable::read`] on poisoning).
    pub fn write(&self) -> RwLockWriteGuard<'_, RouteTable> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a session holds from us: prefix and attributes (shared with the table, not copied).
pub type Sent = BTreeMap<IpNet, Arc<RouteAttrs>>;

/// One chunk of the difference between what `table` has for `peer` (of the prefixes
/// `carries` admits) and what the peer holds (`sent`), from the first prefix after `after`.
#[derive(Debug, Default, PartialEq)]
pub struct Chunk {
    /// New or changed routes.
    pub announce: Vec<(IpNet, Arc<RouteAttrs>)>,
    /// Routes the peer holds that it should not.
    pub withdraw: Vec<IpNet>,
    /// Where the next chunk starts (after this prefix); `None`: this was the last.
    pub next: Option<IpNet>,
}

/// The next chunk of at most `limit` changes (see [`Chunk`]); a `peer` the table does not
/// know gets nothing, so everything sent is withdrawn.
pub fn diff_chunk(
    table: &RouteTable,
    peer: Option<PeerId>,
    sent: &Sent,
    carries: impl Fn(&IpNet) -> bool,
    after: Option<IpNet>,
    limit: usize,
) -> Chunk {
    let from = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut want = peer
        .into_iter()
        .flat_map(|id| table.routes_of(id, after))
        .filter(|(p, _)| carries(p))
        .peekable();
    let mut have = sent.range((from, Bound::Unbounded)).peekable();
    let mut c = Chunk::default();
    let limit = limit.max(1);
    loop {
        if c.announce.len() + c.withdraw.len() >= limit {
            // Everything up to `next` is settled; there may be more after it.
            if want.peek().is_some() || have.peek().is_some() {
                return c;
            }
            c.next = None;
            return c;
        }
        let step = match (want.peek(), have.peek()) {
            (None, None) => {
                c.next = None;
                return c;
            }
            (Some((wp, _)), Some((hp, _))) => wp.cmp(hp),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
        };
        match step {
            std::cmp::Ordering::Equal => {
                if let (Some((p, a)), Some((_, h))) = (want.next(), have.next()) {
                    if !Arc::ptr_eq(a, h) && **a != **h {
                        c.announce.push((p, a.clone()));
                    }
                    c.next = Some(p);
                }
            }
            std::cmp::Ordering::Less => {
                if let Some((p, a)) = want.next() {
                    c.announce.push((p, a.clone()));
                    c.next = Some(p);
                }
            }
            std::cmp::Ordering::Greater => {
                if let Some((p, _)) = have.next() {
                    c.withdraw.push(*p);
                    c.next = Some(*p);
                }
            }
        }
    }
}

/// Records `chunk` as sent.
pub fn apply_chunk(sent: &mut Sent, chunk: &Chunk) {
    for p in &chunk.withdraw {
        sent.remove(p);
    }
    for (p, a) in &chunk.announce {
        sent.insert(*p, a.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::bgp::attrs::Community;

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn peer(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    fn attrs(lp: Option<u32>, c: &[u16]) -> RouteAttrs {
        RouteAttrs {
            local_pref: lp,
            communities: c.iter().map(|&v| Community::Standard(64512, v)).collect(),
        }
    }

    /// Applies every chunk of the difference, `limit` changes at a time; the chunks' sizes.
    fn sync(table: &RouteTable, who: &PeerName, sent: &mut Sent, limit: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut after = None;
        loop {
            let c = diff_chunk(table, table.peer(who), sent, |_| true, after, limit);
            sizes.push(c.announce.len() + c.withdraw.len());
            apply_chunk(sent, &c);
            match c.next {
                Some(n) => after = Some(n),
                None => return sizes,
            }
        }
    }

    #[test]
    fn routes_add_and_withdraw_per_peer() {
        let (a, b) = (peer("tor-a"), peer("tor-b"));
        let mut t = RouteTable::new();
        t.insert(p("192.0.2.1/32"), &a, attrs(None, &[1]));
        t.insert(p("192.0.2.1/32"), &b, attrs(None, &[1]));
        t.insert(p("192.0.2.2/32"), &b, attrs(Some(200), &[]));
        assert_eq!((t.len(), t.prefixes(), t.attribute_sets()), (3, 2, 2));
        let ia = t.peer(&a).unwrap();
        let ib = t.peer(&b).unwrap();
        assert_eq!(t.routes_of(ia, None).count(), 1);
        assert_eq!(t.routes_of(ib, None).count(), 2);
        assert_eq!(t.get(&p("192.0.2.2/32"), ib).unwrap().local_pref, Some(200));
        assert!(t.get(&p("192.0.2.2/32"), ia).is_none());
        // Replacing a route does not count it twice.
        t.insert(p("192.0.2.1/32"), &a, attrs(None, &[1]));
        assert_eq!(t.len(), 3);
        assert!(t.remove(&p("192.0.2.1/32"), &a));
        assert!(!t.remove(&p("192.0.2.1/32"), &a));
        assert!(!t.remove(&p("192.0.2.9/32"), &peer("nobody")));
        assert_eq!((t.len(), t.prefixes()), (2, 2));
        assert!(t.remove(&p("192.0.2.1/32"), &b));
        assert_eq!((t.len(), t.prefixes(), t.attribute_sets()), (1, 1, 1));
        assert!(t.remove(&p("192.0.2.2/32"), &b));
        assert!(t.is_empty() && t.prefixes() == 0 && t.attribute_sets() == 0);
    }

    #[test]
    fn peers_of_one_prefix_may_differ_in_attributes_and_beyond_64_peers() {
        let names: Vec<PeerName> = (0..70).map(|i| peer(&format!("p{i}"))).collect();
        let mut t = RouteTable::new();
        let pre = p("2001:db8::1/128");
        for (i, n) in names.iter().enumerate() {
            t.insert(pre, n, attrs(Some(u32::from(i % 2 == 0)), &[]));
        }
        assert_eq!((t.len(), t.prefixes(), t.attribute_sets()), (70, 1, 2));
        for (i, n) in names.iter().enumerate() {
            let id = t.peer(n).unwrap();
            assert_eq!(
                t.get(&pre, id).unwrap().local_pref,
                Some(u32::from(i % 2 == 0))
            );
        }
        // One peer's change leaves the others alone.
        t.insert(pre, &names[65], attrs(Some(7), &[]));
        assert_eq!(
            t.get(&pre, t.peer(&names[65]).unwrap()).unwrap().local_pref,
            Some(7)
        );
        assert_eq!(
            t.get(&pre, t.peer(&names[64]).unwrap()).unwrap().local_pref,
            Some(1)
        );
        assert_eq!(
            t.get(&pre, t.peer(&names[66]).unwrap()).unwrap().local_pref,
            Some(1)
        );
        let m = t.to_map();
        assert_eq!(m.len(), 70);
        for n in &names {
            assert!(t.remove(&pre, n));
        }
        assert!(t.is_empty() && t.attribute_sets() == 0);
    }

    #[test]
    fn attribute_sets_are_interned() {
        let mut t = RouteTable::new();
        let a = peer("tor-a");
        for i in 0..1000u32 {
            let prefix = IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(
                0xc000_0200 + i,
            )));
            t.insert(prefix, &a, attrs(None, &[u16::try_from(i % 3).unwrap()]));
        }
        assert_eq!(t.attribute_sets(), 3);
        let id = t.peer(&a).unwrap();
        let first: Vec<_> = t.routes_of(id, None).map(|(_, a)| a.clone()).collect();
        // Equal attributes are one allocation.
        assert!(Arc::ptr_eq(&first[0], &first[3]));
        assert!(!Arc::ptr_eq(&first[0], &first[1]));
        // A freed slot is taken again.
        let mut t = RouteTable::new();
        t.insert(p("192.0.2.1/32"), &a, attrs(None, &[1]));
        t.remove(&p("192.0.2.1/32"), &a);
        t.insert(p("192.0.2.1/32"), &a, attrs(None, &[2]));
        assert_eq!(t.attrs.slots.len(), 1);
    }

    #[test]
    fn differences_come_in_bounded_chunks_in_prefix_order() {
        let a = peer("tor-a");
        let mut t = RouteTable::new();
        let host = |i: u32| {
            IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(
                0xc612_0000 + i,
            )))
        };
        for i in 0..10 {
            t.insert(host(i), &a, attrs(None, &[]));
        }
        let mut sent = Sent::new();
        assert_eq!(sync(&t, &a, &mut sent, 4), vec![4, 4, 2]);
        assert_eq!(sent.len(), 10);
        // Nothing to do: one empty chunk.
        assert_eq!(sync(&t, &a, &mut sent, 4), vec![0]);
        // Withdrawals, changes and additions, interleaved.
        t.remove(&host(0), &a);
        t.remove(&host(5), &a);
        t.insert(host(3), &a, attrs(Some(5), &[]));
        t.insert(host(20), &a, attrs(None, &[]));
        let c = diff_chunk(&t, t.peer(&a), &sent, |_| true, None, 100);
        assert_eq!(c.withdraw, vec![host(0), host(5)]);
        let announced: Vec<IpNet> = c.announce.iter().map(|(p, _)| *p).collect();
        assert_eq!(announced, vec![host(3), host(20)]);
        assert_eq!(c.next, None);
        assert_eq!(sync(&t, &a, &mut sent, 1), vec![1, 1, 1, 1]);
        let want: Vec<(IpNet, Arc<RouteAttrs>)> = t
            .routes_of(t.peer(&a).unwrap(), None)
            .map(|(p, a)| (p, a.clone()))
            .collect();
        let have: Vec<(IpNet, Arc<RouteAttrs>)> =
            sent.iter().map(|(p, a)| (*p, a.clone())).collect();
        assert_eq!(want, have);
        // A peer the table does not know (or a family not carried) gets everything withdrawn.
        let c = diff_chunk(&t, None, &sent, |_| true, None, 100);
        assert_eq!((c.announce.len(), c.withdraw.len()), (0, 9));
        let c = diff_chunk(&t, t.peer(&a), &sent, |p| p.prefix_len() < 32, None, 100);
        assert_eq!((c.announce.len(), c.withdraw.len()), (0, 9));
    }
}
