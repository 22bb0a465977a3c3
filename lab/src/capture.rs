//! Packet captures with `tshark` inside a lab namespace, and the check that matters for Layer 2
//! safety: no moment where two MAC addresses answer for one IP address.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One answer seen on the wire: an ARP reply or gratuitous ARP, or a Neighbor Advertisement.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// When it was captured (seconds since the epoch).
    pub time: f64,
    /// The address it is about.
    pub addr: IpAddr,
    /// The MAC address claiming it.
    pub mac: String,
}

/// A running capture.
pub struct Capture {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Capture {
    /// Captures ARP and ICMPv6 on `iface` in `netns` into `dir`; returns once tshark captures.
    pub fn start(netns: &str, iface: &str, dir: &Path) -> Capture {
        let out = dir.join(format!("capture-{netns}-{iface}.csv"));
        let err = dir.join(format!("capture-{netns}-{iface}.err"));
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "tshark", "-l", "-n", "-i", iface])
            .args(["-f", "arp or icmp6", "-T", "fields", "-E", "separator=,"])
            .args([
                "-e",
                "frame.time_epoch",
                "-e",
                "eth.src",
                "-e",
                "arp.opcode",
                "-e",
                "arp.src.proto_ipv4",
                "-e",
                "icmpv6.type",
                "-e",
                "icmpv6.nd.na.target_address",
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("capture file"))
            .stderr(std::fs::File::create(&err).expect("capture log"))
            .spawn()
            .expect("tshark starts");
        let c = Capture {
            child: Some(child),
            out,
            err,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&c.err)
            .unwrap_or_default()
            .contains("Capturing on")
        {
            assert!(Instant::now() < deadline, "tshark did not start capturing");
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    /// Stops the capture and returns every answer in it, in time order.
    pub fn stop(mut self) -> Vec<Answer> {
        if let Some(mut c) = self.child.take() {
            // SIGINT lets tshark flush what it has.
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        parse(&std::fs::read_to_string(&self.out).unwrap_or_default())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads tshark's lines: `time,eth.src,arp.opcode,arp.src.proto_ipv4,icmpv6.type,na.target`.
/// ARP replies and gratuitous requests (sender address = the one claimed) and Neighbor
/// Advertisements (type 136) count as answers.
pub fn parse(text: &str) -> Vec<Answer> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 6 {
            continue;
        }
        let Ok(time) = f[0].parse::<f64>() else {
            continue;
        };
        let mac = f[1].to_ascii_lowercase();
        let addr = if !f[2].is_empty() {
            // Requests from the client are questions; only its own address is in them.
            match (f[2], f[3].parse::<IpAddr>()) {
                ("2", Ok(a)) => Some(a),
                ("1", Ok(a)) => Some(a),
                _ => None,
            }
        } else if f[4] == "136" {
            f[5].parse::<IpAddr>().ok()
        } else {
            None
        };
        if let Some(addr) = addr {
            out.push(Answer { time, addr, mac });
        }
    }
    out.sort_by(|a, b| a.time.total_cmp(&b.time));
    out
}

/// Moments where two MACs answered for one address: each time the answers for an address
/// switch from one MAC to another and the first answers again within `window` (no legitimate
/// handover brings an address back that fast: the old owner must have fenced, been declared
/// dead and chosen again). Answers from MACs in `ignore` (the client's own requests) are
/// skipped. Returns the windows found, as (address, first MAC, second MAC, time).
pub fn dual_answer_windows(
    answers: &[Answer],
    ignore: &[String],
    window: Duration,
) -> Vec<(IpAddr, String, String, f64)> {
    let mut by_addr: BTreeMap<IpAddr, Vec<&Answer>> = BTreeMap::new();
    for a in answers.iter().filter(|a| !ignore.contains(&a.mac)) {
        by_addr.entry(a.addr).or_default().push(a);
    }
    let w = window.as_secs_f64();
    let mut found = Vec::new();
    for (addr, list) in by_addr {
        for i in 1..list.len() {
            let (prev, cur) = (list[i - 1], list[i]);
            if prev.mac == cur.mac {
                continue;
            }
            let back = list[i + 1..]
                .iter()
                .take_while(|l| l.time - cur.time <= w)
                .any(|l| l.mac == prev.mac);
            if back {
                found.push((addr, prev.mac.clone(), cur.mac.clone(), cur.time));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tshark_lines_become_answers_and_interleaving_is_found() {
        let text = "\
1.00,02:00:00:01:00:c8,1,198.51.100.200,,
1.01,02:00:00:01:00:01,2,198.51.100.100,,
1.50,02:00:00:01:00:02,1,198.51.100.100,,
1.51,02:00:00:01:00:02,2,198.51.100.100,,
3.00,02:00:00:01:00:01,2,198.51.100.100,,
3.10,02:00:00:01:00:01,,,136,2001:db8:51::100
3.20,02:00:00:01:00:02,,,136,2001:db8:51::100
3.30,02:00:00:01:00:01,,,136,2001:db8:51::100
";
        let answers = parse(text);
        assert_eq!(answers.len(), 8);
        let client = vec!["02:00:00:01:00:c8".to_string()];
        // .100: 01 -> 02 at 1.50, back to 01 only at 3.00 (1.5 s later): a handover, twice.
        // The IPv6 address flips 01 -> 02 -> 01 within 0.1 s: a dual answer.
        let found = dual_answer_windows(&answers, &client, Duration::from_secs(1));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "2001:db8:51::100".parse::<IpAddr>().unwrap());
    }
}
