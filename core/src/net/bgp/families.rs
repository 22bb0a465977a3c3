//! Which unicast address families a BGP session offers in its OPEN and carries: the family
//! of the peer's address, or both (`dualStackAddressFamily`).

use std::net::IpAddr;

use ipnet::IpNet;
use netgauze_iana::address_family::AddressType;

/// Which unicast address families a session carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Families {
    /// IPv4 unicast.
    pub ipv4: bool,
    /// IPv6 unicast.
    pub ipv6: bool,
}

impl Families {
    /// Both families (multiprotocol BGP).
    pub const BOTH: Families = Families {
        ipv4: true,
        ipv6: true,
    };

    /// The family of `addr` alone.
    pub fn of(addr: IpAddr) -> Families {
        Families {
            ipv4: addr.is_ipv4(),
            ipv6: addr.is_ipv6(),
        }
    }

    /// Whether routes of `prefix`'s family are carried.
    pub fn carries(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(_) => self.ipv4,
            IpNet::V6(_) => self.ipv6,
        }
    }

    /// The families as the multiprotocol capability names them, IPv4 first.
    pub(super) fn address_types(self) -> Vec<AddressType> {
        let mut v = Vec::new();
        if self.ipv4 {
            v.push(AddressType::Ipv4Unicast);
        }
        if self.ipv6 {
            v.push(AddressType::Ipv6Unicast);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_of_one_family_carries_that_family_alone() {
        let v4 = Families::of("198.51.100.1".parse().unwrap());
        let v6 = Families::of("2001:db8::1".parse().unwrap());
        let (p4, p6): (IpNet, IpNet) = (
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8:113::/64".parse().unwrap(),
        );
        assert!(v4.carries(&p4) && !v4.carries(&p6));
        assert!(!v6.carries(&p4) && v6.carries(&p6));
        assert!(Families::BOTH.carries(&p4) && Families::BOTH.carries(&p6));
        assert_eq!(v6.address_types(), vec![AddressType::Ipv6Unicast]);
    }
}
