//! Fetches the JavaScript parser acorn (pinned, checked against npm's SHA-512 integrity) into
//! `.cache/acorn/`, so that `cargo xtask test` parses every module the browser Follower's page
//! loads as ECMAScript 2019: the newest syntax that both Safari on iOS 15 and Chrome 69 run.
//! Only the tests use it; nothing of it is bundled into the app.
//!
//! The tarball comes straight from the npm registry through Python's `urllib` (the PDFium
//! set-up needs Python already; npm itself is not required), and `tarfile` takes out
//! `package/dist/acorn.mjs` and the licence.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

const VERSION: &str = "8.19.0";
const URL: &str = "https://registry.npmjs.org/acorn/-/acorn-8.19.0.tgz";
/// npm's `dist.integrity` for that tarball.
const INTEGRITY: &str = "sha512-oJlA3XiRm7Cyk6qFD2Jn8ak9B7jSy0qy00ADO3+8dpT0LSjFihQYv4C02LFCSYJV3Q37xYwwRy5m+IpIiUzqWw==";

/// Makes sure acorn is in the cache folder and returns the path of its ES module. Does nothing
/// (no network) when it is already there.
pub fn ensure() -> Result<PathBuf> {
    let dir = crate::root().join(".cache").join("acorn");
    let module = dir.join(format!("acorn-{VERSION}.mjs"));
    if module.is_file() {
        return Ok(module);
    }
    eprintln!(
        "xtask: fetching acorn {VERSION} (the tests' JavaScript parser) into {}",
        dir.display()
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    const SCRIPT: &str = r#"
import base64, hashlib, io, os, sys, tarfile, urllib.request
url, integrity, out, name = sys.argv[1:5]
data = urllib.request.urlopen(url, timeout=60).read()
algo, digest = integrity.split("-", 1)
if base64.b64encode(hashlib.new(algo, data).digest()).decode() != digest:
    sys.exit("the download of " + url + " does not match its pinned integrity")
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
    licence = t.extractfile("package/LICENSE").read()
    module = t.extractfile("package/dist/acorn.mjs").read()
with open(os.path.join(out, "LICENSE"), "wb") as f:
    f.write(licence)
tmp = os.path.join(out, name + ".partial")
with open(tmp, "wb") as f:
    f.write(module)
os.replace(tmp, os.path.join(out, name))
"#;
    let st = Command::new(crate::pdfium::python()?)
        .arg("-c")
        .arg(SCRIPT)
        .args([URL, INTEGRITY])
        .arg(&dir)
        .arg(module.file_name().context("a file name")?)
        .status()
        .context("could not start Python for the acorn set-up")?;
    if !st.success() {
        bail!("could not fetch acorn from {URL} ({st}): check the network");
    }
    Ok(module)
}
