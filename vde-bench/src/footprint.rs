//! Footprint of the core on a microcontroller beside littlefs's published figure. The figure is
//! measured by the NOR issue's build (`scripts/footprint.sh` on `vde-firmware`) into
//! `vde-embedded/FOOTPRINT.md`; this section reads the rows of that file's "Against littlefs"
//! table that start with `vde` and prints each with its ratio to littlefs. When the file is
//! absent or has no such rows it says where the figure comes from.

use std::path::Path;

/// littlefs's published code size on Thumb, in KB.
const LITTLEFS_KB: f64 = 16.5;

/// `(what, "~31.8 KB (…)", 31.8)` for each `| vde… | ~N KB … |` row of the "Against littlefs"
/// table.
fn vde_rows(text: &str) -> Vec<(String, String, f64)> {
    let Some(at) = text.find("## Against littlefs") else {
        return Vec::new();
    };
    text[at..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let (what, figure) = (*cells.get(1)?, *cells.get(2)?);
            if !what.starts_with("vde") {
                return None;
            }
            let kb = figure
                .trim_start_matches('~')
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()?;
            Some((what.to_owned(), figure.to_owned(), kb))
        })
        .collect()
}

/// Prints the footprint section.
pub fn section() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vde-embedded/FOOTPRINT.md");
    let rows = std::fs::read_to_string(&path)
        .map(|t| vde_rows(&t))
        .unwrap_or_default();
    println!("## Footprint on thumbv7m (code size)");
    println!();
    println!("| what | vde | littlefs v2 (published) | vde ÷ littlefs |");
    println!("|---|---|---|---|");
    if rows.is_empty() {
        println!(
            "| code on Thumb | not measured in this tree: the figure comes from \
             `vde-embedded/FOOTPRINT.md` (`scripts/footprint.sh` on `vde-firmware`) | \
             ~{LITTLEFS_KB} KB | — |"
        );
    }
    for (what, figure, kb) in rows {
        println!(
            "| {what} | {figure} | ~{LITTLEFS_KB} KB | {:.2}× |",
            kb / LITTLEFS_KB
        );
    }
    println!();
    println!(
        "(vde figures read from `vde-embedded/FOOTPRINT.md`, which has the whole-firmware sizes, \
         the split by crate and static RAM; littlefs's is the figure its authors publish.)"
    );
    println!();
}

#[cfg(test)]
mod tests {
    use super::vde_rows;

    #[test]
    fn reads_the_vde_rows_of_the_littlefs_table() {
        let text = "# F\n\n| crate | s |\n|---|---:|\n| vde_nostd | 1 |\n\n## Against littlefs\n\n\
                    | | code |\n|---|---:|\n| littlefs v2.6 | ~16.5 KB |\n\
                    | vde core, `z` | ~31.8 KB (28 698 + 2 636 + 496) |\n\n## Static RAM\n\
                    | vde x | ~1 KB |\n";
        let rows = vde_rows(text);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "vde core, `z`");
        assert!((rows[0].2 - 31.8).abs() < 1e-9);
        assert!(vde_rows("no table here").is_empty());
    }
}
