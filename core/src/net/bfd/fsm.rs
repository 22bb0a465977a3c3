//! One BFD session in Asynchronous mode (RFC 5880 section 6.8) as pure state: packets and the
//! clock go in, packets to send and state changes come out. No sockets, no timers, no runtime:
//! the owner calls [`Session::on_packet`] for each packet received, [`Session::poll_timers`]
//! when [`Session::next_deadline`] has passed, and sends what it is told to.
//!
//! What it does, section by section:
//! - 6.8.6, reception: the discriminator check, the remote variables, Poll/Final, and the
//!   Down/Init/Up transitions (a three-way handshake), AdminDown received taking the session
//!   Down with diagnostic 3;
//! - 6.8.4, detection: Init or Up with no packet for the remote Detect Mult times
//!   max(our Required Min RX, its Desired Min TX) goes Down with diagnostic 1;
//! - 6.8.2 and 6.8.7, transmission: every max(our Desired Min TX, its Required Min RX), less
//!   0-25% jitter (10-25% when our Detect Mult is 1) from an injected [`Jitter`] source; none
//!   while passive and unaddressed, when the peer asks for none (Required Min RX 0) or when the
//!   peer's Demand mode is active; a Final at once for every Poll;
//! - 6.8.3, timer changes: at least 1 s Desired Min TX while not Up, and each change of our
//!   intervals while Up announced by a Poll Sequence (6.5), in which a slower transmit interval
//!   and a faster receive interval wait for the peer's Final, so its detection time always
//!   covers the gap between our packets, and ours the gap between its packets (outside Up
//!   nothing can time out falsely, and new values simply ride on the next packet);
//! - 6.8.16, administrative control: AdminDown with diagnostic 7, packets received discarded.
//!
//! Demand mode is never asked for (our D bit is always clear), Echo mode is not offered
//! (Required Min Echo RX 0) and authentication is refused, as the codec does.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use super::packet::{ControlPacket, DecodeError, Diag, State, VERSION};

/// The least Desired Min TX Interval while the session is not Up (RFC 5880 section 6.8.3):
/// a peer that does not run BFD costs next to nothing.
pub const SLOW_TX: Duration = Duration::from_secs(1);
/// The shortest interval either way: zero is reserved on the wire, and a host's scheduler
/// cannot keep anything shorter anyway.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// A session's settings: a BFDProfile, in the protocol's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// How often we want to send once Up (Desired Min TX Interval; at least 1 ms).
    pub desired_min_tx: Duration,
    /// How often we can receive (Required Min RX Interval; at least 1 ms).
    pub required_min_rx: Duration,
    /// How many of the peer's intervals without a packet make it dead (Detect Mult; at least 1).
    pub detect_mult: u8,
    /// Send nothing until the peer has sent something (the passive role, RFC 5880 6.1).
    pub passive: bool,
}

impl Default for SessionConfig {
    /// MetalLB's BFDProfile defaults: 300 ms both ways, multiplier 3, active.
    fn default() -> Self {
        SessionConfig {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            passive: false,
        }
    }
}

/// Where transmit jitter comes from: numbers spread evenly over `u32` (RFC 5880 section 6.8.7
/// asks for random jitter; tests pass a fixed source to know each instant).
pub trait Jitter {
    /// The next number.
    fn next_u32(&mut self) -> u32;
}

/// SplitMix64: enough spread for jitter, which needs no secrecy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from a seed (any value).
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }
}

impl Jitter for SplitMix {
    fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    }
}

/// What the owner of a session must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this packet to the peer.
    Send(ControlPacket),
    /// The session changed state; `diag` is why (what our packets now carry).
    StateChanged {
        /// The state before.
        from: State,
        /// The state now.
        to: State,
        /// The reason.
        diag: Diag,
    },
}

/// Why a received packet changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    /// It fails a reception check of its own (see [`ControlPacket::check`]).
    #[error("{0}")]
    Malformed(#[from] DecodeError),
    /// Its Your Discriminator names another session (RFC 5880 section 6.8.6).
    #[error("Your Discriminator {your:#x} is not this session's {mine:#x}")]
    NotOurs {
        /// The discriminator it named.
        your: u32,
        /// Ours.
        mine: u32,
    },
    /// The session is AdminDown, which discards what it receives (RFC 5880 section 6.8.6),
    /// after noting the peer's variables as the RFC orders, but without counting the packet
    /// against the detection time.
    #[error("the session is administratively down")]
    AdminDown,
}

/// The remote variables of RFC 5880 section 6.8.1, and what else its last packet said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Remote {
    /// bfd.RemoteDiscr (zero: not heard from within a detection time).
    discr: u32,
    /// bfd.RemoteSessionState.
    state: State,
    /// bfd.RemoteDemandMode.
    demand: bool,
    /// bfd.RemoteMinRxInterval, µs.
    min_rx: u32,
    /// Its last Desired Min TX Interval, µs.
    desired_tx: u32,
    /// Its last Detect Mult (zero: nothing received).
    detect_mult: u8,
}

impl Remote {
    /// The values before any packet (bfd.RemoteMinRxInterval starts at 1).
    const UNKNOWN: Remote = Remote {
        discr: 0,
        state: State::Down,
        demand: false,
        min_rx: 1,
        desired_tx: 0,
        detect_mult: 0,
    };
}

/// Where the Poll Sequence announcing our latest intervals stands (RFC 5880 section 6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Poll {
    /// The peer has acknowledged our intervals.
    Idle,
    /// Our intervals changed; no packet with P has carried them yet, so a Final now answers an
    /// older Poll.
    Waiting,
    /// Packets with P carrying the current intervals went out: the next Final completes.
    Sent,
    /// Packets with P carrying older intervals went out, and the intervals changed again: a
    /// Final may answer either, so the sequence starts over.
    Stale,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// `t + d`; an instant that far out does not exist on a real clock, so firing at once beats a
/// panic.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}

/// RFC 5880 section 6.8.6's table: the new state and its diagnostic, if the session moves.
fn transition(local: State, remote: State) -> Option<(State, Diag)> {
    match (local, remote) {
        (State::AdminDown, _) | (State::Down, State::AdminDown) => None,
        (_, State::AdminDown) | (State::Up, State::Down) => {
            Some((State::Down, Diag::NeighborSignaledSessionDown))
        }
        (State::Down, State::Down) => Some((State::Init, Diag::NoDiagnostic)),
        (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
            Some((State::Up, Diag::NoDiagnostic))
        }
        _ => None,
    }
}

/// One BFD session's state machine; see the module documentation.
#[derive(Clone, Debug)]
pub struct Session<J = SplitMix> {
    config: SessionConfig,
    local_discr: NonZeroU32,
    state: State,
    diag: Diag,
    remote: Remote,
    /// bfd.DesiredMinTxInterval as announced, µs.
    tx_announced: u32,
    /// The Desired Min TX Interval our transmissions follow, µs (lags a slower announced value
    /// until the peer's Final).
    tx_in_effect: u32,
    /// bfd.RequiredMinRxInterval as announced, µs.
    rx_announced: u32,
    /// The Required Min RX Interval our detection time follows, µs (lags a faster announced
    /// value until the peer's Final).
    rx_in_effect: u32,
    poll: Poll,
    /// When the last packet counting for detection arrived.
    last_rx: Option<Instant>,
    /// When the last periodic packet went out.
    last_tx: Option<Instant>,
    /// When the next periodic packet is due; `None`: none is.
    next_tx: Option<Instant>,
    /// The transmit interval `next_tx` was computed with, µs.
    scheduled_interval: u32,
    jitter: J,
}

impl Session<SplitMix> {
    /// A session in Down, created at `now`, jittered from a generator seeded by the local
    /// discriminator (which RFC 5880 section 6.8.1 wants random). An active session's first
    /// packet is due at once.
    pub fn new(config: SessionConfig, local_discriminator: NonZeroU32, now: Instant) -> Self {
        let seed = u64::from(local_discriminator.get());
        Session::with_jitter(config, local_discriminator, now, SplitMix::new(seed))
    }
}

impl<J: Jitter> Session<J> {
    /// A session in Down, created at `now`, jittered by `jitter`.
    pub fn with_jitter(
        config: SessionConfig,
        local_discriminator: NonZeroU32,
        now: Instant,
        jitter: J,
    ) -> Self {
        let mut s = Session {
            config,
            local_discr: local_discriminator,
            state: State::Down,
            diag: Diag::NoDiagnostic,
            remote: Remote::UNKNOWN,
            tx_announced: 0,
            tx_in_effect: 0,
            rx_announced: 0,
            rx_in_effect: 0,
            poll: Poll::Idle,
            last_rx: None,
            last_tx: None,
            next_tx: None,
            scheduled_interval: 0,
            jitter,
        };
        s.tx_announced = s.wanted_tx();
        s.tx_in_effect = s.tx_announced;
        s.rx_announced = s.wanted_rx();
        s.rx_in_effect = s.rx_announced;
        s.reschedule(now);
        s
    }

    /// The local session state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Why the session last changed state.
    pub fn diag(&self) -> Diag {
        self.diag
    }

    /// The peer's session state as last heard (Down before anything is).
    pub fn remote_state(&self) -> State {
        self.remote.state
    }

    /// Our discriminator.
    pub fn local_discriminator(&self) -> NonZeroU32 {
        self.local_discr
    }

    /// The peer's discriminator, once heard within a detection time.
    pub fn remote_discriminator(&self) -> Option<NonZeroU32> {
        NonZeroU32::new(self.remote.discr)
    }

    /// The settings in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The interval between our periodic packets before jitter, or `None` when none are sent.
    pub fn tx_interval(&self) -> Option<Duration> {
        self.sending()
            .then(|| Duration::from_micros(u64::from(self.interval())))
    }

    /// How long the peer may stay silent before the session goes down (RFC 5880 section
    /// 6.8.4), once it has sent something.
    pub fn detection_time(&self) -> Option<Duration> {
        let per = self.rx_in_effect.max(self.remote.desired_tx);
        let us = u64::from(per) * u64::from(self.remote.detect_mult);
        (us > 0).then(|| Duration::from_micros(us))
    }

    /// When [`Session::poll_timers`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.detect_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires what is due at `now`: the detection time (RFC 5880 section 6.8.4), then the
    /// periodic packet.
    pub fn poll_timers(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        self.expire_if_due(now, &mut actions);
        self.transmit_if_due(now, &mut actions);
        actions
    }

    /// A packet from the peer arrived at `now` (RFC 5880 section 6.8.6). A detection time
    /// that ran out before it is taken first: a late packet does not undo the timeout.
    pub fn on_packet(&mut self, now: Instant, p: &ControlPacket) -> Result<Vec<Action>, Discard> {
        p.check()?;
        let mine = self.local_discr.get();
        if p.your_discriminator != 0 && p.your_discriminator != mine {
            return Err(Discard::NotOurs {
                your: p.your_discriminator,
                mine,
            });
        }
        let mut actions = Vec::new();
        self.expire_if_due(now, &mut actions);
        self.remote = Remote {
            discr: p.my_discriminator,
            state: p.state,
            demand: p.demand,
            min_rx: p.required_min_rx,
            desired_tx: p.desired_min_tx,
            detect_mult: p.detect_mult,
        };
        if p.final_ {
            self.finish_poll();
        }
        if self.state == State::AdminDown {
            self.reschedule(now);
            return Err(Discard::AdminDown);
        }
        self.last_rx = Some(now);
        if let Some((to, diag)) = transition(self.state, p.state) {
            self.change(to, diag, &mut actions);
        }
        if p.poll {
            // At once, whatever the transmit timer says (RFC 5880 section 6.8.7).
            actions.push(Action::Send(self.packet(false, true)));
        }
        self.reschedule(now);
        self.transmit_if_due(now, &mut actions);
        Ok(actions)
    }

    /// Takes the session AdminDown (RFC 5880 section 6.8.16): diagnostic 7 and AdminDown
    /// packets at the slow rate, so the peer goes Down rather than timing out.
    pub fn admin_down(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state != State::AdminDown {
            self.change(State::AdminDown, Diag::AdministrativelyDown, &mut actions);
            self.reschedule(now);
            self.transmit_if_due(now, &mut actions);
        }
        actions
    }

    /// Takes the session out of AdminDown, into Down; the diagnostic stays.
    pub fn admin_up(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state == State::AdminDown {
            let diag = self.diag;
            self.change(State::Down, diag, &mut actions);
            self.reschedule(now);
            self.transmit_if_due(now, &mut actions);
        }
        actions
    }

    /// New settings: the multiplier and the passive role apply at once, new intervals through
    /// a Poll Sequence (RFC 5880 section 6.8.3).
    pub fn reconfigure(&mut self, now: Instant, config: SessionConfig) -> Vec<Action> {
        self.config = config;
        let tx = self.set_tx(self.wanted_tx());
        let rx = self.set_rx(self.wanted_rx());
        if tx || rx {
            self.request_poll();
        }
        let mut actions = Vec::new();
        self.reschedule(now);
        self.transmit_if_due(now, &mut actions);
        actions
    }

    fn wanted_tx(&self) -> u32 {
        let tx = micros(self.config.desired_min_tx).max(micros(MIN_INTERVAL));
        if self.state == State::Up {
            tx
        } else {
            tx.max(micros(SLOW_TX))
        }
    }

    fn wanted_rx(&self) -> u32 {
        micros(self.config.required_min_rx).max(micros(MIN_INTERVAL))
    }

    /// Announces a Desired Min TX; whether it changed. Faster takes effect at once. Slower
    /// waits until the peer has heard of it, so its detection time grows before our gaps do:
    /// while Up, for its Final; otherwise, for our next packet (which is how an AdminDown or
    /// a Down reaches the peer before it would time out on our old interval).
    fn set_tx(&mut self, us: u32) -> bool {
        if us == self.tx_announced {
            return false;
        }
        self.tx_announced = us;
        self.tx_in_effect = self.tx_in_effect.min(us);
        true
    }

    /// Announces a Required Min RX; whether it changed. Slower takes effect at once; faster,
    /// while Up, only after the peer's Final, so it sends faster before we expect it to.
    fn set_rx(&mut self, us: u32) -> bool {
        if us == self.rx_announced {
            return false;
        }
        self.rx_announced = us;
        if self.state != State::Up || us > self.rx_in_effect {
            self.rx_in_effect = us;
        }
        true
    }

    /// Starts (or restarts) a Poll Sequence for intervals just changed. Only while Up: the
    /// rules it serves keep an Up session from a false timeout, and a peer in any other state
    /// (AdminDown among them) may never answer; it reads the new values from our next packet.
    fn request_poll(&mut self) {
        if self.state != State::Up {
            self.settle();
            return;
        }
        self.poll = match self.poll {
            Poll::Idle | Poll::Waiting => Poll::Waiting,
            Poll::Sent | Poll::Stale => Poll::Stale,
        };
    }

    /// No Poll Sequence, and the announced intervals in effect (a slower transmit interval
    /// from our next packet on, see [`Session::set_tx`]): the rule whenever not Up.
    fn settle(&mut self) {
        self.poll = Poll::Idle;
        self.tx_in_effect = self.tx_in_effect.min(self.tx_announced);
        self.rx_in_effect = self.rx_announced;
    }

    /// A Final arrived.
    fn finish_poll(&mut self) {
        match self.poll {
            Poll::Sent => {
                self.poll = Poll::Idle;
                self.tx_in_effect = self.tx_announced;
                self.rx_in_effect = self.rx_announced;
            }
            Poll::Stale => self.poll = Poll::Waiting,
            Poll::Idle | Poll::Waiting => {}
        }
    }

    fn change(&mut self, to: State, diag: Diag, actions: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.diag = diag;
        actions.push(Action::StateChanged { from, to, diag });
        if to != State::Up {
            self.settle();
        }
        // Up runs at the configured rate, anything else at the slow one (RFC 5880 6.8.3).
        if self.set_tx(self.wanted_tx()) {
            self.request_poll();
        }
    }

    fn detect_deadline(&self) -> Option<Instant> {
        Some(later(self.last_rx?, self.detection_time()?))
    }

    /// The detection time ran out: the peer is forgotten, and an Init or Up session goes Down.
    fn expire_if_due(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.detect_deadline().is_none_or(|d| d > now) {
            return;
        }
        self.remote = Remote::UNKNOWN;
        self.last_rx = None;
        if matches!(self.state, State::Init | State::Up) {
            self.change(State::Down, Diag::ControlDetectionTimeExpired, actions);
        }
        self.reschedule(now);
    }

    /// Whether periodic packets go out (RFC 5880 section 6.8.7).
    fn sending(&self) -> bool {
        let passive_unaddressed = self.config.passive && self.remote.discr == 0;
        // The peer's Demand mode is active: it needs our packets only for a Poll Sequence.
        let remote_demand = self.remote.demand
            && self.state == State::Up
            && self.remote.state == State::Up
            && self.poll == Poll::Idle;
        !passive_unaddressed && self.remote.min_rx != 0 && !remote_demand
    }

    /// The transmit interval before jitter, µs.
    fn interval(&self) -> u32 {
        self.tx_in_effect.max(self.remote.min_rx)
    }

    /// The interval less 0-25% jitter, or 10-25% when our Detect Mult is 1 (RFC 5880 6.8.7).
    fn jittered(&mut self, interval: u32) -> Duration {
        let interval = u64::from(interval);
        let low = interval - interval / 4;
        let high = if self.config.detect_mult <= 1 {
            interval - interval / 10
        } else {
            interval
        };
        let r = u64::from(self.jitter.next_u32());
        Duration::from_micros(low + (high - low) * r / u64::from(u32::MAX))
    }

    /// Keeps the periodic timer in step: started when sending starts, stopped when it stops,
    /// and counted afresh from the last packet when the interval changes (a shorter one that
    /// has already passed makes the next packet due at once, RFC 5880 section 6.8.3).
    fn reschedule(&mut self, now: Instant) {
        if !self.sending() {
            self.next_tx = None;
            return;
        }
        let interval = self.interval();
        if self.next_tx.is_some() && interval == self.scheduled_interval {
            return;
        }
        self.scheduled_interval = interval;
        self.next_tx = Some(match self.last_tx {
            Some(last) => later(last, self.jittered(interval)),
            None => now,
        });
    }

    fn transmit_if_due(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.next_tx.is_none_or(|t| t > now) {
            return;
        }
        // A Poll Sequence rides on the periodic packets (RFC 5880 section 6.5).
        let poll = self.poll != Poll::Idle;
        actions.push(Action::Send(self.packet(poll, false)));
        if self.poll == Poll::Waiting {
            self.poll = Poll::Sent;
        }
        if self.state != State::Up {
            // That packet announced our interval: from now on it is ours.
            self.tx_in_effect = self.tx_announced;
        }
        self.last_tx = Some(now);
        let interval = self.interval();
        self.scheduled_interval = interval;
        self.next_tx = Some(later(now, self.jittered(interval)));
    }

    /// Our packet as things stand.
    fn packet(&self, poll: bool, final_: bool) -> ControlPacket {
        ControlPacket {
            version: VERSION,
            diagnostic: self.diag,
            state: self.state,
            poll,
            final_,
            control_plane_independent: false,
            auth_present: false,
            demand: false,
            multipoint: false,
            detect_mult: self.config.detect_mult.max(1),
            my_discriminator: self.local_discr.get(),
            your_discriminator: self.remote.discr,
            desired_min_tx: self.tx_announced,
            required_min_rx: self.rx_announced,
            required_min_echo_rx: 0,
        }
    }
}

#[cfg(test)]
mod tests;
