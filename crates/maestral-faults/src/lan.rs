//! The simulated LAN: one network namespace per host, each joined by a veth pair to a bridge
//! that lives in a namespace of its own, so no packet of the run touches the machine's network.
//! Host `i` has `10.77.0.(i+1)/24`, `lo` up and a default route (webrtc-rs needs one to join
//! its mDNS group). Everything is removed when the [`Lan`] is dropped.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One host: its namespace and address.
#[derive(Debug, Clone)]
pub struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
    /// Its end of the veth pair (inside `ns`).
    pub dev: String,
}

#[derive(Debug)]
pub struct Lan {
    hub: String,
    pub hosts: Vec<Host>,
}

/// Runs `ip` (or another tool) and fails with what it printed.
pub fn sh(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("could not run {program} (is iproute2/nftables installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `ip netns exec NS program args…`.
pub fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    sh("ip", &all)
}

impl Lan {
    /// A LAN of `n` hosts. Fails (saying why) where namespaces cannot be made: not root, no
    /// `ip`, a kernel without them.
    pub fn new(n: usize) -> Result<Lan> {
        let tag = std::process::id() % 100_000;
        let hub = format!("mfl{tag}-lan");
        sh("ip", &["netns", "add", &hub]).context("making the LAN's namespace")?;
        let mut lan = Lan { hub: hub.clone(), hosts: Vec::new() };
        sh("ip", &["-n", &hub, "link", "set", "lo", "up"])?;
        sh("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        sh("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..n {
            let ns = format!("mfl{tag}-h{i}");
            let (dev, peer) = (format!("mf{tag}h{i}"), format!("mf{tag}b{i}"));
            let ip = Ipv4Addr::new(10, 77, (i / 250) as u8, (i % 250 + 1) as u8);
            sh("ip", &["netns", "add", &ns])?;
            lan.hosts.push(Host { ns: ns.clone(), ip, dev: dev.clone() });
            sh("ip", &["link", "add", &dev, "type", "veth", "peer", "name", &peer])?;
            sh("ip", &["link", "set", &dev, "netns", &ns])?;
            sh("ip", &["link", "set", &peer, "netns", &hub])?;
            sh("ip", &["-n", &hub, "link", "set", &peer, "master", "br0", "up"])?;
            let cidr = format!("{ip}/16");
            sh("ip", &["-n", &ns, "addr", "add", &cidr, "dev", &dev])?;
            sh("ip", &["-n", &ns, "link", "set", &dev, "up"])?;
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            sh("ip", &["-n", &ns, "route", "add", "default", "dev", &dev])?;
        }
        Ok(lan)
    }

    /// Cuts host `i` off the LAN (its link down) or puts it back.
    pub fn set_link(&self, i: usize, up: bool) -> Result<()> {
        let h = &self.hosts[i];
        sh("ip", &["-n", &h.ns, "link", "set", &h.dev, if up { "up" } else { "down" }])
    }

    /// Host `i` drops `percent` % of the UDP it receives (`inbound`) or sends, at random
    /// (nftables `numgen random`; this kernel has no `netem`). 0 removes the rule.
    pub fn set_loss(&self, i: usize, percent: u32, inbound: bool) -> Result<()> {
        let ns = &self.hosts[i].ns;
        let chain = if inbound { "input" } else { "output" };
        let _ = in_ns(ns, "nft", &["delete", "table", "inet", &format!("loss_{chain}")]);
        if percent == 0 {
            return Ok(());
        }
        let table = format!("loss_{chain}");
        in_ns(ns, "nft", &["add", "table", "inet", &table])?;
        let spec = format!("{{ type filter hook {chain} priority 0; }}");
        in_ns(ns, "nft", &["add", "chain", "inet", &table, "c", &spec])?;
        let limit = percent.to_string();
        in_ns(
            ns,
            "nft",
            &[
                "add", "rule", "inet", &table, "c", "meta", "l4proto", "udp", "numgen", "random",
                "mod", "100", "<", &limit, "drop",
            ],
        )
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = sh("ip", &["netns", "del", &h.ns]);
        }
        let _ = sh("ip", &["netns", "del", &self.hub]);
    }
}
