//! The report: a table row per fault, the same as JSON under `target/bench/`, and an SVG plot
//! of every page update's latency over the run.

use std::fmt::Write as _;
use std::path::Path;

use crate::run::Row;

fn pct(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    Some(s[rank.clamp(1, s.len()) - 1])
}

fn ms(v: Option<f64>) -> String {
    v.map_or("—".into(), |x| format!("{x:.0}"))
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<30} {:>4} {:>10} {:>12} {:>8} {:>8} {:>5} {:>5}",
        "fault", "host", "notice ms", "converge ms", "p50 ms", "p99 ms", "lost", "viol"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<30} {:>4} {:>10} {:>12} {:>8} {:>8} {:>5} {:>5}",
            r.fault,
            r.host.map_or("—".into(), |h| h.to_string()),
            ms(r.notice_ms),
            ms(r.converge_ms),
            ms(pct(&r.latencies_ms, 50.0)),
            ms(pct(&r.latencies_ms, 99.0)),
            r.lost,
            r.violations.len()
        );
        if let Some(d) = &r.detail {
            let _ = writeln!(out, "    {d}");
        }
        for v in &r.violations {
            let _ = writeln!(out, "    violation: {v}");
        }
    }
    out
}

pub fn json(rows: &[Row], seed: u64, replay: &str) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "fault": r.fault,
                "host": r.host,
                "detail": r.detail,
                "notice_ms": r.notice_ms,
                "converge_ms": r.converge_ms,
                "page_p50_ms": pct(&r.latencies_ms, 50.0),
                "page_p99_ms": pct(&r.latencies_ms, 99.0),
                "page_updates": r.latencies_ms.len(),
                "lost": r.lost,
                "violations": r.violations,
            })
        })
        .collect();
    serde_json::json!({ "seed": seed, "replay": replay, "rows": rows })
}

/// Latency (ms, log scale) against time (s), one dot per page update, coloured by fault.
pub fn svg(rows: &[Row]) -> String {
    let (w, h, pad) = (900.0, 420.0, 50.0);
    let samples: Vec<(usize, f64, f64)> = rows
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.samples.iter().map(move |(t, l)| (i, *t, *l)))
        .collect();
    let t_max = samples.iter().map(|s| s.1).fold(1.0, f64::max);
    let y = |ms: f64| {
        let l = ms.max(1.0).log10().min(4.0);
        h - pad - l / 4.0 * (h - 2.0 * pad)
    };
    let x = |t: f64| pad + t / t_max * (w - 2.0 * pad);
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"];
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (ms, label) in
        [(1.0, "1 ms"), (10.0, "10 ms"), (100.0, "100 ms"), (1000.0, "1 s"), (10000.0, "10 s")]
    {
        let yy = y(ms);
        let _ = writeln!(
            out,
            "<line x1=\"{pad}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"4\" y=\"{:.1}\">{label}</text>",
            w - pad,
            yy + 4.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\">time in the run (s), page-update latency per dot</text>",
        pad,
        h - 12.0
    );
    for (i, t, l) in &samples {
        let c = colours[i % colours.len()];
        let _ =
            writeln!(out, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{c}\"/>", x(*t), y(*l));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if r.samples.is_empty() || seen.contains(&r.fault.as_str()) {
            continue;
        }
        seen.push(&r.fault);
        let c = colours[i % colours.len()];
        let yy = 16.0 + 14.0 * (seen.len() - 1) as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"8\" height=\"8\" fill=\"{c}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            w - 230.0,
            yy - 8.0,
            w - 218.0,
            yy,
            r.fault
        );
    }
    out.push_str("</svg>\n");
    out
}

pub fn write(dir: &Path, rows: &[Row], seed: u64, replay: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(&json(rows, seed, replay)).unwrap_or_default();
    std::fs::write(dir.join("faults.json"), text)?;
    std::fs::write(dir.join("faults.svg"), svg(rows))
}
