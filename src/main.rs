//! Maestral: the app. The window arrives with its own issue; for now the command line offers
//! `maestral render …` (rasterize one page exactly as the app will) and the library listing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use maestral_score::{
    Library, LibraryEntry, PixelSize, RenderConfig, RenderEvent, RenderRequest, RenderThread,
    ScanEvent, ScoreError, Song,
};

const USAGE: &str = "\
usage:
  maestral [SCORE_OR_FOLDER]       list the library (default: the bundled demo scores)
  maestral render SCORE --page N --width W --height H --out FILE.png
                                   rasterize one page (N counts from 0), fitted into W×H
                                   keeping its aspect ratio, as the app shows it
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("render") => render(&args[1..]),
        Some(flag) if flag.starts_with("--") => {
            eprintln!(
                "maestral: `{flag}` is not available yet (the app window and headless mode come later)"
            );
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
        Some(path) => list(Path::new(path)),
        None => list(&demo_library()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, ending with what to do (the library's messages say it).
            match error.downcast_ref::<ScoreError>() {
                Some(score_error) => eprintln!("maestral: {score_error}"),
                None => eprintln!("maestral: {error:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// The bundled demo scores: `assets/scores` in the working folder, else in the source tree.
fn demo_library() -> PathBuf {
    let here = Path::new("assets/scores");
    if here.is_dir() {
        return here.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/scores")
}

fn list(root: &Path) -> Result<()> {
    maestral_score::pdfium::bind()?;
    let scan = Library::scan(root);
    let mut library = None;
    for event in scan.events().iter() {
        match event {
            ScanEvent::Started { total } if total > 20 => {
                eprintln!("scanning {total} PDFs under {}…", root.display())
            }
            ScanEvent::Progress { done, total } if total > 20 && done % 20 == 0 => {
                eprintln!("  {done}/{total}")
            }
            ScanEvent::Finished(found) => library = Some(found),
            ScanEvent::Failed(error) => return Err(error.into()),
            _ => {}
        }
    }
    let library = library.context("the library scan stopped early")?;
    let songs = library.songs().count();
    println!(
        "{}: {songs} song{}, {} unreadable",
        root.display(),
        if songs == 1 { "" } else { "s" },
        library.unreadable().count()
    );
    for entry in &library.entries {
        match entry {
            LibraryEntry::Song(song) => {
                let size = song
                    .page_sizes
                    .first()
                    .map_or_else(String::new, |s| format!("{:.0}×{:.0} pt", s.width, s.height));
                println!(
                    "  {:<28} {:>3} page{}  {:<14} {}  {}",
                    song.title,
                    song.page_count,
                    if song.page_count == 1 { " " } else { "s" },
                    size,
                    &song.id.to_hex()[..12],
                    relative(&song.path, root).display()
                );
            }
            // The reason names the file.
            LibraryEntry::Unreadable { reason, .. } => println!("  unreadable: {reason}"),
        }
    }
    Ok(())
}

fn relative<'a>(path: &'a Path, root: &Path) -> &'a Path {
    path.strip_prefix(root).ok().filter(|p| !p.as_os_str().is_empty()).unwrap_or(path)
}

struct RenderArgs {
    score: PathBuf,
    page: u32,
    width: u32,
    height: u32,
    out: PathBuf,
}

fn parse_render_args(args: &[String]) -> Result<RenderArgs> {
    let mut score = None;
    let (mut page, mut width, mut height, mut out) = (None, None, None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next().with_context(|| format!("{name} needs a value\n{USAGE}")).cloned()
        };
        let number = |name: &str, v: String| -> Result<u32> {
            v.parse().with_context(|| format!("{name} takes a whole number, not {v:?}"))
        };
        match arg.as_str() {
            "--page" => page = Some(number("--page", value("--page")?)?),
            "--width" => width = Some(number("--width", value("--width")?)?),
            "--height" => height = Some(number("--height", value("--height")?)?),
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            other if other.starts_with("--") => bail!("unknown option {other}\n{USAGE}"),
            other if score.is_none() => score = Some(PathBuf::from(other)),
            other => bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    let missing = |what: &str| format!("`maestral render` needs {what}\n{USAGE}");
    Ok(RenderArgs {
        score: score.with_context(|| missing("a SCORE"))?,
        page: page.with_context(|| missing("--page N"))?,
        width: width.with_context(|| missing("--width W"))?,
        height: height.with_context(|| missing("--height H"))?,
        out: out.with_context(|| missing("--out FILE.png"))?,
    })
}

/// Rasterizes one page through the render thread, exactly as the app asks for its pages.
fn render(args: &[String]) -> Result<()> {
    let args = parse_render_args(args)?;
    if !args.out.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")) {
        bail!("--out must name a .png file, not {}", args.out.display());
    }
    let (renderer, events) = RenderThread::spawn(RenderConfig::default())?;
    let song = Song::open(&args.score)?;
    renderer.add_song(&song);
    let request =
        RenderRequest::visible(song.id, args.page, PixelSize::new(args.width, args.height));
    renderer.request(request);
    let bitmap = loop {
        let event = events
            .recv_timeout(Duration::from_secs(300))
            .map_err(|_| ScoreError::RenderThreadGone)?;
        match event {
            RenderEvent::Rendered { request: r, bitmap, .. } if r.key() == request.key() => {
                break bitmap;
            }
            RenderEvent::Failed { request: r, error } if r.key() == request.key() => {
                return Err(error.into());
            }
            _ => {}
        }
    };
    image::save_buffer(
        &args.out,
        bitmap.pixels(),
        bitmap.width(),
        bitmap.height(),
        image::ExtendedColorType::Rgba8,
    )
    .with_context(|| format!("could not write {}", args.out.display()))?;
    eprintln!(
        "{}: page {} of {} ({}), {}×{} px → {}",
        song.title,
        args.page,
        song.page_count,
        &song.id.to_hex()[..12],
        bitmap.width(),
        bitmap.height(),
        args.out.display()
    );
    Ok(())
}
