//! Network protocols and sockets: packet codecs (which know nothing of sockets) and the raw
//! sockets they travel on.

pub mod arp;
pub mod bfd;
pub mod bgp;
pub mod local;
pub mod ndp;
pub mod raw;

/// The smallest Ethernet frame without its checksum; shorter frames are padded to it.
pub const MIN_FRAME_LEN: usize = 60;
