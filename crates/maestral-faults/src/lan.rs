//! The simulated LAN: one network namespace per host, each joined by a veth pair to a bridge
//! that lives in a namespace of its own, so no packet of the run touches the machine's network.
//! Host `i` has `10.77.0.(i+1)/16` (with its broadcast address, as DHCP gives), `lo` up and a
//! default route. A link taken down loses its default route and comes back without one, as on a
//! LAN without a gateway. Everything is removed when the [`Lan`] is dropped.

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

/// Why a run could not start where the first namespace cannot be made (not root, no `ip`, a
/// kernel without them): a context on the error, found by type (`downcast_ref`), so a run that
/// could not be tried is told apart from one that failed without matching its message.
#[derive(Debug)]
pub struct NoNamespaces;

impl std::fmt::Display for NoNamespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("network namespaces cannot be made here")
    }
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
        // Only this first step failing means namespaces cannot be made here: any later one
        // failing is a failure of the run.
        sh("ip", &["netns", "add", &hub]).context(NoNamespaces)?;
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
            sh("ip", &["-n", &ns, "addr", "add", &cidr, "brd", "+", "dev", &dev])?;
            sh("ip", &["-n", &ns, "link", "set", &dev, "up"])?;
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            sh("ip", &["-n", &ns, "route", "add", "default", "dev", &dev])?;
        }
        Ok(lan)
    }

    /// Host `i` gets address `ip` in place of its own (a DHCP renewal handing out another).
    pub fn readdress(&mut self, i: usize, ip: Ipv4Addr) -> Result<()> {
        let h = &self.hosts[i];
        let (old, new) = (format!("{}/16", h.ip), format!("{ip}/16"));
        // The old one goes first, as a DHCP client does (and an address added beside it in its
        // subnet would be a secondary, deleted with it).
        sh("ip", &["-n", &h.ns, "addr", "del", &old, "dev", &h.dev])?;
        sh("ip", &["-n", &h.ns, "addr", "add", &new, "brd", "+", "dev", &h.dev])?;
        sh("ip", &["-n", &h.ns, "route", "replace", "default", "dev", &h.dev])?;
        self.hosts[i].ip = ip;
        Ok(())
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

/// The delay layer on one host (relay.rs): while it lives, the host's UDP one way passes
/// through a `maestral-faults --delay-relay` in its namespace.
pub struct Delay {
    ns: String,
    rule: Vec<String>,
    relay: std::process::Child,
}

impl Lan {
    /// Holds every UDP packet host `i` receives (`inbound`) or sends for a delay drawn from
    /// `[min_ms, max_ms]` by `seed`: an iptables `NFQUEUE` rule (nftables' `queue` is not in
    /// this kernel) feeding the relay.
    pub fn delay(
        &self,
        i: usize,
        min_ms: u64,
        max_ms: u64,
        inbound: bool,
        seed: u64,
    ) -> Result<Delay> {
        use std::io::BufRead;
        let ns = self.hosts[i].ns.clone();
        let me = std::env::current_exe().context("the harness's own path")?;
        let mut relay = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(me)
            .arg("--delay-relay")
            .args(["--queue", "0", "--min", &min_ms.to_string(), "--max", &max_ms.to_string()])
            .args(["--seed", &seed.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("could not start the delay relay")?;
        let mut line = String::new();
        if let Some(out) = relay.stdout.as_mut() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        if !line.contains("ready") {
            let _ = relay.kill();
            let _ = relay.wait();
            bail!("the delay relay did not start (is nfnetlink_queue in this kernel?)");
        }
        let chain = if inbound { "INPUT" } else { "OUTPUT" };
        let rule: Vec<String> = [chain, "-p", "udp", "-j", "NFQUEUE", "--queue-num", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut add = vec!["-A"];
        add.extend(rule.iter().map(String::as_str));
        if let Err(e) = in_ns(&ns, "iptables", &add) {
            let _ = relay.kill();
            let _ = relay.wait();
            return Err(e);
        }
        Ok(Delay { ns, rule, relay })
    }
}

impl Delay {
    /// Removes the rule, lets every held packet go; how many packets passed and how many were
    /// overtaken.
    pub fn stop(mut self) -> Result<(u64, u64)> {
        use std::io::Read;
        let mut del = vec!["-D"];
        del.extend(self.rule.iter().map(String::as_str));
        let removed = in_ns(&self.ns, "iptables", &del);
        drop(self.relay.stdin.take());
        let mut out = String::new();
        if let Some(mut o) = self.relay.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let _ = self.relay.wait();
        removed?;
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
        Ok((v["packets"].as_u64().unwrap_or(0), v["reordered"].as_u64().unwrap_or(0)))
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
