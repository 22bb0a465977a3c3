//! Linearizability by search, as Wing and Gong proposed and Lowe made practical (the algorithm
//! of Knossos and Porcupine): find an order of the operations that respects real time (an
//! operation that completed before another was invoked comes first) and in which a sequential
//! model gives every result that was observed.
//!
//! The search keeps a cache of (operations linearized, model state) already explored, so each
//! configuration is expanded once. Histories are cut at quiescent points (no operation with a
//! known result is open); each piece's search yields the states it can end in one at a time, and
//! the next piece is searched from the first of them, going back for another only when the rest
//! of the history cannot be explained from it. Operations whose outcome is unknown (`info`) may
//! take effect at any moment after their invocation or never: they are optional in every piece
//! that follows, carried to the next while not taken, and tried last (they usually did not take
//! effect). A valid history is thus found in about linear time; proving a history invalid needs
//! the whole tree, and a search that exceeds its budget answers `Unknown`, never `Valid`.

use std::collections::{BTreeSet, HashSet};
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

    /// Whether `input` with the known `output` is possible in `state` and leaves it as it is (a
    /// read, a refusal); the search takes such calls without branching. Override it when a
    /// cheaper answer than a whole step exists.
    fn is_noop(&self, state: &Self::State, input: &Self::Input, output: &Self::Output) -> bool {
        self.step(state, input, Some(output))
            .is_some_and(|next| next == *state)
    }
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
    /// How long after its invocation an operation of unknown outcome may still take effect,
    /// in the history's time unit (nanoseconds). ironlb bounds it: the admin API abandons a
    /// write after its write timeout (5 s), and Raft commits or discards a leader's uncommitted
    /// entries at its successor's first commit, seconds later even when every member was
    /// killed. Past the horizon an unknown is taken never to have happened, so unknowns stop
    /// piling up in the pieces after them. `u64::MAX` is Knossos' (unbounded) rule.
    pub unknown_horizon: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            configurations: 20_000_000,
            frontier: 20_000,
            unknown_horizon: 30_000_000_000,
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
    if pieces.is_empty() {
        return Outcome::Valid {
            pieces: 0,
            explored: 0,
            widest_frontier: 1,
        };
    }
    let mut explored = 0u64;
    // Configurations (piece, state, unknowns carried) from which the rest is known to fail.
    let mut failed: HashSet<(usize, u128, BTreeSet<usize>)> = HashSet::new();
    let mut levels: Vec<Piece<'_, M::Input, M::Output, M::State>> =
        vec![Piece::new(&calls, pieces[0].clone(), BTreeSet::new(), init)];
    let mut tried_at: Vec<HashSet<(u128, BTreeSet<usize>)>> = vec![HashSet::new()];
    let mut widest = 1usize;
    // The deepest piece that could not be explained, with its longest explained prefix.
    let mut worst: Option<(usize, Deepest)> = None;
    loop {
        let p = levels.len() - 1;
        let next = levels[p].next_end(model, &mut explored, budget.configurations);
        match next {
            Err(why) => {
                return Outcome::Unknown {
                    piece: p,
                    explored,
                    why,
                }
            }
            Ok(Some((state, mut rest))) => {
                if p + 1 == pieces.len() {
                    return Outcome::Valid {
                        pieces: pieces.len(),
                        explored,
                        widest_frontier: widest,
                    };
                }
                let next_start = calls[pieces[p + 1].start].invoke;
                drop_expired_unknowns(&calls, &mut rest, next_start, budget.unknown_horizon);
                let key = (digest(&state), rest.clone());
                if failed.contains(&(p + 1, key.0, key.1.clone())) || !tried_at[p].insert(key) {
                    continue;
                }
                widest = widest.max(tried_at[p].len());
                if tried_at[p].len() > budget.frontier {
                    return too_many_states(p, explored, budget.frontier);
                }
                levels.push(Piece::new(&calls, pieces[p + 1].clone(), rest, state));
                tried_at.push(HashSet::new());
            }
            Ok(None) => {
                // Every order of this piece from this start fails (somewhere later, or here).
                let Some(done) = levels.pop() else { break };
                tried_at.pop();
                if worst.as_ref().is_none_or(|(wp, _)| p >= *wp) && done.stuck_here() {
                    worst = Some((p, done.deepest.clone()));
                }
                failed.insert((p, digest(&done.start), done.carried.clone()));
                if levels.is_empty() {
                    break;
                }
            }
        }
    }
    invalid(&calls, &pieces, worst.unwrap_or_default())
}

/// The search gives up: a piece can end in more states than the budget allows.
fn too_many_states(piece: usize, explored: u64, frontier: usize) -> Outcome {
    Outcome::Unknown {
        piece,
        explored,
        why: format!("more than {frontier} possible states after piece {piece}"),
    }
}

/// Drops the unknowns in `rest` invoked more than `horizon` before `next_start`.
fn drop_expired_unknowns<I, O>(
    calls: &[Call<I, O>],
    rest: &mut BTreeSet<usize>,
    next_start: u64,
    horizon: u64,
) {
    // Past the horizon an unknown is taken never to have happened.
    rest.retain(|&i| calls[i].invoke.saturating_add(horizon) >= next_start);
}

/// The verdict on a history no order explains, naming by ids the deepest piece that failed.
fn invalid<I, O>(
    calls: &[Call<I, O>],
    pieces: &[std::ops::Range<usize>],
    (piece, d): (usize, Deepest),
) -> Outcome {
    Outcome::Invalid {
        piece,
        ops: calls[pieces[piece].clone()].iter().map(|c| c.id).collect(),
        longest_prefix: d.prefix.iter().map(|&i| calls[i].id).collect(),
        stuck: d.stuck.iter().map(|&i| calls[i].id).collect(),
    }
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

/// The search of one piece from one starting configuration, yielding the configurations it can
/// end in one at a time.
struct Piece<'a, I, O, S> {
    calls: &'a [Call<I, O>],
    /// The calls this search may take, by global index: the piece's and the carried unknowns.
    local: Vec<usize>,
    /// How many of `local` have a known result (they come first).
    known: usize,
    /// How many of `local` were invoked in this piece (the rest were carried from earlier ones).
    own: usize,
    /// Where it started.
    start: S,
    carried: BTreeSet<usize>,
    /// Depth-first: (taken set, state, order taken).
    stack: Vec<(Vec<u64>, S, Order)>,
    seen: HashSet<(Vec<u64>, u128)>,
    /// Whether some order got through every known call.
    ended: bool,
    deepest: Deepest,
}

impl<'a, I, O, S: Clone + Eq + Hash> Piece<'a, I, O, S> {
    fn new(
        calls: &'a [Call<I, O>],
        range: std::ops::Range<usize>,
        carried: BTreeSet<usize>,
        start: S,
    ) -> Self {
        let mut local: Vec<usize> = range.clone().filter(|&i| calls[i].done.is_some()).collect();
        let known = local.len();
        local.extend(range.filter(|&i| calls[i].done.is_none()));
        let own = local.len();
        local.extend(carried.iter().copied());
        let words = local.len().div_ceil(64).max(1);
        Self {
            calls,
            local,
            known,
            own,
            stack: vec![(vec![0; words], start.clone(), None)],
            start,
            carried,
            seen: HashSet::new(),
            ended: false,
            deepest: Deepest::default(),
        }
    }

    /// Whether this piece itself could not be explained (as opposed to the pieces after it).
    fn stuck_here(&self) -> bool {
        !self.ended
    }

    /// The next configuration this piece can end in: a state after all known calls, and the
    /// unknowns not taken; `None` when there are no more.
    #[allow(clippy::type_complexity)]
    fn next_end<M>(
        &mut self,
        model: &M,
        explored: &mut u64,
        limit: u64,
    ) -> Result<Option<(S, BTreeSet<usize>)>, String>
    where
        M: Model<Input = I, Output = O, State = S>,
    {
        let n = self.local.len();
        while let Some((mut taken, state, mut order)) = self.stack.pop() {
            *explored += 1;
            if *explored > limit {
                return Err(format!("explored {limit} configurations"));
            }
            self.take_noops(model, &state, &mut taken, &mut order);
            let known_left = (0..self.known).filter(|&l| !is_set(&taken, l)).count();
            // A call may come next if it was invoked before every open known call completed.
            let horizon = self.horizon(&taken);
            let candidates = self.candidates(&taken, horizon);
            let mut moved = false;
            for &l in candidates.iter().rev() {
                let Some(next) = self.step(model, &state, l) else {
                    continue;
                };
                moved = true;
                let mut t = taken.clone();
                set(&mut t, l);
                if self.seen.insert((t.clone(), digest(&next))) {
                    self.stack
                        .push((t, next, push(order.clone(), self.local[l])));
                }
            }
            if !moved && known_left > 0 {
                self.note_dead_end(&taken, &order, horizon);
            }
            if known_left == 0 {
                self.ended = true;
                let rest = (self.known..n)
                    .filter(|&l| !is_set(&taken, l))
                    .map(|l| self.local[l])
                    .collect();
                return Ok(Some((state, rest)));
            }
        }
        Ok(None)
    }

    /// Takes every known call that fits now and leaves the state as it is, until none does.
    fn take_noops<M>(&self, model: &M, state: &S, taken: &mut [u64], order: &mut Order)
    where
        M: Model<Input = I, Output = O, State = S>,
    {
        // Calls with a known result that leave the state as it is (reads, refusals) are taken
        // as soon as they fit: taking such a call earlier never spoils an order that takes it
        // later, so there is no need to branch on them.
        loop {
            let horizon = self.horizon(taken);
            let fits = (0..self.known).find(|&l| {
                let call = &self.calls[self.local[l]];
                !is_set(taken, l)
                    && call.invoke <= horizon
                    && call
                        .done
                        .as_ref()
                        .is_some_and(|(_, out)| model.is_noop(state, &call.input, out))
            });
            let Some(l) = fits else { break };
            set(taken, l);
            *order = push(order.take(), self.local[l]);
        }
    }

    /// The calls not yet taken that may come next, the most likely last.
    fn candidates(&self, taken: &[u64], horizon: u64) -> Vec<usize> {
        // Successors, pushed so that the most likely is tried first: known calls by how
        // soon they completed, unknowns last.
        let mut candidates: Vec<usize> = (0..self.local.len())
            .filter(|&l| !is_set(taken, l))
            .filter(|&l| l >= self.own || self.calls[self.local[l]].invoke <= horizon)
            .collect();
        candidates.sort_by_key(|&l| {
            let c = &self.calls[self.local[l]];
            (
                l >= self.known,
                c.done.as_ref().map_or(u64::MAX, |(t, _)| *t),
                c.invoke,
            )
        });
        candidates
    }

    /// Remembers an order no call can extend, and what was stuck, if it is the deepest so far.
    fn note_dead_end(&mut self, taken: &[u64], order: &Order, horizon: u64) {
        let depth = order.as_ref().map_or(0, |o| o.depth);
        if depth >= self.deepest.prefix.len() {
            self.deepest = Deepest {
                prefix: unwind(order),
                stuck: (0..self.known)
                    .filter(|&l| !is_set(taken, l))
                    .filter(|&l| self.calls[self.local[l]].invoke <= horizon)
                    .map(|l| self.local[l])
                    .collect(),
            };
        }
    }

    /// The earliest completion of a known call not yet taken.
    fn horizon(&self, taken: &[u64]) -> u64 {
        (0..self.known)
            .filter(|&l| !is_set(taken, l))
            .filter_map(|l| self.calls[self.local[l]].done.as_ref().map(|(t, _)| *t))
            .min()
            .unwrap_or(u64::MAX)
    }

    fn step<M: Model<Input = I, Output = O, State = S>>(
        &self,
        model: &M,
        state: &S,
        l: usize,
    ) -> Option<S> {
        let call = &self.calls[self.local[l]];
        model.step(state, &call.input, call.done.as_ref().map(|(_, o)| o))
    }
}

fn is_set(bits: &[u64], l: usize) -> bool {
    bits[l / 64] & (1 << (l % 64)) != 0
}

fn set(bits: &mut [u64], l: usize) {
    bits[l / 64] |= 1 << (l % 64);
}

/// The order calls were taken in, shared between the configurations that extend it.
type Order = Option<std::rc::Rc<Link>>;

struct Link {
    call: usize,
    depth: usize,
    prev: Order,
}

fn push(order: Order, call: usize) -> Order {
    let depth = order.as_ref().map_or(0, |o| o.depth) + 1;
    Some(std::rc::Rc::new(Link {
        call,
        depth,
        prev: order,
    }))
}

fn unwind(order: &Order) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = order.clone();
    while let Some(link) = at {
        out.push(link.call);
        at = link.prev.clone();
    }
    out.reverse();
    out
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
        assert_eq!(
            check(&Register, 0, calls, Budget::default()).valid(),
            Some(true)
        );
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
        assert_eq!(
            check(&Register, 0, late, Budget::default()).valid(),
            Some(true)
        );
        // ... and never having happened explains reads of the old value.
        let never = vec![
            call(0, 0, None, Op::Write(5)),
            call(1, 10, Some((11, 0)), Op::Read),
        ];
        assert_eq!(
            check(&Register, 0, never, Budget::default()).valid(),
            Some(true)
        );
        // But it takes effect once: 5, then 0 written, then 5 again is impossible.
        let twice = vec![
            call(0, 0, None, Op::Write(5)),
            call(1, 10, Some((11, 5)), Op::Read),
            call(2, 20, Some((21, 0)), Op::Write(0)),
            call(3, 30, Some((31, 5)), Op::Read),
        ];
        assert_eq!(
            check(&Register, 0, twice, Budget::default()).valid(),
            Some(false)
        );
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
    fn an_unknown_takes_effect_within_its_horizon_or_never() {
        const S: u64 = 1_000_000_000;
        // write(5) of unknown outcome at 2 s; much later one read still sees 1, the next 5.
        let history = |read_at: u64| {
            vec![
                call(0, 0, Some((S, 0)), Op::Write(1)),
                call(1, 2 * S, None, Op::Write(5)),
                call(4, 3 * S, Some((3 * S + 1, 1)), Op::Read),
                call(2, read_at, Some((read_at + 1, 1)), Op::Read),
                call(3, read_at + 2, Some((read_at + 3, 5)), Op::Read),
            ]
        };
        let budget = Budget {
            unknown_horizon: 30 * S,
            ..Budget::default()
        };
        // Within the horizon the write may land between the two reads...
        assert_eq!(
            check(&Register, 0, history(10 * S), budget).valid(),
            Some(true)
        );
        // ...past it, it never happened, and the second read cannot be explained.
        assert_eq!(
            check(&Register, 0, history(100 * S), budget).valid(),
            Some(false)
        );
        // Knossos' rule (no horizon) explains both.
        let unbounded = Budget {
            unknown_horizon: u64::MAX,
            ..budget
        };
        assert_eq!(
            check(&Register, 0, history(100 * S), unbounded).valid(),
            Some(true)
        );
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
            ..Budget::default()
        };
        assert_eq!(check(&Register, 0, calls.clone(), tiny).valid(), None);
        // With room, it is decided (200 was never written).
        assert_eq!(
            check(&Register, 0, calls, Budget::default()).valid(),
            Some(false)
        );
    }
}
