//! `cargo xtask dist [--check]`: the Linux packages in `target/packages/`.
//!
//! - `maestral_VERSION-1_ARCH.deb`, built by cargo-deb (an established packager, installed on
//!   first use at a pinned version) from `[package.metadata.deb]` in the top `Cargo.toml`: the
//!   binary of the `dist` profile (release, whole-program LTO, one codegen unit; measured in
//!   `docs/packaging.md`) in `/usr/bin`, PDFium in `/usr/lib/maestral` with its licences in
//!   `/usr/share/doc/maestral/pdfium`, the demo scores in `/usr/share/maestral/scores`, a desktop
//!   entry (PDF files and `maestral://` join links), an icon, a machine-readable Debian
//!   `copyright` (packaging/linux/copyright) and `CRATES.txt` (every crate compiled in, with its
//!   licence).
//! - `maestral-VERSION-linux-ARCH.tar.gz`, a portable archive: the same tree as the package's
//!   `/usr`, taken out of the `.deb` itself (so the two never differ), to unpack anywhere and run
//!   `bin/maestral` from.
//!
//! Why cargo-deb: it builds a `.deb` from the Cargo metadata with no other tooling, and it
//! strips the binary. cargo-packager would add an AppImage and macOS and Windows bundles, but its
//! AppImage needs tools downloaded from the internet at build time; cargo-dist builds archives
//! and installers in CI services, not on a machine like ours.
//!
//! `--check` installs the `.deb` with dpkg into a fresh root of its own (`dpkg --root`), runs it
//! and purges it; then it unpacks the archive into a fresh folder (no checkout, no `.cache`, no
//! `MAESTRAL_PDFIUM` or `LD_LIBRARY_PATH`, another working folder) and runs the installed files:
//! `--version`, the desktop entry (desktop-file-validate), the notices, `list` of the package's
//! scores, `render` of a page, and a headless Master that a headless Follower joins over
//! loopback; then, with the package's PDFium removed, `render` must fail with the words a
//! performer gets (so the package's library was the one used).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cargo, pdfium, status, target_dir};

/// The cargo-deb release this project packages with.
const CARGO_DEB: &str = "3.8.0";

/// The build profile the packages ship (`[profile.dist]` in the top `Cargo.toml`).
const PROFILE: &str = "dist";

pub fn run(rest: &[String]) -> Result<()> {
    let (mut check, mut profile) = (false, PROFILE);
    let mut args = rest.iter().map(String::as_str);
    while let Some(arg) = args.next() {
        match (arg, arg == "--profile") {
            ("--check", _) => check = true,
            // `--profile release`: the same packages from the release build, for CI, which
            // checks the packaging on every change and cannot spend the `dist` profile's link
            // time each run (docs/packaging.md §3).
            (_, true) => match args.next() {
                Some(p @ ("dist" | "release")) => profile = p,
                other => bail!("--profile takes `dist` (the default) or `release`, not {other:?}"),
            },
            _ => bail!("`cargo xtask dist` takes --check and --profile dist|release, not {arg:?}"),
        }
    }
    pdfium::ensure()?;
    status(cargo().args(["build", "--profile", profile, "--package", "maestral"]))?;
    write_crates_list(&target_dir().join(profile).join("CRATES.txt"))?;
    ensure_cargo_deb()?;
    let out = target_dir().join("packages");
    if out.exists() {
        std::fs::remove_dir_all(&out)
            .with_context(|| format!("could not clear {}", out.display()))?;
    }
    std::fs::create_dir_all(&out)?;
    status(
        cargo()
            .args(["deb", "--package", "maestral", "--profile", profile, "--no-build", "--output"])
            .arg(&out),
    )?;
    let deb = std::fs::read_dir(&out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("cargo-deb left no .deb")?;
    let version = deb_version(&deb)?;
    let archive = archive_from(&deb, &out, &version)?;
    for file in [&deb, &archive] {
        let size = std::fs::metadata(file)?.len();
        eprintln!("xtask: {} ({:.1} MB)", file.display(), size as f64 / 1e6);
    }
    if check {
        check_dpkg(&deb, &version)?;
        check_archive(&archive, &version)?;
    }
    Ok(())
}

/// Installs the `.deb` with dpkg into a fresh root (`dpkg --root`: its own empty package
/// database, nothing of this machine's), runs the installed `maestral --version` and `list`,
/// then purges the package and checks that it took all its files with it. dpkg needs root:
/// elsewhere this step is skipped, said so (a failure under `CI`).
fn check_dpkg(deb: &Path, version: &str) -> Result<()> {
    let uid = output({
        let mut c = Command::new("id");
        c.arg("-u");
        c
    })?;
    if uid.trim() != "0" {
        if crate::in_ci() {
            bail!("installing the .deb with dpkg needs root");
        }
        eprintln!("xtask: dpkg install: SKIPPED, not passed (dpkg --root needs root)");
        return Ok(());
    }
    let root = std::env::temp_dir().join(format!("maestral-dpkg-root-{}", std::process::id()));
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    let result = dpkg_in(deb, &root, version);
    std::fs::remove_dir_all(&root).ok();
    result
}

fn dpkg_in(deb: &Path, root: &Path, version: &str) -> Result<()> {
    let admin = root.join("var/lib/dpkg");
    for dir in ["updates", "info", "triggers"] {
        std::fs::create_dir_all(admin.join(dir))?;
    }
    std::fs::write(admin.join("status"), "")?;
    let dpkg = |args: &[&str]| {
        let mut c = Command::new("dpkg");
        // The fresh root has none of the package's dependencies (libc, Vulkan…): this machine's
        // serve at run time. No maintainer scripts run (cargo-deb writes none).
        c.arg("--root").arg(root).args(["--force-depends", "--force-script-chrootless"]);
        c.args(["--log", "/dev/null"]).args(args);
        c
    };
    status(dpkg(&["--install"]).arg(deb)).context("dpkg could not install the package")?;
    let home = root.join("home");
    std::fs::create_dir_all(&home)?;
    let app = |args: &[&str]| isolated(&root.join("usr/bin/maestral"), args, root, &home);
    let said = output(app(&["--version"]))?;
    if said.trim() != format!("maestral {version}") {
        bail!("the installed `maestral --version` said {said:?}, not {version}");
    }
    let list = output(app(&["list"]))?;
    let scores = root.join("usr/share/maestral/scores");
    if !list.contains(&*scores.to_string_lossy()) {
        bail!("the installed `maestral list` does not show {}: {list:?}", scores.display());
    }
    status(&mut dpkg(&["--purge", "maestral"])).context("dpkg could not remove the package")?;
    // dpkg also removes the folders it made (`usr` itself, in a root of its own).
    let mut left = Vec::new();
    let mut dirs = vec![root.join("usr")];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() { dirs.push(path) } else { left.push(path) }
        }
    }
    if !left.is_empty() {
        bail!("removing the package left files behind: {left:?}");
    }
    eprintln!("xtask: dpkg installed the package into a fresh root, ran it, and removed it whole");
    Ok(())
}

/// The installed `bin` with `args`, with nothing of the checkout or this session: no PDFium
/// path, no library path, `dir` as the working folder, `home` as the home folder, no locate.
fn isolated(bin: &Path, args: &[&str], dir: &Path, home: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .current_dir(dir)
        .env_remove("MAESTRAL_PDFIUM")
        .env_remove("LD_LIBRARY_PATH")
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("MAESTRAL_LOCATE", "off");
    c
}

/// `CRATES.txt`, installed beside the licences: every crate compiled into the binary, with its
/// version and licence (from `cargo tree`; our own crates without the build machine's path).
fn write_crates_list(to: &Path) -> Result<()> {
    let tree = output({
        let mut c = cargo();
        // Without proc-macros (and what only they use): they run at build time, not in the app.
        c.args(["tree", "--package", "maestral", "--edges", "normal,no-proc-macro"]);
        c.args(["--prefix", "none"]);
        c.args(["--format", "{p}|{l}"]);
        c
    })?;
    let mut crates: Vec<String> = tree
        .lines()
        .filter_map(|line| {
            let (package, licence) = line.trim_end_matches(" (*)").split_once('|')?;
            let package = package.split(" (").next().unwrap_or(package);
            Some(format!(
                "{package}: {}",
                if licence.is_empty() { "(none given)" } else { licence }
            ))
        })
        .collect();
    crates.sort();
    crates.dedup();
    let text = format!(
        "The Rust crates compiled into usr/bin/maestral, each with its version and licence \
         (SPDX).\nTheir licence texts come with each crate's source on crates.io.\n\n{}\n",
        crates.join("\n")
    );
    std::fs::write(to, text).with_context(|| format!("could not write {}", to.display()))
}

/// The app's version, as the package records it (its Debian revision left out).
fn deb_version(deb: &Path) -> Result<String> {
    let field = output({
        let mut c = Command::new("dpkg-deb");
        c.arg("--field").arg(deb).arg("Version");
        c
    })?;
    let field = field.trim();
    Ok(field.rsplit_once('-').map_or(field, |(upstream, _)| upstream).to_owned())
}

fn ensure_cargo_deb() -> Result<()> {
    let installed = cargo().args(["deb", "--version"]).output().is_ok_and(|o| {
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains(CARGO_DEB)
    });
    if !installed {
        status(cargo().args(["install", "cargo-deb", "--locked", "--version", CARGO_DEB]))
            .context("could not install cargo-deb (it comes from crates.io)")?;
    }
    Ok(())
}

/// `maestral-VERSION-linux-ARCH.tar.gz` beside the `.deb`: its `/usr` tree, under one folder.
fn archive_from(deb: &Path, out: &Path, version: &str) -> Result<PathBuf> {
    let name = format!("maestral-{version}-linux-{}", std::env::consts::ARCH);
    let unpacked = out.join("unpacked");
    status(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked))
        .context("the portable archive is made from the .deb with dpkg-deb (Debian: dpkg)")?;
    let tree = out.join(&name);
    std::fs::rename(unpacked.join("usr"), &tree)?;
    std::fs::remove_dir_all(&unpacked)?;
    let archive = out.join(format!("{name}.tar.gz"));
    status(Command::new("tar").arg("-czf").arg(&archive).arg("-C").arg(out).arg(&name))?;
    std::fs::remove_dir_all(&tree)?;
    Ok(archive)
}

/// Runs the unpacked archive's files from a fresh folder, as a performer's machine would.
fn check_archive(archive: &Path, version: &str) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("maestral-dist-check-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let result = check_in(archive, &dir, version);
    std::fs::remove_dir_all(&dir).ok();
    result?;
    eprintln!(
        "xtask: dist check passed (version, desktop entry, notices, list, render, a Master \
         joined by a Follower; without the package's PDFium, the performer's message)"
    );
    Ok(())
}

fn check_in(archive: &Path, dir: &Path, version: &str) -> Result<()> {
    status(Command::new("tar").arg("-xzf").arg(archive).arg("-C").arg(dir))?;
    let top = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.is_dir())
        .context("the archive holds no folder")?;
    let bin = top.join("bin").join("maestral");
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    let app = |args: &[&str]| isolated(&bin, args, dir, &home);

    let said = output(app(&["--version"]))?;
    if said.trim() != format!("maestral {version}") {
        bail!("`maestral --version` said {said:?}, not {version}");
    }
    // The desktop entry, as desktops read it (desktop-file-utils' validator), and the notices.
    let entry = top.join("share/applications/maestral.desktop");
    let o = Command::new("desktop-file-validate").arg(&entry).output().context(
        "the desktop entry is checked with desktop-file-validate (Debian: desktop-file-utils)",
    )?;
    if !o.status.success() || !o.stdout.is_empty() {
        bail!("{} is not valid: {}", entry.display(), String::from_utf8_lossy(&o.stdout));
    }
    for notice in ["copyright", "CRATES.txt", "pdfium/LICENSES/BSD-3-Clause.txt"] {
        let path = top.join("share/doc/maestral").join(notice);
        if !path.is_file() {
            bail!("the package lacks {}", path.display());
        }
    }
    let list = output(app(&["list"]))?;
    let installed = top.join("share").join("maestral").join("scores");
    if !list.contains("lanterns-on-the-water") || !list.contains(&*installed.to_string_lossy()) {
        bail!(
            "`maestral list` does not show the package's scores ({}): {list:?}",
            installed.display()
        );
    }
    let score = top.join("share/maestral/scores/lanterns-on-the-water.pdf");
    let png = dir.join("page.png");
    let score_arg = score.to_string_lossy().into_owned();
    let png_arg = png.to_string_lossy().into_owned();
    let render = [
        "render", "--page", "0", "--width", "600", "--height", "800", "--out", &png_arg, &score_arg,
    ];
    output(app(&render))?;
    let bytes = std::fs::read(&png).context("render wrote no page")?;
    if !bytes.starts_with(b"\x89PNG") {
        bail!("render wrote no PNG");
    }

    let mut master = Headless::start(app(&[
        "--headless",
        "--choir-master",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        &dir.join("m").to_string_lossy(),
        "--device-id",
        "M",
    ]))?;
    let ready =
        master.until("ready", |l| l.contains("\"event\":\"ready\"") && l.contains("join_code"))?;
    let code = join_code(&ready).context("no join code in `ready`")?;
    let mut follower = Headless::start(app(&[
        "--headless",
        "--join",
        &code,
        "--state-dir",
        &dir.join("f").to_string_lossy(),
        "--device-id",
        "F",
    ]))?;
    let joined = follower.until("joined", |l| l.contains("FOLLOWER_CONNECTED_FOLLOW"));
    follower.quit();
    master.quit();
    joined?;

    // The package's PDFium was the one used: without it, a page cannot be drawn, and the app
    // says what to do in a performer's words.
    std::fs::remove_file(top.join("lib").join("maestral").join("libpdfium.so"))?;
    let o = app(&render).output()?;
    let said = String::from_utf8_lossy(&o.stderr);
    if o.status.success() || !said.contains("reinstall Maestral") {
        bail!("without the package's PDFium, render did not fail as it should: {said:?}");
    }
    Ok(())
}

/// A command's standard output, or its standard error as the failure.
fn output(mut c: Command) -> Result<String> {
    let o = c.output().with_context(|| format!("could not start {}", crate::shown(&c)))?;
    if !o.status.success() {
        bail!("{} failed: {}", crate::shown(&c), String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A headless app read line by line, with a deadline on what is awaited; killed if dropped
/// without `quit` (a check that failed half-way leaves nothing running).
struct Headless {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

const WAIT: Duration = Duration::from_secs(60);

impl Headless {
    fn start(mut c: Command) -> Result<Self> {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start {}", crate::shown(&c)))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Headless { stdin: child.stdin.take(), child, lines })
    }

    /// The first line that `want` accepts, within WAIT.
    fn until(&mut self, what: &str, want: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return Ok(line),
                Ok(_) => {}
                Err(_) => bail!("the installed app never said {what} within {WAIT:?}"),
            }
        }
    }

    fn quit(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The join code out of a `ready` line (a JSON string with no escapes: the code is ASCII
/// letters, digits and `:/#.[]`), without a JSON crate in xtask.
fn join_code(line: &str) -> Option<String> {
    let key = "\"join_code\":\"";
    let start = line.find(key)? + key.len();
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_owned())
}
