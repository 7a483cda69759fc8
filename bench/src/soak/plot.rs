//! The soak's plot (`bench/soak.png`): RSS, open files, threads and p99 against time,
//! one panel each, drawn with plotters' bitmap backend into memory and written as a
//! PNG here (zlib through `flate2`, already in the build). Its text needs a TrueType
//! font, found at run time among the system's fonts (Debian's `fonts-dejavu-core`,
//! say); none is shipped with the repository.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{Run, Sample};

/// The family name the font found is registered under.
const FAMILY: &str = "sans-serif";
/// Fonts tried first, then any `.ttf` under the font directories.
const PREFERRED: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
];
const FONT_DIRS: &[&str] = &["/usr/share/fonts", "/usr/local/share/fonts"];

fn find_ttf(dir: &Path, depth: u32) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    if let Some(font) = entries
        .iter()
        .find(|p| p.extension().is_some_and(|x| x == "ttf"))
    {
        return Some(font.clone());
    }
    if depth == 0 {
        return None;
    }
    entries
        .iter()
        .filter(|p| p.is_dir())
        .find_map(|p| find_ttf(p, depth - 1))
}

/// Registers a system font as [`FAMILY`]; the path of the one found.
fn register_font() -> Result<PathBuf, String> {
    let path = PREFERRED
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| FONT_DIRS.iter().find_map(|d| find_ttf(Path::new(d), 4)))
        .ok_or("no TrueType font found under /usr/share/fonts (install fonts-dejavu-core)")?;
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| format!("{}: not a font plotters can read", path.display()))?;
    Ok(path)
}

struct Panel {
    title: &'static str,
    color: RGBColor,
    value: fn(&Sample) -> f64,
    /// A latency: the baseline sample before any load has none.
    latency: bool,
}

const PANELS: [Panel; 4] = [
    Panel {
        title: "gateway RSS (MiB)",
        color: RGBColor(31, 119, 180),
        value: |s| s.rss_kib as f64 / 1024.0,
        latency: false,
    },
    Panel {
        title: "open files, not sockets",
        color: RGBColor(44, 160, 44),
        value: |s| s.fds as f64,
        latency: false,
    },
    Panel {
        title: "threads",
        color: RGBColor(148, 103, 189),
        value: |s| s.threads as f64,
        latency: false,
    },
    Panel {
        title: "p99 latency of the interval's requests (ms); lookups alone dashed",
        color: RGBColor(214, 39, 40),
        value: |s| s.p99_us as f64 / 1000.0,
        latency: true,
    },
];

const WIDTH: u32 = 900;
const HEIGHT: u32 = 1000;

pub(super) fn draw(run: &Run, out: &Path) -> Result<(), String> {
    register_font()?;
    let mut pixels = vec![0_u8; (WIDTH * HEIGHT * 3) as usize];
    paint(run, out, &mut pixels)?;
    let png = encode_png(WIDTH, HEIGHT, &pixels).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(out, png).map_err(|e| format!("{}: {e}", out.display()))
}

/// A PNG of 8-bit RGB pixels: signature, IHDR, one IDAT (rows with filter 0, zlib),
/// IEND.
fn encode_png(width: u32, height: u32, rgb: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // 8 bits per channel, RGB, deflate, adaptive filtering, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for row in rgb.chunks(width as usize * 3) {
        zlib.write_all(&[0])?;
        zlib.write_all(row)?;
    }
    let data = zlib.finish()?;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &data);
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

fn paint(run: &Run, out: &Path, pixels: &mut [u8]) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", out.display());
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (top, body) = root.split_vertically(40);
    top.titled(
        &format!(
            "gateway soak, {} ({} min)",
            run.started,
            run.duration_s / 60
        ),
        (FAMILY, 22),
    )
    .map_err(|x| e(&x))?;
    let samples: Vec<&Sample> = run.samples.iter().collect();
    let end_min = samples.last().map_or(1.0, |s| s.t_s / 60.0).max(0.1);
    for (area, panel) in body.split_evenly((4, 1)).iter().zip(&PANELS) {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| !panel.latency || s.t_s > 0.0)
            .map(|s| (s.t_s / 60.0, (panel.value)(s)))
            .collect();
        let top = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, (FAMILY, 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end_min, 0.0..top)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("minutes")
            .label_style((FAMILY, 12))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|x| e(&x))?;
        chart
            .draw_series(LineSeries::new(points, panel.color.stroke_width(2)))
            .map_err(|x| e(&x))?;
        if panel.latency {
            let lookups = samples
                .iter()
                .filter(|s| s.t_s > 0.0)
                .map(|s| (s.t_s / 60.0, s.lookup_p99_us as f64 / 1000.0));
            chart
                .draw_series(DashedLineSeries::new(
                    lookups,
                    6,
                    4,
                    panel.color.mix(0.6).stroke_width(1),
                ))
                .map_err(|x| e(&x))?;
        }
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
