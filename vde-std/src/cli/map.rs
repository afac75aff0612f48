//! `vde map`: a picture of the block map, as PNG (drawn pixel by pixel with an 8x8 bitmap font)
//! or SVG (text).
//!
//! One cell per block, or per group of blocks when the image has more than [`MAX_CELLS`]
//! blocks, laid out in rows from the top left. Metadata areas and module regions are coloured
//! by owner; data blocks show free space, whole-block objects (alternating two blues so
//! neighbouring objects stay apart), shared blocks in a green shaded by how many of their slots
//! are taken, and allocated blocks that belong to nothing known. A cell covering several blocks
//! takes the colour of the metadata or region that fills most of it, else the average colour of
//! its data blocks, so fragmentation shows as mottled cells. A legend with counts sits below.

use std::fmt::Write as _;
use std::io::BufWriter;
use std::path::Path;
use std::process::ExitCode;

use vde_nostd::format::layout::Layout;
use vde_nostd::{modules, BlockDevice, Volume};
use vde_std::error::engine_message;
use vde_std::scan::{scan, Depth, Scan};
use vde_std::{Error, OverlayDevice, OwnedBuffers, TX_BLOCKS};

use super::util::{bar, human, img_err, opening, LockWait};
use super::{CliError, CliResult};

/// Most cells drawn; bigger images group blocks into cells.
pub const MAX_CELLS: u64 = 128 * 128;

type Rgb = [u8; 3];

const BACKGROUND: Rgb = [255, 255, 255];
const INK: Rgb = [33, 33, 33];
const GREY_INK: Rgb = [110, 110, 110];
const SUPER: Rgb = [33, 33, 33];
const WAL: Rgb = [255, 152, 0];
const BITMAP: Rgb = [103, 58, 183];
const DIRECTORY: Rgb = [121, 85, 72];
const FREE: Rgb = [232, 232, 232];
const EXTENT_A: Rgb = [21, 101, 192];
const EXTENT_B: Rgb = [100, 181, 246];
const OTHER: Rgb = [96, 125, 139];
const UNKNOWN: Rgb = [229, 57, 53];
const SHARED_EMPTY: Rgb = [165, 214, 167];
const SHARED_FULL: Rgb = [27, 94, 32];
/// Region colours by module bit.
const MODULE: [Rgb; 8] = [
    [255, 214, 0],   // objects: yellow
    [236, 64, 122],  // snapshots: pink
    [0, 188, 212],   // compression: cyan
    [141, 110, 99],  // encryption: light brown
    [205, 220, 57],  // dedup: lime
    [186, 104, 200], // xattr: orchid
    [0, 137, 123],   // integrity: teal
    [255, 112, 67],  // replication: coral
];

fn module_colour(bit: u8) -> Rgb {
    MODULE.get(usize::from(bit)).copied().unwrap_or(OTHER)
}

fn mix(a: Rgb, b: Rgb, t: f64) -> Rgb {
    let t = t.clamp(0.0, 1.0);
    let f = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * t).round() as u8;
    [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2])]
}

/// What a block is.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Super,
    Wal,
    Bitmap,
    Directory,
    Region(u8),
    Free,
    Extent(bool),
    Shared(f64),
    Other,
    Unknown,
}

/// Legend classes: 0..4 metadata, 4..12 module regions, then data kinds.
const CLASSES: usize = 17;
const C_FREE: usize = 12;
const C_EXTENT: usize = 13;
const C_SHARED: usize = 14;
const C_OTHER: usize = 15;
const C_UNKNOWN: usize = 16;

impl Kind {
    fn class(self) -> usize {
        match self {
            Kind::Super => 0,
            Kind::Wal => 1,
            Kind::Bitmap => 2,
            Kind::Directory => 3,
            Kind::Region(b) => 4 + usize::from(b.min(7)),
            Kind::Free => C_FREE,
            Kind::Extent(_) => C_EXTENT,
            Kind::Shared(_) => C_SHARED,
            Kind::Other => C_OTHER,
            Kind::Unknown => C_UNKNOWN,
        }
    }
    fn colour(self) -> Rgb {
        match self {
            Kind::Super => SUPER,
            Kind::Wal => WAL,
            Kind::Bitmap => BITMAP,
            Kind::Directory => DIRECTORY,
            Kind::Region(b) => module_colour(b),
            Kind::Free => FREE,
            Kind::Extent(false) => EXTENT_A,
            Kind::Extent(true) => EXTENT_B,
            Kind::Shared(f) => mix(SHARED_EMPTY, SHARED_FULL, f),
            Kind::Other => OTHER,
            Kind::Unknown => UNKNOWN,
        }
    }
}

/// The cells and the legend counts.
struct BlockMap {
    cells: Vec<Rgb>,
    per_cell: u64,
    counts: [u64; CLASSES],
    extents: usize,
    shared_fill: f64,
}

fn build(s: &Scan, l: &Layout, progress: &mut dyn FnMut(u64)) -> BlockMap {
    let n = l.block_count;
    let per_cell = n.div_ceil(MAX_CELLS).max(1);
    let mut spans: Vec<(u64, u64, Kind)> = Vec::new();
    for r in &s.regions {
        spans.push((r.extent.start.0, r.extent.len, Kind::Region(r.module)));
    }
    for (i, e) in s.extents.iter().enumerate() {
        spans.push((e.start, e.blocks, Kind::Extent(i % 2 == 1)));
    }
    let mut fill_sum = 0.0;
    for sh in &s.shared {
        let f = sh.used_units as f64 / sh.units.max(1) as f64;
        fill_sum += f;
        spans.push((sh.block, 1, Kind::Shared(f)));
    }
    spans.sort_by_key(|x| x.0);
    let mut cells = Vec::with_capacity(usize::try_from(n.div_ceil(per_cell)).unwrap_or(0));
    let mut counts = [0u64; CLASSES];
    let mut cell_counts = [0u64; CLASSES];
    let mut data_sum = [0f64; 3];
    let mut data_n = 0u64;
    let mut at = 0usize;
    for b in 0..n {
        if b % 65536 == 0 {
            progress(b);
        }
        let kind = if b < 2 {
            Kind::Super
        } else if b < l.bitmap_start {
            Kind::Wal
        } else if b < l.regdir {
            Kind::Bitmap
        } else if b < l.data_start {
            Kind::Directory
        } else {
            while spans
                .get(at)
                .is_some_and(|(st, len, _)| st.saturating_add(*len) <= b)
            {
                at += 1;
            }
            match spans.get(at) {
                Some((st, _, k)) if *st <= b => *k,
                _ => match s.bitmap.allocated(b) {
                    Some(true) => Kind::Other,
                    Some(false) => Kind::Free,
                    None => Kind::Unknown,
                },
            }
        };
        let c = kind.class();
        if let Some(x) = counts.get_mut(c) {
            *x += 1;
        }
        if let Some(x) = cell_counts.get_mut(c) {
            *x += 1;
        }
        if c >= C_FREE {
            let col = kind.colour();
            for (s, v) in data_sum.iter_mut().zip(col) {
                *s += f64::from(v);
            }
            data_n += 1;
        }
        if (b + 1) % per_cell == 0 || b + 1 == n {
            cells.push(cell_colour(&cell_counts, data_sum, data_n));
            cell_counts = [0; CLASSES];
            data_sum = [0.0; 3];
            data_n = 0;
        }
    }
    BlockMap {
        cells,
        per_cell,
        counts,
        extents: s.extents.len(),
        shared_fill: if s.shared.is_empty() {
            0.0
        } else {
            fill_sum / s.shared.len() as f64
        },
    }
}

fn cell_colour(counts: &[u64; CLASSES], sum: [f64; 3], n: u64) -> Rgb {
    let (best, most) = counts
        .iter()
        .take(C_FREE)
        .enumerate()
        .max_by_key(|(_, c)| **c)
        .map_or((0, 0), |(i, c)| (i, *c));
    if most > n || n == 0 {
        return match best {
            0 => SUPER,
            1 => WAL,
            2 => BITMAP,
            3 => DIRECTORY,
            i => module_colour((i - 4) as u8),
        };
    }
    let d = n as f64;
    [
        (sum[0] / d).round() as u8,
        (sum[1] / d).round() as u8,
        (sum[2] / d).round() as u8,
    ]
}

/// Where things sit in the picture.
struct Geometry {
    cols: u64,
    rows: u64,
    cell: u32,
    grid_x: u32,
    grid_y: u32,
    width: u32,
    height: u32,
    legend_y: u32,
}

const MARGIN: u32 = 16;
const AXIS: u32 = 72;
const LEGEND_ROW: u32 = 26;
const LEGEND_COL: u32 = 470;

fn geometry(cells: u64, legend_rows: u32) -> Geometry {
    let (cols, cell) = if cells <= 512 {
        (32, 28)
    } else if cells <= 4096 {
        (64, 14)
    } else {
        (128, 7)
    };
    let cols = cols.min(cells.max(1));
    let rows = cells.div_ceil(cols).max(1);
    let grid_x = MARGIN + AXIS;
    let grid_y = MARGIN + 48;
    let grid_w = (cols as u32) * cell;
    let grid_h = (rows as u32) * cell;
    let width = (grid_x + grid_w + MARGIN).max(MARGIN * 2 + LEGEND_COL * 2);
    let legend_y = grid_y + grid_h + 20;
    let height = legend_y + legend_rows * LEGEND_ROW + 40 + MARGIN;
    Geometry {
        cols,
        rows,
        cell,
        grid_x,
        grid_y,
        width,
        height,
        legend_y,
    }
}

/// Something to draw on.
trait Canvas {
    fn rect(&mut self, x: u32, y: u32, w: u32, h: u32, c: Rgb);
    fn text(&mut self, x: u32, y: u32, scale: u32, s: &str, c: Rgb);
}

struct Raster {
    w: u32,
    h: u32,
    px: Vec<u8>,
}

impl Raster {
    fn new(w: u32, h: u32) -> Raster {
        let mut px = Vec::with_capacity((w as usize) * (h as usize) * 3);
        for _ in 0..(w as usize) * (h as usize) {
            px.extend_from_slice(&BACKGROUND);
        }
        Raster { w, h, px }
    }
    fn put(&mut self, x: u32, y: u32, c: Rgb) {
        if x >= self.w || y >= self.h {
            return;
        }
        let at = ((y as usize) * (self.w as usize) + x as usize) * 3;
        if let Some(p) = self.px.get_mut(at..at + 3) {
            p.copy_from_slice(&c);
        }
    }
}

impl Canvas for Raster {
    fn rect(&mut self, x: u32, y: u32, w: u32, h: u32, c: Rgb) {
        for yy in y..y.saturating_add(h).min(self.h) {
            for xx in x..x.saturating_add(w).min(self.w) {
                self.put(xx, yy, c);
            }
        }
    }
    fn text(&mut self, x: u32, y: u32, scale: u32, s: &str, c: Rgb) {
        let mut cx = x;
        for ch in s.chars() {
            let code = if ch.is_ascii() {
                ch as usize
            } else {
                b'?' as usize
            };
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(code)
                .copied()
                .unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8u32 {
                    if bits & (1 << col) != 0 {
                        self.rect(cx + col * scale, y + row as u32 * scale, scale, scale, c);
                    }
                }
            }
            cx += 8 * scale;
        }
    }
}

struct Svg {
    body: String,
}

fn css(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Canvas for Svg {
    fn rect(&mut self, x: u32, y: u32, w: u32, h: u32, c: Rgb) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{}"/>"#,
            css(c)
        );
    }
    fn text(&mut self, x: u32, y: u32, scale: u32, s: &str, c: Rgb) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x}" y="{}" font-family="monospace" font-size="{}" fill="{}">{}</text>"#,
            y + 7 * scale,
            11 * scale,
            css(c),
            xml_escape(s)
        );
    }
}

fn short_number(v: u64) -> String {
    if v < 100_000_000 {
        v.to_string()
    } else if v < 100_000_000_000 {
        format!("{}M", v / 1_000_000)
    } else {
        format!("{}G", v / 1_000_000_000)
    }
}

fn fit(s: &str, chars: usize) -> String {
    if s.chars().count() <= chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(chars.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

fn legend(m: &BlockMap, l: &Layout) -> Vec<(Rgb, String)> {
    let c = |i: usize| m.counts.get(i).copied().unwrap_or(0);
    let mut v = vec![
        (SUPER, format!("superblocks: {}", c(0))),
        (WAL, format!("WAL: {} (2 hdr + {})", c(1), l.wal_blocks)),
        (BITMAP, format!("bitmap: {}", c(2))),
        (DIRECTORY, format!("region dir+table: {}", c(3))),
    ];
    for m_ in modules::CATALOGUE {
        let k = c(4 + usize::from(m_.bit.min(7)));
        if k > 0 {
            v.push((module_colour(m_.bit), format!("{} region: {k}", m_.name)));
        }
    }
    v.push((FREE, format!("free: {}", c(C_FREE))));
    v.push((
        EXTENT_A,
        format!("{} extent obj: {} blk", m.extents, c(C_EXTENT)),
    ));
    v.push((
        mix(SHARED_EMPTY, SHARED_FULL, m.shared_fill),
        format!(
            "shared: {} ({:.0}% full)",
            c(C_SHARED),
            m.shared_fill * 100.0
        ),
    ));
    if c(C_OTHER) > 0 {
        v.push((OTHER, format!("other allocated: {}", c(C_OTHER))));
    }
    if c(C_UNKNOWN) > 0 {
        v.push((UNKNOWN, format!("bitmap damaged: {}", c(C_UNKNOWN))));
    }
    v
}

fn draw(canvas: &mut dyn Canvas, g: &Geometry, m: &BlockMap, l: &Layout, image: &Path) {
    let name = image.file_name().map_or_else(
        || image.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    canvas.text(
        MARGIN,
        MARGIN,
        2,
        &fit(&format!("vde block map: {name}"), 60),
        INK,
    );
    let bytes = l.block_count.saturating_mul(u64::from(l.block_size));
    let sub = format!(
        "{} blocks x {} B ({}); 1 cell = {} block{}; {} cells per row, block 0 top left",
        l.block_count,
        l.block_size,
        human(bytes),
        m.per_cell,
        if m.per_cell == 1 { "" } else { "s" },
        g.cols
    );
    canvas.text(
        MARGIN,
        MARGIN + 26,
        1,
        &fit(&sub, ((g.width - 2 * MARGIN) / 8) as usize),
        GREY_INK,
    );
    let gap = u32::from(g.cell >= 5);
    let label_every = (32 / g.cell).max(1) as u64;
    for (i, col) in m.cells.iter().enumerate() {
        let i = i as u64;
        let (r, c) = (i / g.cols, i % g.cols);
        let x = g.grid_x + c as u32 * g.cell;
        let y = g.grid_y + r as u32 * g.cell;
        canvas.rect(x, y, g.cell - gap, g.cell - gap, *col);
    }
    for r in (0..g.rows).step_by(label_every as usize) {
        let first = r * g.cols * m.per_cell;
        let s = short_number(first);
        let w = s.len() as u32 * 8;
        let y = g.grid_y + r as u32 * g.cell + (g.cell.saturating_sub(8)) / 2;
        canvas.text(g.grid_x.saturating_sub(w + 6), y, 1, &s, GREY_INK);
    }
    for (i, (col, label)) in legend(m, l).iter().enumerate() {
        let i = i as u32;
        let x = MARGIN + (i % 2) * LEGEND_COL;
        let y = g.legend_y + (i / 2) * LEGEND_ROW;
        canvas.rect(x, y, 18, 18, *col);
        if *col == EXTENT_A {
            // Neighbouring objects alternate between the two blues.
            canvas.rect(x + 9, y, 9, 18, EXTENT_B);
        }
        canvas.text(x + 26, y + 1, 2, &fit(label, 27), INK);
    }
    // Shared-block shading scale.
    let rows = (legend(m, l).len() as u32).div_ceil(2);
    let y = g.legend_y + rows * LEGEND_ROW + 10;
    canvas.text(MARGIN, y + 4, 1, "shared block slots used: 0%", GREY_INK);
    let bx = MARGIN + 27 * 8 + 8;
    for k in 0..200u32 {
        canvas.rect(
            bx + k,
            y,
            1,
            16,
            mix(SHARED_EMPTY, SHARED_FULL, f64::from(k) / 199.0),
        );
    }
    canvas.text(bx + 208, y + 4, 1, "100%", GREY_INK);
}

enum Format {
    Png,
    Svg,
}

/// `vde map`.
pub fn map(image: &Path, output: &Path, wait: LockWait) -> CliResult {
    let fmt = match output
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("png") => Format::Png,
        Some("svg") => Format::Svg,
        _ => {
            return Err(CliError::new(format!(
                "{}: the map must be a .png or .svg file",
                output.display()
            )))
        }
    };
    let mut dev = opening(image, wait, || OverlayDevice::open(image)).map_err(img_err(image))?;
    let n = dev.block_count();
    // WAL recovery into the overlay, so the map shows what the next mount will see.
    {
        let mut mem = OwnedBuffers::for_device(&dev);
        if let Err(e) = Volume::<&mut OverlayDevice, TX_BLOCKS>::mount(&mut dev, mem.bufs()) {
            errln!(
                "vde: warning: {}: {}; drawing the image as it is",
                image.display(),
                engine_message(&e.into())
            );
        }
    }
    let pb = bar(n * 2, "mapping");
    let s = scan(&mut dev, Depth::Headers, &mut |d, _| pb.set_position(d))
        .map_err(|e| img_err(image)(Error::Io(e)))?;
    let Some(layout) = s.layout else {
        pb.finish_and_clear();
        return Err(CliError::new(format!(
            "{}: no usable superblock to draw from",
            image.display()
        )));
    };
    let m = build(&s, &layout, &mut |d| pb.set_position(n + d));
    pb.finish_and_clear();
    let g = geometry(
        m.cells.len() as u64,
        (legend(&m, &layout).len() as u32).div_ceil(2),
    );
    let out_err = |e: std::io::Error| {
        CliError::new(format!(
            "{}: {}",
            output.display(),
            vde_std::error::io_message(&e)
        ))
    };
    match fmt {
        Format::Png => {
            let mut r = Raster::new(g.width, g.height);
            draw(&mut r, &g, &m, &layout, image);
            let file = std::fs::File::create(output).map_err(out_err)?;
            let mut enc = png::Encoder::new(BufWriter::new(file), g.width, g.height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()
                .and_then(|mut w| w.write_image_data(&r.px))
                .map_err(|e| CliError::new(format!("{}: {e}", output.display())))?;
        }
        Format::Svg => {
            let mut s = Svg {
                body: String::new(),
            };
            s.rect(0, 0, g.width, g.height, BACKGROUND);
            draw(&mut s, &g, &m, &layout, image);
            let doc = format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\">\n{}</svg>\n",
                g.width, g.height, g.width, g.height, s.body
            );
            std::fs::write(output, doc).map_err(out_err)?;
        }
    }
    outln!(
        "wrote {}: {} blocks, 1 cell = {} block(s), {} x {} cells, {} x {} pixels",
        output.display(),
        layout.block_count,
        m.per_cell,
        g.cols,
        g.rows,
        g.width,
        g.height
    );
    Ok(ExitCode::SUCCESS)
}
