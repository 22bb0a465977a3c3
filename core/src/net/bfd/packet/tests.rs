use super::*;
use proptest::prelude::*;

/// Down, no diagnostic, Detect Mult 5, My Discriminator 1, 1 s intervals: the first packet of
/// Wireshark's sample capture bfd-raw-auth-simple.pcap with its authentication section taken
/// off (A bit cleared, Length 24), as gopacket's BFD tests keep it.
const CAPTURED_DOWN: [u8; LEN] = [
    0x20, 0x40, 0x05, 0x18, // v1, diag 0 | Down, no flags | mult 5 | length 24
    0x00, 0x00, 0x00, 0x01, // My Discriminator 1
    0x00, 0x00, 0x00, 0x00, // Your Discriminator 0
    0x00, 0x0f, 0x42, 0x40, // Desired Min TX 1,000,000 µs
    0x00, 0x0f, 0x42, 0x40, // Required Min RX 1,000,000 µs
    0x00, 0x00, 0x00, 0x00, // Required Min Echo RX 0
];

/// The same packet as captured, with simple password authentication (type 1, key 2, "secret").
const CAPTURED_AUTH_SIMPLE: [u8; 33] = [
    0x20, 0x44, 0x05, 0x21, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x42, 0x40,
    0x00, 0x0f, 0x42, 0x40, 0x00, 0x00, 0x00, 0x00, 0x01, 0x09, 0x02, 0x73, 0x65, 0x63, 0x72, 0x65,
    0x74,
];

fn down(my: u32) -> ControlPacket {
    ControlPacket {
        version: 1,
        diagnostic: Diag::NoDiagnostic,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        auth_present: false,
        demand: false,
        multipoint: false,
        detect_mult: 5,
        my_discriminator: my,
        your_discriminator: 0,
        desired_min_tx: 1_000_000,
        required_min_rx: 1_000_000,
        required_min_echo_rx: 0,
    }
}

#[test]
fn a_captured_down_packet_reads_and_writes_back_byte_for_byte() {
    let p = decode(&CAPTURED_DOWN).unwrap();
    assert_eq!(p, down(1));
    assert_eq!(encode(&p), CAPTURED_DOWN);
}

#[test]
fn a_captured_authenticated_packet_is_refused_as_authenticated() {
    assert_eq!(
        decode(&CAPTURED_AUTH_SIMPLE),
        Err(DecodeError::Authenticated)
    );
    let msg = DecodeError::Authenticated.to_string();
    assert!(msg.contains("no BFD authentication"), "{msg}");
}

#[test]
fn an_up_packet_with_poll_and_every_interval_is_laid_out_as_the_rfc_draws_it() {
    let bytes = [
        0x20, 0xe0, 0x03, 0x18, // v1, diag 0 | Up, P | mult 3 | length 24
        0x11, 0x22, 0x33, 0x44, // My Discriminator
        0x55, 0x66, 0x77, 0x88, // Your Discriminator
        0x00, 0x04, 0x93, 0xe0, // Desired Min TX 300,000 µs
        0x00, 0x03, 0x0d, 0x40, // Required Min RX 200,000 µs
        0x00, 0x00, 0xc3, 0x50, // Required Min Echo RX 50,000 µs
    ];
    let p = ControlPacket {
        state: State::Up,
        diagnostic: Diag::NoDiagnostic,
        poll: true,
        detect_mult: 3,
        my_discriminator: 0x1122_3344,
        your_discriminator: 0x5566_7788,
        desired_min_tx: 300_000,
        required_min_rx: 200_000,
        required_min_echo_rx: 50_000,
        ..down(1)
    };
    assert_eq!(decode(&bytes), Ok(p));
    assert_eq!(encode(&p), bytes);
}

#[test]
fn each_flag_and_the_diagnostic_have_their_own_bits() {
    let base = ControlPacket {
        state: State::Up,
        your_discriminator: 2,
        ..down(1)
    };
    let cases: [(ControlPacket, u8, u8); 6] = [
        (base, 0x20, 0xc0),
        (
            ControlPacket {
                final_: true,
                ..base
            },
            0x20,
            0xd0,
        ),
        (
            ControlPacket {
                control_plane_independent: true,
                ..base
            },
            0x20,
            0xc8,
        ),
        (
            ControlPacket {
                demand: true,
                ..base
            },
            0x20,
            0xc2,
        ),
        (
            ControlPacket {
                state: State::Down,
                diagnostic: Diag::ControlDetectionTimeExpired,
                ..base
            },
            0x21,
            0x40,
        ),
        (
            ControlPacket {
                state: State::AdminDown,
                diagnostic: Diag::AdministrativelyDown,
                your_discriminator: 0,
                ..base
            },
            0x27,
            0x00,
        ),
    ];
    for (p, b0, b1) in cases {
        let bytes = encode(&p);
        assert_eq!((bytes[0], bytes[1]), (b0, b1), "{p:?}");
        assert_eq!(decode(&bytes), Ok(p));
    }
}

#[test]
fn every_diagnostic_code_round_trips_and_unassigned_ones_are_kept() {
    for code in 0..32u8 {
        let d = Diag::from_code(code);
        assert_eq!(d.code(), code);
        assert_eq!(matches!(d, Diag::Unassigned(_)), code >= 10, "{code}");
        let p = ControlPacket {
            diagnostic: d,
            ..down(7)
        };
        assert_eq!(decode(&encode(&p)), Ok(p));
    }
    assert_eq!(Diag::from_code(3), Diag::NeighborSignaledSessionDown);
    assert_eq!(Diag::from_code(7), Diag::AdministrativelyDown);
}

/// `CAPTURED_DOWN` with one byte changed.
fn with(at: usize, value: u8) -> [u8; LEN] {
    let mut b = CAPTURED_DOWN;
    b[at] = value;
    b
}

#[test]
fn every_reception_check_names_what_was_wrong() {
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (
            CAPTURED_DOWN[..23].to_vec(),
            DecodeError::TooShort { len: 23 },
        ),
        (Vec::new(), DecodeError::TooShort { len: 0 }),
        (with(0, 0x00).to_vec(), DecodeError::Version(0)),
        (with(0, 0x40).to_vec(), DecodeError::Version(2)),
        (
            with(3, 23).to_vec(),
            DecodeError::LengthTooSmall {
                length: 23,
                min: 24,
            },
        ),
        (
            with(3, 30).to_vec(),
            DecodeError::LengthBeyondPayload {
                length: 30,
                payload: 24,
            },
        ),
        // The A bit raises the least Length to 26; with that, the packet is refused for it.
        (
            with(1, 0x44).to_vec(),
            DecodeError::LengthTooSmall {
                length: 24,
                min: 26,
            },
        ),
        (with(2, 0).to_vec(), DecodeError::ZeroDetectMult),
        (with(1, 0x41).to_vec(), DecodeError::Multipoint),
        (with(1, 0x70).to_vec(), DecodeError::PollAndFinal),
        (with(7, 0).to_vec(), DecodeError::ZeroMyDiscriminator),
        (
            with(1, 0x80).to_vec(),
            DecodeError::ZeroYourDiscriminator(State::Init),
        ),
        (
            with(1, 0xc0).to_vec(),
            DecodeError::ZeroYourDiscriminator(State::Up),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(decode(&bytes), Err(want), "{bytes:02x?}");
        assert!(!want.to_string().is_empty());
    }
    let mut auth = CAPTURED_DOWN.to_vec();
    auth[1] = 0x44;
    auth[3] = 26;
    auth.extend([1, 2]);
    assert_eq!(decode(&auth), Err(DecodeError::Authenticated));
}

#[test]
fn zero_your_discriminator_is_fine_in_down_and_admin_down() {
    assert!(decode(&with(1, 0x40)).is_ok());
    assert!(decode(&with(1, 0x00)).is_ok());
}

#[test]
fn bytes_past_the_length_field_are_padding() {
    let mut padded = CAPTURED_DOWN.to_vec();
    padded.extend([0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(decode(&padded), Ok(down(1)));
    padded[3] = 28;
    assert_eq!(decode(&padded), Ok(down(1)));
}

#[test]
fn encode_never_sets_the_a_bit() {
    let p = ControlPacket {
        auth_present: true,
        ..down(1)
    };
    assert_eq!(encode(&p), CAPTURED_DOWN);
}

fn any_packet() -> impl Strategy<Value = ControlPacket> {
    let discr = || prop_oneof![Just(0u32), Just(1), any::<u32>()];
    (
        (0u8..8, 0u8..32, 0u8..4, any::<u8>()),
        (prop_oneof![Just(0u8), any::<u8>()], discr(), discr()),
        (any::<u32>(), any::<u32>(), any::<u32>()),
    )
        .prop_map(
            |((v, diag, state, flags), (mult, my, your), (tx, rx, echo))| ControlPacket {
                version: v,
                diagnostic: Diag::from_code(diag),
                state: State::from_bits(state),
                poll: flags & POLL != 0,
                final_: flags & FINAL != 0,
                control_plane_independent: flags & CONTROL_PLANE_INDEPENDENT != 0,
                auth_present: flags & AUTH_PRESENT != 0,
                demand: flags & DEMAND != 0,
                multipoint: flags & MULTIPOINT != 0,
                detect_mult: mult,
                my_discriminator: my,
                your_discriminator: your,
                desired_min_tx: tx,
                required_min_rx: rx,
                required_min_echo_rx: echo,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// What is written reads back as itself when it passes the checks, and is refused for the
    /// same reason otherwise (the A bit aside, which encode drops).
    #[test]
    fn written_packets_read_back_or_fail_their_checks(p in any_packet()) {
        let sent = ControlPacket { auth_present: false, ..p };
        prop_assert_eq!(decode(&encode(&p)), sent.check().map(|()| sent));
    }

    /// Whatever reads writes back as the bytes it came from, Length set to 24.
    #[test]
    fn read_packets_write_back_byte_for_byte(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(p) = decode(&bytes) {
            let mut want = [0u8; LEN];
            want.copy_from_slice(&bytes[..LEN]);
            want[3] = LEN as u8;
            prop_assert_eq!(encode(&p), want);
        }
    }

    /// Valid packets with random intervals and discriminators survive the round trip.
    #[test]
    fn valid_packets_round_trip(
        state in 0u8..4,
        diag in 0u8..32,
        mult in 1u8..,
        my in 1u32..,
        your in 1u32..,
        tx in any::<u32>(),
        rx in any::<u32>(),
        poll in any::<bool>(),
    ) {
        let p = ControlPacket {
            state: State::from_bits(state),
            diagnostic: Diag::from_code(diag),
            poll,
            final_: !poll,
            detect_mult: mult,
            my_discriminator: my,
            your_discriminator: your,
            desired_min_tx: tx,
            required_min_rx: rx,
            ..down(1)
        };
        prop_assert_eq!(decode(&encode(&p)), Ok(p));
    }
}
