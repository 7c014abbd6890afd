//! The off-machine check of `cargo xtask test`: the tests run in a network namespace of their
//! own, and the run fails if any of their packets left it.
//!
//! The namespace has `lo` up and one veth, `mt0` (10.250.0.1/24 and fd6d:6165::1/64, so an
//! address that is not loopback and a default route for each family, as on a LAN), whose far
//! end lies in a second namespace that has no address and forwards nothing. Whatever a test
//! sends past its own machine — a broadcast, a multicast, a datagram to a LAN or internet
//! address — goes out of `mt0`, and an nftables counter on its way out counts it and keeps its
//! destination. What the processes send one another (loopback, or the namespace's own address)
//! never crosses `mt0`; nor does the fault harness's traffic, which stays on the bridge of the
//! namespaces it makes from inside this one. Only the kernel's own neighbour discovery and
//! multicast listener reports are let through uncounted.
//!
//! Each run first sends a broadcast from inside and sees it counted (the check can fail), then
//! resets the counter for the tests.
//!
//! What it does not see: traffic inside namespaces the tests make themselves (the fault
//! harness's LAN, the browser test's), which never crosses `mt0`; their own sinks lead nowhere,
//! so nothing of theirs leaves the machine either.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// The device in the sealed namespace, and its far end in the sink.
const DEV: &str = "mt0";
const FAR: &str = "mt1";
const TABLE: &str = "maestral_sealed";

/// Counts and keeps every packet that leaves through `mt0`, except the kernel's neighbour
/// discovery and multicast listener reports (no process sends those).
const RULES: &str = r#"
table inet maestral_sealed {
    counter off_machine {}
    set sent4 {
        typeof ip daddr . meta l4proto . th dport
        flags dynamic
        size 4096
    }
    set sent6 {
        typeof ip6 daddr . meta l4proto . th dport
        flags dynamic
        size 4096
    }
    chain out {
        type filter hook output priority 0; policy accept;
        oifname != "mt0" accept
        icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld-listener-done, mld2-listener-report } accept
        counter name off_machine
        meta nfproto ipv4 add @sent4 { ip daddr . meta l4proto . th dport }
        meta nfproto ipv6 add @sent6 { ip6 daddr . meta l4proto . th dport }
    }
}
"#;

/// The sealed namespace and its sink, removed when dropped.
pub struct Sealed {
    ns: String,
    sink: String,
}

fn sh(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("could not start `{program}`"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Sealed {
    /// Makes the namespaces (root, `ip` and `nft` needed); an error says why they cannot be.
    /// Namespaces an earlier run left behind (killed before it could remove them) go first.
    pub fn make() -> Result<Sealed> {
        leftovers();
        let pid = std::process::id();
        let sealed =
            Sealed { ns: format!("maestral-sealed-{pid}"), sink: format!("maestral-sink-{pid}") };
        // From here on, a failure drops `sealed`, which removes what was made.
        sh("ip", &["netns", "add", &sealed.ns])?;
        sh("ip", &["netns", "add", &sealed.sink])?;
        let (ns, sink) = (sealed.ns.as_str(), sealed.sink.as_str());
        sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        sh("ip", &["-n", ns, "link", "add", DEV, "type", "veth", "peer", "name", FAR])?;
        sh("ip", &["-n", ns, "link", "set", FAR, "netns", sink])?;
        // No link-local addresses: no duplicate-address probes or solicitations of the kernel's.
        sh("ip", &["-n", ns, "link", "set", DEV, "addrgenmode", "none"])?;
        sh("ip", &["-n", sink, "link", "set", FAR, "addrgenmode", "none"])?;
        sh("ip", &["-n", sink, "link", "set", FAR, "up"])?;
        sh("ip", &["-n", ns, "addr", "add", "10.250.0.1/24", "brd", "+", "dev", DEV])?;
        sh("ip", &["-n", ns, "addr", "add", "fd6d:6165::1/64", "nodad", "dev", DEV])?;
        sh("ip", &["-n", ns, "link", "set", DEV, "up"])?;
        sh("ip", &["-n", ns, "route", "add", "default", "via", "10.250.0.2", "dev", DEV])?;
        sh("ip", &["-n", ns, "-6", "route", "add", "default", "via", "fd6d:6165::2", "dev", DEV])?;
        let rules = std::env::temp_dir().join(format!("maestral-sealed-{pid}.nft"));
        std::fs::write(&rules, RULES).context("writing the nftables rules")?;
        let loaded = sh("ip", &["netns", "exec", ns, "nft", "-f", &rules.to_string_lossy()]);
        let _ = std::fs::remove_file(&rules);
        loaded?;
        Ok(sealed)
    }

    /// `program` run inside the sealed namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
    }

    fn nft(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["netns", "exec", &self.ns, "nft"];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    /// Packets that left so far, and their destinations (`address protocol port`).
    pub fn sent(&self) -> Result<(u64, Vec<String>)> {
        let counter = self.nft(&["list", "counter", "inet", TABLE, "off_machine"])?;
        let packets = counter
            .split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .context("reading the off-machine counter")?;
        let mut to = Vec::new();
        for set in ["sent4", "sent6"] {
            let listed = self.nft(&["list", "set", "inet", TABLE, set])?;
            if let Some((_, elements)) = listed.split_once("elements = {") {
                let elements = elements.split('}').next().unwrap_or_default();
                let words = |e: &str| -> String {
                    e.split_whitespace().filter(|w| *w != ".").collect::<Vec<_>>().join(" ")
                };
                to.extend(elements.split(',').map(words));
            }
        }
        Ok((packets, to))
    }

    /// Sends a broadcast from inside (as a locate query would go) and checks that it is counted,
    /// then starts the count afresh: the check is seen to fail before it is trusted to pass.
    pub fn canary(&self) -> Result<()> {
        let exe = std::env::current_exe().context("finding xtask's own binary")?;
        let status = self.command(&exe).arg("sealed-canary").status()?;
        if !status.success() {
            bail!("the canary broadcast could not be sent from the sealed namespace ({status})");
        }
        let (packets, to) = self.sent()?;
        let seen = to.iter().any(|t| t.starts_with("255.255.255.255 udp 47474"));
        if packets == 0 || !seen {
            bail!(
                "the off-machine check did not see a broadcast sent from inside ({packets} \
                 packets, to {to:?}): it cannot be trusted"
            );
        }
        self.nft(&["reset", "counter", "inet", TABLE, "off_machine"])?;
        self.nft(&["flush", "set", "inet", TABLE, "sent4"])?;
        self.nft(&["flush", "set", "inet", TABLE, "sent6"])?;
        Ok(())
    }

    /// Fails, naming where they went, if any packet left the namespace since the canary.
    pub fn check(&self) -> Result<()> {
        let (packets, to) = self.sent()?;
        if packets > 0 {
            bail!(
                "{packets} packet(s) left the test machine, to: {} (tests must send only to \
                 loopback or into namespaces they make; see `MAESTRAL_LOCATE` in the README)",
                to.join(", ")
            );
        }
        Ok(())
    }
}

/// Removes the sealed and sink namespaces of runs whose process is gone.
fn leftovers() {
    let Ok(listed) = sh("ip", &["netns", "list"]) else { return };
    for name in listed.lines().filter_map(|l| l.split_whitespace().next()) {
        let pid = name
            .strip_prefix("maestral-sealed-")
            .or_else(|| name.strip_prefix("maestral-sink-"))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = sh("ip", &["netns", "del", name]);
        }
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.ns]);
        let _ = sh("ip", &["netns", "del", &self.sink]);
    }
}

/// `xtask sealed-canary`: one UDP broadcast to 255.255.255.255 on the locate port.
pub fn send_canary() -> Result<()> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
    socket.set_broadcast(true)?;
    socket.send_to(b"maestral sealed-network canary", "255.255.255.255:47474")?;
    Ok(())
}
