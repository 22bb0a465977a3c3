//! The body of the `bfd_packet` fuzz target (fuzz/fuzz_targets/bfd_packet.rs), which
//! tests/fuzz_corpus.rs also replays: bytes as one UDP payload, then as a script of packets
//! arriving at a session. Asserts the codec's and the state machine's promises, so a broken
//! one is a crash the fuzzer reports.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use super::fsm::{Action, Session, SessionConfig, SplitMix};
use super::packet::{decode, encode, LEN};

/// The discriminator of the scripted session: packets addressed to it have Your
/// Discriminator 1.
pub const SCRIPT_DISCRIMINATOR: u32 = 1;
/// The clock step of one script unit of time.
pub const SCRIPT_TICK: Duration = Duration::from_millis(4);

/// Decodes `data`; whatever decodes must encode to the same bytes (Length 24) and decode to
/// the same packet. Then runs `data` as a script (see [`script`]).
pub fn packet(data: &[u8]) {
    if let (Ok(p), Some(head)) = (decode(data), data.first_chunk::<LEN>()) {
        let bytes = encode(&p);
        let mut want = *head;
        want[3] = LEN as u8;
        assert_eq!(bytes, want, "encode(decode(b)) differs from b");
        assert_eq!(decode(&bytes), Ok(p), "decode(encode(p)) differs from p");
    }
    script(data);
}

/// Runs `data` against one session (discriminator 1, 10 ms intervals, passive when the first
/// byte is odd) as 25-byte steps: the clock moves on by the first byte times
/// [`SCRIPT_TICK`], the timers fire, and the other 24 bytes arrive as a packet. Everything
/// the session sends must pass the reception checks and round-trip, no state change may be
/// to the state it left, and its next deadline must be in the future.
pub fn script(data: &[u8]) {
    let Some(discr) = NonZeroU32::new(SCRIPT_DISCRIMINATOR) else {
        return;
    };
    let config = SessionConfig {
        desired_min_tx: Duration::from_millis(10),
        required_min_rx: Duration::from_millis(10),
        detect_mult: 3,
        passive: data.first().is_some_and(|b| b & 1 == 1),
    };
    let mut now = Instant::now();
    let mut s = Session::with_jitter(config, discr, now, SplitMix::new(7));
    for step in data.chunks(LEN + 1) {
        let Some((&ticks, bytes)) = step.split_first() else {
            continue;
        };
        now += SCRIPT_TICK * u32::from(ticks);
        let fired = s.poll_timers(now);
        vet(&s, now, &fired);
        if let Ok(p) = decode(bytes) {
            let answered = s.on_packet(now, &p).unwrap_or_default();
            vet(&s, now, &answered);
        }
    }
}

fn vet(s: &Session, now: Instant, actions: &[Action]) {
    for a in actions {
        match a {
            Action::Send(p) => {
                assert_eq!(p.check(), Ok(()), "the session sent an invalid {p:?}");
                assert_eq!(decode(&encode(p)), Ok(*p));
            }
            Action::StateChanged { from, to, .. } => assert_ne!(from, to),
        }
    }
    assert!(
        s.next_deadline().is_none_or(|d| d > now),
        "a deadline at or before now after the timers ran"
    );
}
