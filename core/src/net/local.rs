//! Addresses bound on this host's loopback so the kernel accepts traffic for the addresses the
//! node answers for (standalone mode; in Kubernetes kube-proxy does this), and the ARP settings
//! that keep the kernel itself from answering for them.

use std::io;
use std::net::IpAddr;

use tokio::process::Command;

async fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("running ip {}: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn host_prefix(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

/// Binds `addr` to `lo` (idempotent).
pub async fn bind(addr: IpAddr) -> io::Result<()> {
    ip(&["addr", "replace", &host_prefix(addr), "dev", "lo"]).await
}

/// Removes `addr` from `lo`; an address that is not there is no error.
pub async fn unbind(addr: IpAddr) -> io::Result<()> {
    match ip(&["addr", "del", &host_prefix(addr), "dev", "lo"]).await {
        Err(e) if e.to_string().contains("Cannot assign requested address") => Ok(()),
        other => other,
    }
}

/// Makes the kernel answer ARP on `interface` only for addresses configured on it
/// (`arp_ignore=1`) and pick a source address of that interface for its own requests
/// (`arp_announce=2`), as kube-proxy's IPVS mode asks: otherwise it would answer for the
/// addresses bound on `lo` too, on every interface.
pub fn strict_arp(interface: &str) -> io::Result<()> {
    let dir = format!("/proc/sys/net/ipv4/conf/{interface}");
    std::fs::write(format!("{dir}/arp_ignore"), "1")?;
    std::fs::write(format!("{dir}/arp_announce"), "2")
}
