//! The command-line tools beside the app: `maestral render` (one page, rasterized exactly as the
//! app asks for it: the reference the window test compares screenshots against) and
//! `maestral list`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use maestral_score::{
    Library, LibraryEntry, PixelSize, RenderConfig, RenderEvent, RenderRequest, RenderThread,
    ScanEvent, ScoreError, Song,
};

use crate::cli::RenderArgs;

/// Lists the scores under `root`, one line each.
pub fn list(root: &Path) -> Result<()> {
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
                    short_id(&song.id),
                    relative(&song.path, root).display()
                );
            }
            // The reason names the file.
            LibraryEntry::Unreadable { reason, .. } => println!("  unreadable: {reason}"),
        }
    }
    Ok(())
}

/// The first 12 digits of a song id: enough to tell songs apart in a listing.
fn short_id(id: &maestral_score::SongId) -> &str {
    id.as_str().get(..12).unwrap_or(id.as_str())
}

fn relative<'a>(path: &'a Path, root: &Path) -> &'a Path {
    path.strip_prefix(root).ok().filter(|p| !p.as_os_str().is_empty()).unwrap_or(path)
}

/// Rasterizes one page through the render thread, exactly as the app asks for its pages.
pub fn render(args: &RenderArgs) -> Result<()> {
    if !args.out.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")) {
        bail!("--out must name a .png file, not {}", args.out.display());
    }
    let (renderer, events) = RenderThread::spawn(RenderConfig::default())?;
    let song = Song::open(&args.score)?;
    renderer.add_song(&song);
    let request =
        RenderRequest::visible(song.id.clone(), args.page, PixelSize::new(args.width, args.height));
    renderer.request(request.clone());
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
    let mut pixels = bitmap.pixels().to_vec();
    if args.dark {
        crate::score::invert_rgb(&mut pixels);
    }
    image::save_buffer(
        &args.out,
        &pixels,
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
        short_id(&song.id),
        bitmap.width(),
        bitmap.height(),
        args.out.display()
    );
    Ok(())
}
