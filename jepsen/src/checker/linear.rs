//! Linearizability by search, as Wing and Gong proposed and Lowe made practical (the algorithm
//! of Knossos and Porcupine): find an order of the operations that respects real time (an
//! operation that completed before another was invoked comes first) and in which a sequential
//! model gives every result that was observed.
//!
//! The search keeps a cache of (operations linearized, model state) already explored, so each
//! configuration is expanded once. Histories are cut at quiescent points (no operation with a
//! known result is open), and each piece is searched from every state the previous piece can end
//! in (its frontier), so the cost grows with the pieces, not the whole run. Operations whose
//! outcome is unknown (`info`) may take effect at any moment after their invocation or never:
//! they are optional in every piece that follows, and carried to the next while not taken. A
//! search that exceeds its budget answers `Unknown`, never `Valid`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// The state; equal states must behave alike.
    type State: Clone + Eq + Hash;
    /// An operation's arguments.
    type Input;
    /// An operation's result.
    type Output;

    /// The state after `input` in `state` if it can give `output` (`None` for an unknown
    /// output: any result is possible); `None` if it cannot.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// One operation: when it was invoked and (if known) when it completed and with what result.
#[derive(Clone, Debug, PartialEq)]
pub struct Call<I, O> {
    /// Names it in reports (the invocation's index in the history).
    pub id: u64,
    /// When it was invoked.
    pub invoke: u64,
    /// When it completed, with its result; `None` if nobody knows whether it took effect.
    pub done: Option<(u64, O)>,
    /// What it asked.
    pub input: I,
}

/// What the search found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Some order of the operations explains every result.
    Valid {
        /// Pieces the history was cut into.
        pieces: usize,
        /// Configurations explored.
        explored: u64,
        /// The largest number of states a piece started from.
        widest_frontier: usize,
    },
    /// No order explains the results of the operations in `piece`.
    Invalid {
        /// The piece (from 0).
        piece: usize,
        /// The ids of the operations in it.
        ops: Vec<u64>,
        /// The longest order found that explains every result so far.
        longest_prefix: Vec<u64>,
        /// The operations none of which could come next after that prefix.
        stuck: Vec<u64>,
    },
    /// The search ran out of budget before it could decide.
    Unknown {
        /// The piece it was in.
        piece: usize,
        /// Configurations explored.
        explored: u64,
        /// Why it stopped.
        why: String,
    },
}

impl Outcome {
    /// `Some(true)` valid, `Some(false)` invalid, `None` unknown.
    pub fn valid(&self) -> Option<bool> {
        match self {
            Outcome::Valid { .. } => Some(true),
            Outcome::Invalid { .. } => Some(false),
            Outcome::Unknown { .. } => None,
        }
    }
}

/// Limits of the search.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Configurations explored in all, over every piece.
    pub configurations: u64,
    /// States a piece may start from.
    pub frontier: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            configurations: 20_000_000,
            frontier: 20_000,
        }
    }
}

/// Checks `calls` against `model` from `init`.
pub fn check<M: Model>(
    model: &M,
    init: M::State,
    mut calls: Vec<Call<M::Input, M::Output>>,
    budget: Budget,
) -> Outcome {
    calls.sort_by_key(|c| (c.invoke, c.id));
    let pieces = cut(&calls);
    // Each configuration: a state and the unknown operations not yet taken.
    let mut frontier: Vec<(M::State, BTreeSet<usize>)> = vec![(init, BTreeSet::new())];
    let mut explored = 0u64;
    let mut widest = 1usize;
    for (p, range) in pieces.iter().enumerate() {
        widest = widest.max(frontier.len());
        if frontier.len() > budget.frontier {
            return Outcome::Unknown {
                piece: p,
                explored,
                why: format!(
                    "{} possible states at the start of piece {p} (limit {})",
                    frontier.len(),
                    budget.frontier
                ),
            };
        }
        let mut ends: HashMap<M::State, Vec<BTreeSet<usize>>> = HashMap::new();
        let mut deepest: Option<Deepest> = None;
        for (state, carried) in &frontier {
            let mut search = Piece::new(&calls, range.clone(), carried);
            let found = search.run(model, state.clone(), &mut explored, budget.configurations);
            match found {
                Err(why) => {
                    return Outcome::Unknown {
                        piece: p,
                        explored,
                        why,
                    }
                }
                Ok(list) => {
                    for (s, rest) in list {
                        add_undominated(ends.entry(s).or_default(), rest);
                    }
                }
            }
            if deepest
                .as_ref()
                .is_none_or(|d| search.deepest.prefix.len() > d.prefix.len())
            {
                deepest = Some(search.deepest.clone());
            }
        }
        if ends.is_empty() {
            let d = deepest.unwrap_or_default();
            return Outcome::Invalid {
                piece: p,
                ops: calls[range.clone()].iter().map(|c| c.id).collect(),
                longest_prefix: d.prefix.iter().map(|&i| calls[i].id).collect(),
                stuck: d.stuck.iter().map(|&i| calls[i].id).collect(),
            };
        }
        frontier = ends
            .into_iter()
            .flat_map(|(s, sets)| sets.into_iter().map(move |r| (s.clone(), r)))
            .collect();
    }
    Outcome::Valid {
        pieces: pieces.len(),
        explored,
        widest_frontier: widest,
    }
}

/// Keeps `rest` unless a set already kept contains it (more unknown operations still open means
/// every future a smaller set allows); drops the kept sets it contains.
fn add_undominated(kept: &mut Vec<BTreeSet<usize>>, rest: BTreeSet<usize>) {
    if kept.iter().any(|k| k.is_superset(&rest)) {
        return;
    }
    kept.retain(|k| !rest.is_superset(k));
    kept.push(rest);
}

/// Cuts the calls (sorted by invocation) where no call with a known result is open.
fn cut<I, O>(calls: &[Call<I, O>]) -> Vec<std::ops::Range<usize>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut open_until: Option<u64> = None;
    for (i, c) in calls.iter().enumerate() {
        if let Some(until) = open_until {
            if c.invoke > until {
                pieces.push(start..i);
                start = i;
                open_until = None;
            }
        }
        if let Some((ret, _)) = &c.done {
            open_until = Some(open_until.map_or(*ret, |u| u.max(*ret)));
        }
    }
    if start < calls.len() {
        pieces.push(start..calls.len());
    }
    pieces
}

/// A 128-bit digest of a state: the search remembers digests, not whole states (a collision
/// is as likely as two random 128-bit numbers meeting).
fn digest<T: Hash>(t: &T) -> u128 {
    use std::hash::{DefaultHasher, Hasher};
    let half = |salt: u64| {
        let mut h = DefaultHasher::new();
        h.write_u64(salt);
        t.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0x9e37_79b9_7f4a_7c15)) << 64) | u128::from(half(0xc2b2_ae3d_27d4_eb4f))
}

#[derive(Clone, Debug, Default)]
struct Deepest {
    prefix: Vec<usize>,
    stuck: Vec<usize>,
}

/// The search of one piece from one starting configuration.
struct Piece<'a, I, O> {
    calls: &'a [Call<I, O>],
    /// The calls this search may take, by global index: the piece's and the carried unknowns.
    local: Vec<usize>,
    /// How many of `local` have a known result (they come first).
    known: usize,
    /// How many of `local` were invoked in this piece (the rest were carried from earlier ones).
    own: usize,
    deepest: Deepest,
}

impl<'a, I, O> Piece<'a, I, O> {
    fn new(calls: &'a [Call<I, O>], range: std::ops::Range<usize>, carried: &BTreeSet<usize>) -> Self {
        let mut local: Vec<usize> = range.clone().filter(|&i| calls[i].done.is_some()).collect();
        let known = local.len();
        local.extend(range.filter(|&i| calls[i].done.is_none()));
        let own = local.len();
        local.extend(carried.iter().copied());
        Self {
            calls,
            local,
            known,
            own,
            deepest: Deepest::default(),
        }
    }

    /// Every end configuration: a state after all known calls, and the unknowns not taken.
    #[allow(clippy::type_complexity)]
    fn run<M>(
        &mut self,
        model: &M,
        init: M::State,
        explored: &mut u64,
        limit: u64,
    ) -> Result<Vec<(M::State, BTreeSet<usize>)>, String>
    where
        M: Model<Input = I, Output = O>,
    {
        let n = self.local.len();
        let words = n.div_ceil(64).max(1);
        let mut seen: HashSet<(Vec<u64>, u128)> = HashSet::new();
        let mut ends = Vec::new();
        // Depth-first, with an explicit stack: (taken set, state, order taken).
        let mut stack: Vec<(Vec<u64>, M::State, Vec<usize>)> = vec![(vec![0; words], init, Vec::new())];
        while let Some((taken, state, order)) = stack.pop() {
            *explored += 1;
            if *explored > limit {
                return Err(format!("explored {limit} configurations"));
            }
            let is_taken = |l: usize| taken[l / 64] & (1 << (l % 64)) != 0;
            let known_left = (0..self.known).filter(|&l| !is_taken(l)).count();
            if known_left == 0 {
                let rest = (self.known..n)
                    .filter(|&l| !is_taken(l))
                    .map(|l| self.local[l])
                    .collect();
                ends.push((state.clone(), rest));
            }
            // A call may come next if it was invoked before every open known call completed.
            let horizon = (0..self.known)
                .filter(|&l| !is_taken(l))
                .filter_map(|l| self.calls[self.local[l]].done.as_ref().map(|(t, _)| *t))
                .min()
                .unwrap_or(u64::MAX);
            let mut moved = false;
            for l in 0..n {
                if is_taken(l) {
                    continue;
                }
                let call = &self.calls[self.local[l]];
                // Carried unknowns were invoked in an earlier piece, before every open call.
                if l < self.own && call.invoke > horizon {
                    continue;
                }
                let output = call.done.as_ref().map(|(_, o)| o);
                let Some(next) = model.step(&state, &call.input, output) else {
                    continue;
                };
                moved = true;
                let mut t = taken.clone();
                t[l / 64] |= 1 << (l % 64);
                if seen.insert((t.clone(), digest(&next))) {
                    let mut o = order.clone();
                    o.push(self.local[l]);
                    stack.push((t, next, o));
                }
            }
            if !moved && known_left > 0 && order.len() >= self.deepest.prefix.len() {
                self.deepest = Deepest {
                    prefix: order.clone(),
                    stuck: (0..self.known)
                        .filter(|&l| !is_taken(l))
                        .filter(|&l| {
                            self.calls[self.local[l]].invoke <= horizon
                        })
                        .map(|l| self.local[l])
                        .collect(),
                };
            }
        }
        Ok(ends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register: write v, read -> v.
    struct Register;

    #[derive(Clone, Debug, PartialEq)]
    enum Op {
        Write(u8),
        Read,
    }

    impl Model for Register {
        type State = u8;
        type Input = Op;
        type Output = u8;
        fn step(&self, s: &u8, input: &Op, output: Option<&u8>) -> Option<u8> {
            match input {
                Op::Write(v) => Some(*v),
                Op::Read => match output {
                    Some(o) if o != s => None,
                    _ => Some(*s),
                },
            }
        }
    }

    fn call(id: u64, invoke: u64, done: Option<(u64, u8)>, input: Op) -> Call<Op, u8> {
        Call {
            id,
            invoke,
            done,
            input,
        }
    }

    #[test]
    fn concurrent_writes_may_come_in_either_order() {
        let calls = vec![
            call(0, 0, Some((10, 0)), Op::Write(1)),
            call(1, 1, Some((11, 0)), Op::Write(2)),
            call(2, 12, Some((13, 1)), Op::Read),
        ];
        assert_eq!(check(&Register, 0, calls, Budget::default()).valid(), Some(true));
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_invalid() {
        let calls = vec![
            call(0, 0, Some((10, 0)), Op::Write(1)),
            call(1, 11, Some((12, 0)), Op::Write(2)),
            // Invoked after both writes completed: only 2 is possible.
            call(2, 20, Some((21, 1)), Op::Read),
        ];
        let out = check(&Register, 0, calls, Budget::default());
        match out {
            Outcome::Invalid { piece, stuck, .. } => {
                assert_eq!(piece, 2);
                assert_eq!(stuck, vec![2]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_write_may_take_effect_late_or_never() {
        // The unknown write of 5 in the first piece explains a read of 5 much later...
        let late = vec![
            call(0, 0, None, Op::Write(5)),
            call(1, 1, Some((2, 0)), Op::Read),
            call(2, 10, Some((11, 0)), Op::Read),
            call(3, 20, Some((21, 5)), Op::Read),
        ];
        assert_eq!(check(&Register, 0, late, Budget::default()).valid(), Some(true));
        // ... and never having happened explains reads of the old value.
        let never = vec![
            call(0, 0, None, Op::Write(5)),
            call(1, 10, Some((11, 0)), Op::Read),
        ];
        assert_eq!(check(&Register, 0, never, Budget::default()).valid(), Some(true));
        // But it takes effect once: 5, then 0 written, then 5 again is impossible.
        let twice = vec![
            call(0, 0, None, Op::Write(5)),
            call(1, 10, Some((11, 5)), Op::Read),
            call(2, 20, Some((21, 0)), Op::Write(0)),
            call(3, 30, Some((31, 5)), Op::Read),
        ];
        assert_eq!(check(&Register, 0, twice, Budget::default()).valid(), Some(false));
    }

    #[test]
    fn the_history_is_cut_at_quiescent_points() {
        let calls: Vec<_> = (0..100)
            .map(|i| call(i, i * 10, Some((i * 10 + 5, 0)), Op::Read))
            .collect();
        match check(&Register, 0, calls, Budget::default()) {
            Outcome::Valid { pieces, .. } => assert_eq!(pieces, 100),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_search_over_budget_is_unknown_never_valid() {
        // Twelve concurrent writes and a read: many orders to try.
        let mut calls: Vec<_> = (0..12u64)
            .map(|i| call(i, i, Some((100, 0)), Op::Write(i as u8)))
            .collect();
        calls.push(call(99, 101, Some((102, 200)), Op::Read));
        let tiny = Budget {
            configurations: 50,
            frontier: 10,
        };
        assert_eq!(check(&Register, 0, calls.clone(), tiny).valid(), None);
        // With room, it is decided (200 was never written).
        assert_eq!(check(&Register, 0, calls, Budget::default()).valid(), Some(false));
    }
}
