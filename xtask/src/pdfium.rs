//! Fetches `libpdfium` from the pinned PyPI wheel `pypdfium2` into `.cache/pdfium/`.
//!
//! The wheel is only a carrier: we take `pypdfium2_raw/<libpdfium>` and the licence texts out of
//! it and never install the Python package. The download goes through `python3 -m pip download`
//! (so the machine's pip configuration, proxies and certificates apply) and the zip is read with
//! Python's `zipfile`, which keeps xtask free of an archive crate. Each platform's wheel is pinned
//! by its SHA-256 (as PyPI lists it): a wheel that does not match is refused before anything is
//! taken out of it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The pinned wheel: pypdfium2 5.15.2 ships PDFium 8149.
const PACKAGE: &str = "pypdfium2==5.15.2";

/// What the cache's stamp file records; a different pin or platform fetches again.
fn stamp_text(platform: &Platform) -> String {
    format!("{PACKAGE} {} sha256:{} pdfium-8149\n", platform.pip_tag, platform.sha256)
}

/// The wheel for one host: pip's `--platform` tag, the wheel's SHA-256 and the library's name
/// inside and outside it.
#[derive(Debug)]
struct Platform {
    pip_tag: &'static str,
    sha256: &'static str,
    lib_name: &'static str,
}

fn host_platform() -> Result<Platform> {
    let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
    // The digests of pypdfium2 5.15.2's wheels.
    let (pip_tag, sha256) = match (os, arch) {
        ("linux", "x86_64") => (
            "manylinux_2_17_x86_64",
            "dc31aea5b0fb9fefc9b537a65f4113980b2c40798445736a7e6565bc85161e37",
        ),
        ("linux", "aarch64") => (
            "manylinux_2_17_aarch64",
            "dd46e93c0c3a73f6cea8489baff6d77a5d0759dd53fbbce0aeb49c91830176fc",
        ),
        // pip widens a macOS tag to every older macOS version, so 13.0 matches the wheel's minimum.
        ("macos", "aarch64") => (
            "macosx_13_0_arm64",
            "e71fe832e94421ac3c28d6a6ed4a9e61f22417089652d339f391c4ffc2a44c35",
        ),
        ("macos", "x86_64") => (
            "macosx_13_0_x86_64",
            "7f296a298074d76fb7c3d1ecb80d7097a96778bf0ad9c5c48a0170e56e2c6821",
        ),
        ("windows", "x86_64") => {
            ("win_amd64", "74d1bace34fb01c660d0b64344d5a4b7d276942b7c6623c88ab59ea21c5acfbd")
        }
        ("windows", "aarch64") => {
            ("win_arm64", "a20398367f188eb817be156bfd00077dcb5f8ad06c093849f3fa70b8087b4a87")
        }
        _ => bail!(
            "no PDFium wheel is pinned for {os}/{arch}: install libpdfium yourself and set \
             MAESTRAL_PDFIUM to its path"
        ),
    };
    let lib_name = match os {
        "windows" => "pdfium.dll",
        "macos" => "libpdfium.dylib",
        _ => "libpdfium.so",
    };
    Ok(Platform { pip_tag, sha256, lib_name })
}

/// The cache folder (git-ignored): `<root>/.cache/pdfium`.
pub fn cache_dir() -> PathBuf {
    crate::root().join(".cache").join("pdfium")
}

/// Makes sure PDFium is in the cache folder and returns the library's path.
///
/// Does nothing (no network, no Python) when the library and its stamp are already there.
pub fn ensure() -> Result<PathBuf> {
    let platform = host_platform()?;
    let dir = cache_dir();
    let lib = dir.join(platform.lib_name);
    let stamp = dir.join("STAMP");
    let wanted = stamp_text(&platform);
    if lib.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(lib);
    }

    eprintln!("xtask: fetching PDFium ({PACKAGE}, {}) into {}", platform.pip_tag, dir.display());
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let download = dir.join("download");
    if download.exists() {
        std::fs::remove_dir_all(&download)
            .with_context(|| format!("could not clear {}", download.display()))?;
    }
    std::fs::create_dir_all(&download)?;

    let python = python()?;
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--platform"])
        .arg(platform.pip_tag)
        .args(["--dest"])
        .arg(&download)
        .arg(PACKAGE);
    crate::status(&mut pip).with_context(|| {
        format!(
            "pip could not download {PACKAGE} for {}: check the network (or pip's index \
             settings), or install libpdfium yourself and set MAESTRAL_PDFIUM to its path",
            platform.pip_tag
        )
    })?;

    let wheel = std::fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .with_context(|| format!("pip left no wheel in {}", download.display()))?;

    extract(&python, &wheel, &dir, &platform)?;
    std::fs::write(&stamp, wanted)?;
    std::fs::remove_dir_all(&download).ok();
    if !lib.is_file() {
        bail!("the wheel {} held no {}", wheel.display(), platform.lib_name);
    }
    eprintln!("xtask: PDFium is ready: {}", lib.display());
    Ok(lib)
}

/// `python3` where it exists (and on Windows, `python`).
pub fn python() -> Result<String> {
    for candidate in ["python3", "python"] {
        let ok = Command::new(candidate)
            .args(["-c", "import pip, zipfile"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(candidate.to_string());
        }
    }
    bail!(
        "PDFium set-up needs Python 3 with pip (`python3 -m pip`): install them \
         (Debian: apt-get install python3-pip), or install libpdfium yourself and set \
         MAESTRAL_PDFIUM to its path"
    )
}

/// Takes the library and the licence texts out of the wheel (a zip) into `dir`.
///
/// The library is written under a temporary name and renamed, so an interrupted run never leaves
/// a half-written library that a later run would take for a good one.
fn extract(python: &str, wheel: &Path, dir: &Path, platform: &Platform) -> Result<()> {
    const SCRIPT: &str = r#"
import hashlib, os, sys, zipfile
wheel, out, lib, sha256 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
with open(wheel, "rb") as f:
    got = hashlib.sha256(f.read()).hexdigest()
if got != sha256:
    sys.exit("PDFium set-up stopped: " + os.path.basename(wheel) + " has SHA-256 " + got
             + ", not the pinned " + sha256 + " (a changed or tampered download)")
# The licences of this wheel only (a package ships this folder).
import shutil
shutil.rmtree(os.path.join(out, "licenses"), ignore_errors=True)
found = False
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if info.is_dir():
            continue
        if name == "pypdfium2_raw/" + lib:
            tmp = os.path.join(out, lib + ".partial")
            with z.open(info) as src, open(tmp, "wb") as dst:
                dst.write(src.read())
            os.replace(tmp, os.path.join(out, lib))
            found = True
        elif ".dist-info/licenses/" in name:
            rel = name.split(".dist-info/licenses/", 1)[1]
            target = os.path.join(out, "licenses", *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                dst.write(src.read())
if not found:
    sys.exit("no pypdfium2_raw/" + lib + " in " + wheel)
"#;
    // Not through `crate::status`: it would echo the whole script.
    let st = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(wheel)
        .arg(dir)
        .arg(platform.lib_name)
        .arg(platform.sha256)
        .status()
        .with_context(|| format!("could not start {python}"))?;
    if !st.success() {
        bail!("could not extract PDFium from {} ({st})", wheel.display());
    }
    Ok(())
}
