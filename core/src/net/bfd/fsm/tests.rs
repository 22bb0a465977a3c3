use super::*;
use crate::net::bfd::packet::{decode, encode};

/// The same number every time: 0 makes every interval 75% of the negotiated one, `u32::MAX`
/// the whole of it.
#[derive(Clone, Debug)]
struct Fixed(u32);

impl Jitter for Fixed {
    fn next_u32(&mut self) -> u32 {
        self.0
    }
}

const FULL: Fixed = Fixed(u32::MAX);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn discr(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn config(tx_ms: u64, rx_ms: u64) -> SessionConfig {
    SessionConfig {
        desired_min_tx: ms(tx_ms),
        required_min_rx: ms(rx_ms),
        ..SessionConfig::default()
    }
}

/// Which end of the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Two sessions back to back (A has discriminator 1, B 2) under a simulated clock, every
/// packet through the codec and `latency` late; either direction can be cut.
struct Link {
    a: Session<Fixed>,
    b: Session<Fixed>,
    start: Instant,
    now: Instant,
    latency: Duration,
    in_flight: Vec<(Instant, Side, ControlPacket)>,
    cut: Vec<Side>,
    /// Every action, when and by whom.
    log: Vec<(Duration, Side, Action)>,
    /// Every packet refused, by whom.
    discards: Vec<(Side, Discard)>,
}

impl Link {
    fn new(a: SessionConfig, b: SessionConfig, latency: Duration) -> Link {
        let start = Instant::now();
        Link {
            a: Session::with_jitter(a, discr(1), start, FULL),
            b: Session::with_jitter(b, discr(2), start, FULL),
            start,
            now: start,
            latency,
            in_flight: Vec::new(),
            cut: Vec::new(),
            log: Vec::new(),
            discards: Vec::new(),
        }
    }

    /// Both Up, with default settings and no latency, after the handshake's Poll Sequences.
    fn up() -> Link {
        let mut link = Link::new(SessionConfig::default(), SessionConfig::default(), ms(0));
        link.run_for(ms(2000));
        assert_eq!((link.a.state(), link.b.state()), (State::Up, State::Up));
        link
    }

    fn at(&self, elapsed: Duration) -> Instant {
        self.start + elapsed
    }

    fn session(&mut self, side: Side) -> &mut Session<Fixed> {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn next_event(&self) -> Option<Instant> {
        let arrival = self.in_flight.iter().map(|f| f.0).min();
        [self.a.next_deadline(), self.b.next_deadline(), arrival]
            .into_iter()
            .flatten()
            .min()
    }

    fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs every event up to and including `until`: arrivals first, then A's timers, B's.
    fn run_until(&mut self, until: Instant) {
        while let Some(t) = self.next_event().filter(|t| *t <= until) {
            let now = self.now.max(t);
            self.now = now;
            while let Some(i) = self.in_flight.iter().position(|f| f.0 <= now) {
                let (_, to, p) = self.in_flight.remove(i);
                match self.session(to).on_packet(now, &p) {
                    Ok(actions) => self.record(to, actions),
                    Err(e) => self.discards.push((to, e)),
                }
            }
            for side in [Side::A, Side::B] {
                let actions = self.session(side).poll_timers(now);
                self.record(side, actions);
            }
        }
        self.now = until;
    }

    fn record(&mut self, side: Side, actions: Vec<Action>) {
        for action in actions {
            if let Action::Send(p) = &action {
                assert_eq!(p.check(), Ok(()), "{side:?} sent {p:?}");
                if !self.cut.contains(&side) {
                    let p = decode(&encode(p)).unwrap();
                    let arrives = self.now + self.latency;
                    self.in_flight.push((arrives, side.other(), p));
                }
            }
            self.log.push((self.now - self.start, side, action));
        }
    }

    fn changes(&self, side: Side) -> Vec<(Duration, State, State, Diag)> {
        self.log
            .iter()
            .filter(|(_, s, _)| *s == side)
            .filter_map(|(t, _, a)| match a {
                Action::StateChanged { from, to, diag } => Some((*t, *from, *to, *diag)),
                Action::Send(_) => None,
            })
            .collect()
    }

    fn sent(&self, side: Side) -> Vec<(Duration, ControlPacket)> {
        self.log
            .iter()
            .filter(|(_, s, _)| *s == side)
            .filter_map(|(t, _, a)| match a {
                Action::Send(p) => Some((*t, *p)),
                Action::StateChanged { .. } => None,
            })
            .collect()
    }

    /// The periodic packets (not the Finals) one side sent since `from`.
    fn periodic_since(&self, side: Side, from: Duration) -> Vec<(Duration, ControlPacket)> {
        let mut sent = self.sent(side);
        sent.retain(|(t, p)| *t >= from && !p.final_);
        sent
    }
}

/// The gaps between consecutive packets.
fn gaps(sent: &[(Duration, ControlPacket)]) -> Vec<Duration> {
    sent.windows(2).map(|w| w[1].0 - w[0].0).collect()
}

#[test]
fn two_sessions_come_up_through_down_init_up_on_a_real_link() {
    let mut link = Link::new(SessionConfig::default(), SessionConfig::default(), ms(1));
    link.run_for(ms(3000));
    let t = |n| ms(n);
    for side in [Side::A, Side::B] {
        assert_eq!(
            link.changes(side),
            vec![
                (t(1), State::Down, State::Init, Diag::NoDiagnostic),
                (t(1001), State::Init, State::Up, Diag::NoDiagnostic),
            ],
            "{side:?}"
        );
    }
    // Down packets carry no Your Discriminator; the Init ones the peer's.
    let a = link.sent(Side::A);
    assert_eq!((a[0].1.state, a[0].1.your_discriminator), (State::Down, 0));
    assert_eq!((a[1].1.state, a[1].1.your_discriminator), (State::Init, 2));
    assert!(link.discards.is_empty(), "{:?}", link.discards);
}

#[test]
fn packets_go_at_one_second_until_up_then_at_the_configured_rate() {
    let mut link = Link::new(SessionConfig::default(), SessionConfig::default(), ms(0));
    link.cut.push(Side::A);
    link.run_for(ms(3500));
    let a = link.sent(Side::A);
    assert_eq!(gaps(&a), vec![ms(1000); 3]);
    assert!(a.iter().all(|(_, p)| p.desired_min_tx == 1_000_000));
    assert!(a.iter().all(|(_, p)| p.required_min_rx == 300_000));

    let up = Link::up();
    let steady = up.periodic_since(Side::A, ms(1300));
    assert!(steady.iter().all(|(_, p)| p.desired_min_tx == 300_000));
    assert_eq!(gaps(&steady), vec![ms(300); steady.len() - 1]);
}

#[test]
fn a_silent_peer_is_detected_after_its_multiplier_times_the_interval() {
    let mut link = Link::up();
    link.cut.push(Side::B);
    let last_heard = link.sent(Side::B).last().unwrap().0;
    assert_eq!(link.a.detection_time(), Some(ms(900)));
    let deadline = last_heard + ms(900);
    link.run_until(link.at(deadline) - Duration::from_micros(1));
    assert_eq!(link.a.state(), State::Up);
    link.run_until(link.at(deadline));
    assert_eq!(
        link.changes(Side::A).last(),
        Some(&(
            deadline,
            State::Up,
            State::Down,
            Diag::ControlDetectionTimeExpired
        ))
    );
    assert_eq!(link.a.remote_discriminator(), None);
    // A's packet due then says so at the old pace, B goes Down for it (before its own
    // detection time, 3400 ms), and A slows to 1 s after.
    let (t, p) = *link.sent(Side::A).last().unwrap();
    assert_eq!(t, deadline);
    assert_eq!(
        (p.state, p.diagnostic),
        (State::Down, Diag::ControlDetectionTimeExpired)
    );
    assert_eq!((p.your_discriminator, p.desired_min_tx), (0, 1_000_000));
    assert_eq!(
        link.changes(Side::B).last().map(|c| (c.0, c.2, c.3)),
        Some((deadline, State::Down, Diag::NeighborSignaledSessionDown))
    );
    link.run_for(ms(3000));
    let slow = link.periodic_since(Side::A, deadline);
    assert_eq!(gaps(&slow), vec![ms(1000); 3]);
}

#[test]
fn init_times_out_too_on_the_peers_slow_interval() {
    let t0 = Instant::now();
    let mut s = Session::with_jitter(SessionConfig::default(), discr(1), t0, FULL);
    let hello = ControlPacket {
        desired_min_tx: 1_000_000,
        ..peer(State::Down, 0)
    };
    s.on_packet(t0, &hello).unwrap();
    assert_eq!(s.state(), State::Init);
    assert_eq!(s.detection_time(), Some(ms(3000)));
    assert!(s.poll_timers(t0 + ms(2999)).iter().all(is_send));
    assert_eq!(
        s.poll_timers(t0 + ms(3000)),
        vec![Action::StateChanged {
            from: State::Init,
            to: State::Down,
            diag: Diag::ControlDetectionTimeExpired
        }]
    );
}

#[test]
fn a_late_packet_is_taken_after_the_timeout_it_missed() {
    let t0 = Instant::now();
    let mut s = Session::with_jitter(SessionConfig::default(), discr(1), t0, FULL);
    s.on_packet(t0, &peer(State::Down, 0)).unwrap();
    let actions = s.on_packet(t0 + ms(5000), &peer(State::Init, 1)).unwrap();
    let changes: Vec<_> = actions.iter().filter(|a| !is_send(a)).collect();
    assert_eq!(
        changes,
        vec![
            &Action::StateChanged {
                from: State::Init,
                to: State::Down,
                diag: Diag::ControlDetectionTimeExpired
            },
            &Action::StateChanged {
                from: State::Down,
                to: State::Up,
                diag: Diag::NoDiagnostic
            },
        ]
    );
}

fn is_send(a: &Action) -> bool {
    matches!(a, Action::Send(_))
}

/// A packet from a peer with discriminator 2, 300 ms intervals, multiplier 3.
fn peer(state: State, your: u32) -> ControlPacket {
    ControlPacket {
        version: 1,
        diagnostic: Diag::NoDiagnostic,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        auth_present: false,
        demand: false,
        multipoint: false,
        detect_mult: 3,
        my_discriminator: 2,
        your_discriminator: your,
        desired_min_tx: 300_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
    }
}

#[test]
fn a_peer_going_admin_down_takes_the_session_down_and_back_up_after() {
    let mut link = Link::up();
    let actions = link.b.admin_down(link.now);
    link.record(Side::B, actions);
    assert_eq!(
        link.changes(Side::B).last().map(|c| (c.2, c.3)),
        Some((State::AdminDown, Diag::AdministrativelyDown))
    );
    // B's next packet, due at the old pace (2200 ms), says AdminDown: A goes Down for it
    // rather than timing out.
    link.run_for(ms(1000));
    assert_eq!(
        link.changes(Side::A).last(),
        Some(&(
            ms(2200),
            State::Up,
            State::Down,
            Diag::NeighborSignaledSessionDown
        ))
    );
    // A stays Down (AdminDown is not Down: no Init) and B reads nothing while AdminDown.
    link.run_for(ms(5000));
    assert_eq!(
        (link.a.state(), link.b.state()),
        (State::Down, State::AdminDown)
    );
    assert!(link
        .discards
        .iter()
        .all(|d| *d == (Side::B, Discard::AdminDown)));
    assert!(!link.discards.is_empty());
    let (_, last) = *link.sent(Side::B).last().unwrap();
    assert_eq!(
        (last.state, last.diagnostic),
        (State::AdminDown, Diag::AdministrativelyDown)
    );

    let actions = link.b.admin_up(link.now);
    link.record(Side::B, actions);
    link.run_for(ms(3000));
    assert_eq!((link.a.state(), link.b.state()), (State::Up, State::Up));
}

#[test]
fn a_passive_session_waits_for_the_peer_to_speak_first() {
    let passive = SessionConfig {
        passive: true,
        ..SessionConfig::default()
    };
    let mut link = Link::new(passive.clone(), passive, ms(0));
    link.run_for(ms(10_000));
    assert!(link.log.is_empty(), "{:?}", link.log);
    assert_eq!((link.a.next_deadline(), link.a.tx_interval()), (None, None));

    let actions = link.a.reconfigure(link.now, SessionConfig::default());
    link.record(Side::A, actions);
    link.run_for(ms(2000));
    assert_eq!((link.a.state(), link.b.state()), (State::Up, State::Up));
    let first_b = link
        .log
        .iter()
        .position(|(_, s, a)| *s == Side::B && is_send(a));
    let first_a = link
        .log
        .iter()
        .position(|(_, s, a)| *s == Side::A && is_send(a));
    assert!(first_a < first_b);
    // B answered at once with Init, addressed to A, which went straight from Down to Up;
    // B followed on A's first Up packet, one (new, 300 ms) interval later.
    assert_eq!(link.sent(Side::B)[0].1.your_discriminator, 1);
    assert_eq!(link.sent(Side::B)[0].0, ms(10_000));
    assert_eq!(
        link.changes(Side::A),
        vec![(ms(10_000), State::Down, State::Up, Diag::NoDiagnostic)]
    );
    assert_eq!(
        link.changes(Side::B),
        vec![
            (ms(10_000), State::Down, State::Init, Diag::NoDiagnostic),
            (ms(10_300), State::Init, State::Up, Diag::NoDiagnostic),
        ]
    );
}

#[test]
fn timers_negotiate_to_the_slower_side_each_way() {
    let mut link = Link::new(config(100, 100), config(500, 200), ms(0));
    link.run_for(ms(5000));
    assert_eq!((link.a.state(), link.b.state()), (State::Up, State::Up));
    // A sends no faster than B takes, B no faster than it wants.
    assert_eq!(link.a.tx_interval(), Some(ms(200)));
    assert_eq!(link.b.tx_interval(), Some(ms(500)));
    // Each expects the other's interval times the other's multiplier.
    assert_eq!(link.a.detection_time(), Some(ms(1500)));
    assert_eq!(link.b.detection_time(), Some(ms(600)));
    let a = link.periodic_since(Side::A, ms(3000));
    let b = link.periodic_since(Side::B, ms(3000));
    assert_eq!(gaps(&a), vec![ms(200); a.len() - 1]);
    assert_eq!(gaps(&b), vec![ms(500); b.len() - 1]);
}

#[test]
fn a_slower_transmit_interval_waits_for_the_peers_final() {
    let mut link = Link::up();
    let before = link.sent(Side::A).len();
    let due = link.a.next_tx.unwrap();
    let actions = link.a.reconfigure(link.now, config(1000, 300));
    assert!(
        actions.is_empty(),
        "the Poll rides on the next periodic packet"
    );
    assert_eq!(link.a.tx_interval(), Some(ms(300)));
    link.run_until(due);
    let sent = link.sent(Side::A);
    let (t, polled) = sent[before];
    assert_eq!(link.at(t), due);
    assert!(polled.poll && !polled.final_);
    assert_eq!(polled.desired_min_tx, 1_000_000);
    // B's Final came back at once: the new interval is in force and the Poll is over.
    let answer = link.sent(Side::B).last().unwrap().1;
    assert!(answer.final_ && !answer.poll);
    assert_eq!(link.a.tx_interval(), Some(ms(1000)));
    assert_eq!(link.b.detection_time(), Some(ms(3000)));
    link.run_for(ms(3000));
    let after = link.periodic_since(Side::A, t + ms(1));
    assert!(after.iter().all(|(_, p)| !p.poll));
    assert_eq!(gaps(&after), vec![ms(1000); after.len() - 1]);
}

#[test]
fn a_faster_receive_interval_shortens_detection_only_after_the_final() {
    let mut link = Link::new(config(300, 300), config(50, 50), ms(0));
    link.run_for(ms(3000));
    assert_eq!(link.a.detection_time(), Some(ms(900)));
    link.a.reconfigure(link.now, config(300, 100));
    // Announced at once, but B still sends every 300 ms until it has seen it.
    assert_eq!(link.a.detection_time(), Some(ms(900)));
    assert_eq!(link.a.packet(false, false).required_min_rx, 100_000);
    link.run_for(ms(400));
    assert_eq!(link.a.poll, Poll::Idle);
    assert_eq!(link.a.detection_time(), Some(ms(300)));
    assert_eq!(link.b.tx_interval(), Some(ms(100)));
}

#[test]
fn a_change_while_a_poll_is_out_starts_the_sequence_over() {
    let t0 = Instant::now();
    let mut s = Session::with_jitter(SessionConfig::default(), discr(1), t0, FULL);
    // Up on the peer's Init; the first packet, due now, carries the Poll for 300 ms.
    let actions = s.on_packet(t0, &peer(State::Init, 1)).unwrap();
    assert!(matches!(actions.last(), Some(Action::Send(p)) if p.poll));
    assert_eq!((s.state(), s.poll), (State::Up, Poll::Sent));
    s.reconfigure(t0 + ms(100), config(2000, 300));
    assert_eq!(s.poll, Poll::Stale);
    let fin = ControlPacket {
        final_: true,
        ..peer(State::Up, 1)
    };
    // This Final may answer the Poll that carried 300 ms: the sequence goes on.
    s.on_packet(t0 + ms(110), &fin).unwrap();
    assert_eq!(s.poll, Poll::Waiting);
    assert_eq!(s.tx_interval(), Some(ms(300)));
    let polled = s.poll_timers(t0 + ms(300));
    assert!(matches!(polled[..], [Action::Send(p)] if p.poll && p.desired_min_tx == 2_000_000));
    assert_eq!(s.poll, Poll::Sent);
    s.on_packet(t0 + ms(310), &fin).unwrap();
    assert_eq!(s.poll, Poll::Idle);
    assert_eq!(s.tx_interval(), Some(ms(2000)));
}

#[test]
fn every_poll_gets_a_final_at_once_whatever_the_timer() {
    let t0 = Instant::now();
    let mut s = Session::with_jitter(SessionConfig::default(), discr(1), t0, FULL);
    s.poll_timers(t0);
    let poll = ControlPacket {
        poll: true,
        ..peer(State::Down, 0)
    };
    let actions = s.on_packet(t0 + ms(10), &poll).unwrap();
    let finals: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(p) => Some(p),
            Action::StateChanged { .. } => None,
        })
        .collect();
    assert_eq!(finals.len(), 1);
    assert!(finals[0].final_ && !finals[0].poll);
    assert_eq!(finals[0].state, State::Init);
    assert_eq!(finals[0].your_discriminator, 2);
    // The periodic schedule is untouched.
    assert_eq!(s.next_tx, Some(t0 + ms(1000)));
}

#[test]
fn a_packet_for_another_session_or_malformed_is_dropped_untouched() {
    let mut link = Link::up();
    let before = (link.a.state(), link.a.last_rx, link.a.next_deadline());
    let stray = peer(State::Down, 99);
    assert_eq!(
        link.a.on_packet(link.now, &stray),
        Err(Discard::NotOurs { your: 99, mine: 1 })
    );
    let broken = ControlPacket {
        my_discriminator: 0,
        ..peer(State::Down, 1)
    };
    assert_eq!(
        link.a.on_packet(link.now, &broken),
        Err(Discard::Malformed(DecodeError::ZeroMyDiscriminator))
    );
    let signed = ControlPacket {
        auth_present: true,
        ..peer(State::Down, 1)
    };
    assert_eq!(
        link.a.on_packet(link.now, &signed),
        Err(Discard::Malformed(DecodeError::Authenticated))
    );
    assert_eq!(
        (link.a.state(), link.a.last_rx, link.a.next_deadline()),
        before
    );
}

#[test]
fn the_peers_demand_mode_stops_periodic_packets_but_not_finals() {
    let mut link = Link::up();
    let now = link.now;
    let demand = ControlPacket {
        demand: true,
        ..peer(State::Up, 1)
    };
    link.a.on_packet(now, &demand).unwrap();
    assert_eq!((link.a.tx_interval(), link.a.next_tx), (None, None));
    let poll = ControlPacket {
        poll: true,
        ..demand
    };
    let answer = link.a.on_packet(now + ms(10), &poll).unwrap();
    assert!(matches!(answer[..], [Action::Send(p)] if p.final_));
    link.a.on_packet(now + ms(20), &peer(State::Up, 1)).unwrap();
    assert_eq!(link.a.tx_interval(), Some(ms(300)));
}

#[test]
fn a_peer_asking_for_no_packets_gets_none() {
    let t0 = Instant::now();
    let mut s = Session::with_jitter(SessionConfig::default(), discr(1), t0, FULL);
    let quiet = ControlPacket {
        required_min_rx: 0,
        ..peer(State::Down, 0)
    };
    s.on_packet(t0, &quiet).unwrap();
    assert_eq!((s.tx_interval(), s.next_tx), (None, None));
}

#[test]
fn jitter_takes_up_to_a_quarter_off_and_at_least_a_tenth_with_multiplier_one() {
    let first_gap = |detect_mult: u8, jitter: Fixed| {
        let t0 = Instant::now();
        let cfg = SessionConfig {
            detect_mult,
            ..SessionConfig::default()
        };
        let mut s = Session::with_jitter(cfg, discr(1), t0, jitter);
        assert_eq!(s.poll_timers(t0).len(), 1);
        s.next_tx.unwrap() - t0
    };
    assert_eq!(first_gap(3, Fixed(0)), ms(750));
    assert_eq!(first_gap(3, FULL), ms(1000));
    assert_eq!(first_gap(1, Fixed(0)), ms(750));
    assert_eq!(first_gap(1, FULL), ms(900));
    let mut s = Session::new(SessionConfig::default(), discr(0x5eed), Instant::now());
    let gaps: Vec<Duration> = (0..1000).map(|_| s.jittered(1_000_000)).collect();
    assert!(gaps.iter().all(|g| (ms(750)..=ms(1000)).contains(g)));
    assert!(gaps.iter().any(|g| *g < ms(800)) && gaps.iter().any(|g| *g > ms(950)));
}

#[test]
fn an_admin_down_session_discards_what_it_receives() {
    let t0 = Instant::now();
    let mut s = Session::with_jitter(SessionConfig::default(), discr(1), t0, FULL);
    assert_eq!(
        s.admin_down(t0),
        vec![
            Action::StateChanged {
                from: State::Down,
                to: State::AdminDown,
                diag: Diag::AdministrativelyDown
            },
            Action::Send(ControlPacket {
                state: State::AdminDown,
                diagnostic: Diag::AdministrativelyDown,
                my_discriminator: 1,
                your_discriminator: 0,
                desired_min_tx: 1_000_000,
                ..peer(State::Down, 0)
            }),
        ]
    );
    assert_eq!(
        s.on_packet(t0, &peer(State::Down, 0)),
        Err(Discard::AdminDown)
    );
    assert_eq!(s.state(), State::AdminDown);
    assert!(s.admin_down(t0).is_empty());
}

#[test]
fn intervals_below_a_millisecond_are_raised_to_one() {
    let t0 = Instant::now();
    let s = Session::with_jitter(config(0, 0), discr(1), t0, FULL);
    let p = s.packet(false, false);
    assert_eq!((p.desired_min_tx, p.required_min_rx), (1_000_000, 1000));
}

mod scripts {
    use super::*;
    use crate::net::bfd::fuzz::{script, SCRIPT_DISCRIMINATOR};
    use proptest::prelude::*;

    /// A packet a peer could send to the scripted session: any state and flags the checks
    /// allow, addressed to it or to nobody, with intervals from 1 ms to 2 s.
    fn peer_packet() -> impl Strategy<Value = ControlPacket> {
        (
            (0u8..4, 0u8..10, 0u8..3, any::<bool>(), any::<bool>()),
            (1u8..5, 1u32..4),
            (1_000u32..2_000_000, 0u32..2_000_000),
        )
            .prop_map(|((st, diag, pf, demand, to_us), (mult, my), (tx, rx))| {
                let state = State::from_bits(st);
                let addressed = to_us || !matches!(state, State::Down | State::AdminDown);
                ControlPacket {
                    diagnostic: Diag::from_code(diag),
                    poll: pf == 1,
                    final_: pf == 2,
                    demand,
                    detect_mult: mult,
                    my_discriminator: my,
                    your_discriminator: if addressed { SCRIPT_DISCRIMINATOR } else { 0 },
                    desired_min_tx: tx,
                    required_min_rx: rx,
                    ..peer(state, 0)
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Whatever a peer sends, whenever: every packet sent passes the checks and
        /// round-trips, no state change is a non-change, no deadline is left in the past.
        #[test]
        fn random_peers_never_break_the_sessions_promises(
            steps in proptest::collection::vec((any::<u8>(), peer_packet()), 0..60),
        ) {
            let mut bytes = Vec::new();
            for (ticks, p) in steps {
                bytes.push(ticks);
                bytes.extend(encode(&p));
            }
            script(&bytes);
        }
    }
}
