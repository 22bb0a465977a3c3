//! BFD Control packets (RFC 5880 section 4.1), bytes only: the 24-byte mandatory section read
//! with every reception check of RFC 5880 section 6.8.6 that needs nothing but the packet, and
//! written back. Knows nothing of sessions, sockets or clocks.
//!
//! No authentication: ironlb configures none (MetalLB's BFDProfile has no such setting), so a
//! packet with the A bit set is refused ([`DecodeError::Authenticated`]), as RFC 5880 section
//! 6.8.6 requires when no authentication is in use, and [`encode`] never sets it.

use std::fmt;

/// The protocol version this codec speaks (RFC 5880 section 4.1).
pub const VERSION: u8 = 1;
/// The length of the mandatory section, and of every packet ironlb sends.
pub const LEN: usize = 24;
/// The smallest Length field of a packet with the A bit set: the mandatory section and the
/// authentication section's type and length (RFC 5880 section 6.8.6).
const MIN_AUTH_LEN: usize = 26;

// The flag bits of the second byte, after the two bits of the state.
const POLL: u8 = 0x20;
const FINAL: u8 = 0x10;
const CONTROL_PLANE_INDEPENDENT: u8 = 0x08;
const AUTH_PRESENT: u8 = 0x04;
const DEMAND: u8 = 0x02;
const MULTIPOINT: u8 = 0x01;

/// A session state, as the Sta field carries it (RFC 5880 section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Held down by configuration.
    AdminDown,
    /// Down, or just created.
    Down,
    /// The peer has been heard from; waiting for it to hear us.
    Init,
    /// Both sides hear each other.
    Up,
}

impl State {
    /// The state of a two-bit field value (only the low two bits count).
    pub fn from_bits(bits: u8) -> State {
        match bits & 0x03 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// The two-bit field value.
    pub fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The state in metric labels, `/v1/bfd` and `ironlb ctl bfd`.
    pub fn label(self) -> &'static str {
        match self {
            State::AdminDown => "admin_down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// Why the sender's session last changed state: the Diag field (RFC 5880 section 4.1, and the
/// IANA "BFD Diagnostic Codes" registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diag {
    /// 0: no diagnostic.
    NoDiagnostic,
    /// 1: no packet from the peer within the detection time.
    ControlDetectionTimeExpired,
    /// 2: the echo function failed.
    EchoFunctionFailed,
    /// 3: the peer said its session went down.
    NeighborSignaledSessionDown,
    /// 4: the forwarding plane was reset.
    ForwardingPlaneReset,
    /// 5: the path is down.
    PathDown,
    /// 6: a concatenated path is down.
    ConcatenatedPathDown,
    /// 7: taken down by configuration.
    AdministrativelyDown,
    /// 8: a reverse concatenated path is down.
    ReverseConcatenatedPathDown,
    /// 9: mis-connectivity defect (RFC 6428, MPLS-TP).
    MisConnectivityDefect,
    /// 10 to 31: no RFC assigns them. Kept rather than refused: the field only informs, and a
    /// newer peer's packet must still be read.
    Unassigned(u8),
}

impl Diag {
    /// The diagnostic of a five-bit field value (only the low five bits count).
    pub fn from_code(code: u8) -> Diag {
        match code & 0x1f {
            0 => Diag::NoDiagnostic,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            9 => Diag::MisConnectivityDefect,
            other => Diag::Unassigned(other),
        }
    }

    /// The five-bit field value.
    pub fn code(self) -> u8 {
        match self {
            Diag::NoDiagnostic => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::MisConnectivityDefect => 9,
            Diag::Unassigned(code) => code & 0x1f,
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diag::NoDiagnostic => f.write_str("no diagnostic"),
            Diag::ControlDetectionTimeExpired => f.write_str("control detection time expired"),
            Diag::EchoFunctionFailed => f.write_str("echo function failed"),
            Diag::NeighborSignaledSessionDown => f.write_str("neighbor signaled session down"),
            Diag::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diag::PathDown => f.write_str("path down"),
            Diag::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diag::AdministrativelyDown => f.write_str("administratively down"),
            Diag::ReverseConcatenatedPathDown => f.write_str("reverse concatenated path down"),
            Diag::MisConnectivityDefect => f.write_str("mis-connectivity defect"),
            Diag::Unassigned(code) => write!(f, "unassigned diagnostic {code}"),
        }
    }
}

/// The mandatory section of a BFD Control packet (RFC 5880 section 4.1). Intervals are in
/// microseconds, as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ControlPacket {
    /// Vers: the protocol version (1).
    pub version: u8,
    /// Diag: why the sender's session last changed state.
    pub diagnostic: Diag,
    /// Sta: the sender's session state.
    pub state: State,
    /// P: the sender asks for a packet with F back (a Poll Sequence, RFC 5880 section 6.5).
    pub poll: bool,
    /// F: the answer to a packet with P.
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// A: an authentication section follows (never accepted or sent by ironlb).
    pub auth_present: bool,
    /// D: the sender wants Demand mode (RFC 5880 section 6.6).
    pub demand: bool,
    /// M: reserved for multipoint BFD; must be zero.
    pub multipoint: bool,
    /// Detect Mult: the sender's detection time multiplier.
    pub detect_mult: u8,
    /// My Discriminator: the sender's identifier of the session (never zero).
    pub my_discriminator: u32,
    /// Your Discriminator: the receiver's identifier as the sender last heard it (zero: unknown).
    pub your_discriminator: u32,
    /// Desired Min TX Interval: how often the sender wants to send, µs.
    pub desired_min_tx: u32,
    /// Required Min RX Interval: how often the sender can receive, µs (zero: do not send).
    pub required_min_rx: u32,
    /// Required Min Echo RX Interval: how often the sender can loop Echo packets, µs (zero: none).
    pub required_min_echo_rx: u32,
}

/// Why a received packet was refused (RFC 5880 section 6.8.6 says each MUST be discarded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the mandatory section.
    #[error("{len} bytes: shorter than the {LEN}-byte BFD control packet")]
    TooShort {
        /// The bytes there were.
        len: usize,
    },
    /// Not version 1.
    #[error("BFD version {0}, not {VERSION}")]
    Version(u8),
    /// The Length field is below the mandatory section (or, with the A bit, its 26 bytes).
    #[error("Length field {length}: less than the {min} bytes of the sections it announces")]
    LengthTooSmall {
        /// The Length field.
        length: u8,
        /// The least it may be.
        min: usize,
    },
    /// The Length field claims more bytes than the datagram holds.
    #[error("Length field {length}: more than the {payload} bytes received")]
    LengthBeyondPayload {
        /// The Length field.
        length: u8,
        /// The bytes received.
        payload: usize,
    },
    /// Detect Mult is zero.
    #[error("Detect Mult is zero")]
    ZeroDetectMult,
    /// The M bit is set: multipoint BFD is not spoken here.
    #[error("Multipoint (M) bit set")]
    Multipoint,
    /// Both P and F are set, which RFC 5880 section 6.5 forbids.
    #[error("both Poll (P) and Final (F) set")]
    PollAndFinal,
    /// My Discriminator is zero.
    #[error("My Discriminator is zero")]
    ZeroMyDiscriminator,
    /// Your Discriminator is zero while the sender is past Down: only a sender that has not
    /// heard from us yet (Down or AdminDown) may not know our discriminator.
    #[error("Your Discriminator is zero in state {0}")]
    ZeroYourDiscriminator(State),
    /// The A bit is set: ironlb configures no BFD authentication, so authenticated packets are
    /// refused (check the peer's BFD configuration for a password).
    #[error("authenticated packet (A bit set), but ironlb configures no BFD authentication")]
    Authenticated,
}

impl ControlPacket {
    /// The reception checks of RFC 5880 section 6.8.6 that depend on the packet's fields alone,
    /// in the RFC's order; [`decode`] runs them, and so does the state machine, for packets
    /// built in code.
    ///
    /// "Your Discriminator is zero only in Down or AdminDown" is among them: it needs nothing
    /// but the packet. Matching a non-zero Your Discriminator to a session is the state
    /// machine's (and later the socket's) job.
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.version != VERSION {
            return Err(DecodeError::Version(self.version));
        }
        if self.detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if self.multipoint {
            return Err(DecodeError::Multipoint);
        }
        if self.poll && self.final_ {
            return Err(DecodeError::PollAndFinal);
        }
        if self.my_discriminator == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        if self.your_discriminator == 0 && !matches!(self.state, State::Down | State::AdminDown) {
            return Err(DecodeError::ZeroYourDiscriminator(self.state));
        }
        if self.auth_present {
            return Err(DecodeError::Authenticated);
        }
        Ok(())
    }
}

fn word(b: &[u8; LEN], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads a BFD Control packet from a UDP payload, refusing anything RFC 5880 section 6.8.6
/// says to discard on its own evidence. Bytes past the Length field (padding) are ignored.
pub fn decode(payload: &[u8]) -> Result<ControlPacket, DecodeError> {
    let Some(b) = payload.first_chunk::<LEN>() else {
        return Err(DecodeError::TooShort { len: payload.len() });
    };
    let flags = b[1];
    let p = ControlPacket {
        version: b[0] >> 5,
        diagnostic: Diag::from_code(b[0]),
        state: State::from_bits(flags >> 6),
        poll: flags & POLL != 0,
        final_: flags & FINAL != 0,
        control_plane_independent: flags & CONTROL_PLANE_INDEPENDENT != 0,
        auth_present: flags & AUTH_PRESENT != 0,
        demand: flags & DEMAND != 0,
        multipoint: flags & MULTIPOINT != 0,
        detect_mult: b[2],
        my_discriminator: word(b, 4),
        your_discriminator: word(b, 8),
        desired_min_tx: word(b, 12),
        required_min_rx: word(b, 16),
        required_min_echo_rx: word(b, 20),
    };
    // The RFC's order: version, then the Length field, then the fields.
    if p.version != VERSION {
        return Err(DecodeError::Version(p.version));
    }
    let length = b[3];
    let min = if p.auth_present { MIN_AUTH_LEN } else { LEN };
    if usize::from(length) < min {
        return Err(DecodeError::LengthTooSmall { length, min });
    }
    if usize::from(length) > payload.len() {
        return Err(DecodeError::LengthBeyondPayload {
            length,
            payload: payload.len(),
        });
    }
    p.check()?;
    Ok(p)
}

/// Writes a packet's mandatory section; the Length field is always 24.
///
/// The A bit is never set: ironlb has no BFD authentication, and the bit without its section
/// would make the packet malformed. Every other field is written as given (the version's low
/// three bits), so a packet that fails [`ControlPacket::check`] can still be built: tests send
/// such packets on purpose.
pub fn encode(p: &ControlPacket) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[0] = ((p.version & 0x07) << 5) | p.diagnostic.code();
    let flag = |set: bool, bit: u8| if set { bit } else { 0 };
    b[1] = (p.state.bits() << 6)
        | flag(p.poll, POLL)
        | flag(p.final_, FINAL)
        | flag(p.control_plane_independent, CONTROL_PLANE_INDEPENDENT)
        | flag(p.demand, DEMAND)
        | flag(p.multipoint, MULTIPOINT);
    b[2] = p.detect_mult;
    b[3] = LEN as u8;
    let words = [
        p.my_discriminator,
        p.your_discriminator,
        p.desired_min_tx,
        p.required_min_rx,
        p.required_min_echo_rx,
    ];
    for (chunk, w) in b[4..].chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    b
}

#[cfg(test)]
mod tests;
