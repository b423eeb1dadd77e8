//! What tanto writes around a vision answer, in mlx-knife's format so that
//! clients and scripts built for it keep working: the collapsible image
//! metadata table in front of the answer (ids, hashed names, original names,
//! GPS, date, camera) and the per-image context lines in front of the prompt.
//!
//! One deliberate difference: the capture date is read from DateTimeOriginal
//! where cameras write it (the Exif sub-IFD); mlx-knife looks only in IFD0
//! and so misses it on ordinary camera files (ADR 012).

use super::image::ExifInfo;

/// One row of the table.
#[derive(Debug, Clone)]
pub struct ImageRow<'a> {
    /// Global number (1-based, stable across a conversation).
    pub id: usize,
    /// First 8 hex digits of the image's sha256.
    pub short_hash: &'a str,
    /// The name the user gave it (a path's last component, or `-`).
    pub original: &'a str,
    pub exif: Option<&'a ExifInfo>,
}

/// The image was one of several runs (`--chunk`): `(chunk_index, chunks, first_id, last_id)`.
pub type ChunkInfo = (usize, usize, usize, usize);

fn gps(lat: f64, lon: f64) -> String {
    let ns = if lat >= 0.0 { 'N' } else { 'S' };
    let ew = if lon >= 0.0 { 'E' } else { 'W' };
    format!("{:.4}°{ns}, {:.4}°{ew}", lat.abs(), lon.abs())
}

fn date_of(iso: &str) -> &str {
    iso.split('T').next().unwrap_or(iso)
}

/// The `<details>` block that precedes the answer. `exif_enabled` false
/// (`--no-exif`) leaves only the id and hashed-name columns.
pub fn metadata_table(
    rows: &[ImageRow<'_>],
    exif_enabled: bool,
    chunk: Option<ChunkInfo>,
) -> String {
    let n = rows.len();
    let summary = match chunk {
        Some((b, total, s, e)) => format!("📸 Chunk {b}/{total}: Images {s}-{e}"),
        None => format!(
            "📸 Image Metadata ({n} image{})",
            if n == 1 { "" } else { "s" }
        ),
    };
    let (header, sep) = if exif_enabled {
        (
            "| Image | Filename | Original | Location | Date | Camera |",
            "|-------|----------|----------|----------|------|--------|",
        )
    } else {
        ("| Image | Filename |", "|-------|----------|")
    };
    let mut s = format!(
        "<details>\n<summary>{summary}</summary>\n\n<!-- mlxk:filenames -->\n{header}\n{sep}\n"
    );
    for r in rows {
        s.push_str(&format!("| {} | image_{}.jpeg", r.id, r.short_hash));
        if exif_enabled {
            s.push_str(&format!(" | {}", r.original));
            match r.exif {
                Some(e) => {
                    match (e.gps_lat, e.gps_lon) {
                        (Some(la), Some(lo)) => s.push_str(&format!(" | 📍 {}", gps(la, lo))),
                        _ => s.push_str(" | -"),
                    }
                    match &e.datetime {
                        Some(d) => s.push_str(&format!(" | 📅 {}", date_of(d))),
                        None => s.push_str(" | -"),
                    }
                    match &e.camera {
                        Some(c) => s.push_str(&format!(" | {c}")),
                        None => s.push_str(" | -"),
                    }
                }
                None => s.push_str(" | - | - | -"),
            }
        }
        s.push_str(" |\n");
    }
    s.push_str("\n</details>\n\n");
    s
}

/// The context lines put in front of the user's prompt: one
/// `[Image k | GPS: … | Date: … | Camera: …]` line per image (the `Image k`
/// part only when several images go to the model at once, numbered within
/// the call), then a blank line. Unchanged when there is nothing to say.
pub fn augment_prompt(prompt: &str, exifs: &[Option<&ExifInfo>]) -> String {
    let many = exifs.len() > 1;
    let mut lines = Vec::new();
    for (k, e) in exifs.iter().enumerate() {
        let mut parts = Vec::new();
        if many {
            parts.push(format!("Image {}", k + 1));
        }
        if let Some(e) = e {
            if let (Some(la), Some(lo)) = (e.gps_lat, e.gps_lon) {
                parts.push(format!("GPS: {}", gps(la, lo)));
            }
            if let Some(d) = &e.datetime {
                parts.push(format!("Date: {}", d.get(..10).unwrap_or(d)));
            }
            if let Some(c) = &e.camera {
                let c = c.replace(['(', ')'], "").replace("generation", "gen");
                parts.push(format!("Camera: {c}"));
            }
        }
        if !parts.is_empty() {
            lines.push(format!("[{}]", parts.join(" | ")));
        }
    }
    if lines.is_empty() {
        prompt.to_string()
    } else {
        format!("{}\n\n{prompt}", lines.join("\n"))
    }
}

/// Image numbers an earlier answer's table assigned (`| 3 | image_ab12cd34.`),
/// so a conversation keeps numbering images the same way.
pub fn ids_from_table(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    if !text.contains("<!-- mlxk:filenames -->") {
        return out;
    }
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix('|') else {
            continue;
        };
        let mut cells = rest.split('|').map(str::trim);
        let (Some(num), Some(name)) = (cells.next(), cells.next()) else {
            continue;
        };
        let Ok(id) = num.parse::<usize>() else {
            continue;
        };
        let Some(h) = name.strip_prefix("image_") else {
            continue;
        };
        let hash: String = h.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        if hash.len() == 8 && h[8..].starts_with('.') {
            out.push((id, hash.to_ascii_lowercase()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exif(lat: Option<f64>, lon: Option<f64>, dt: Option<&str>, cam: Option<&str>) -> ExifInfo {
        ExifInfo {
            gps_lat: lat,
            gps_lon: lon,
            datetime: dt.map(String::from),
            camera: cam.map(String::from),
        }
    }

    #[test]
    fn table_matches_mlx_knife_byte_for_byte() {
        let e = exif(
            Some(32.79),
            Some(-16.92),
            Some("2023-12-06T12:19:21"),
            Some("iPhone SE (3rd generation)"),
        );
        let rows = [
            ImageRow {
                id: 1,
                short_hash: "0a1b2c3d",
                original: "beach.jpg",
                exif: Some(&e),
            },
            ImageRow {
                id: 2,
                short_hash: "ffee0011",
                original: "plain.png",
                exif: None,
            },
        ];
        assert_eq!(
            metadata_table(&rows, true, None),
            "<details>\n<summary>📸 Image Metadata (2 images)</summary>\n\n<!-- mlxk:filenames -->\n\
             | Image | Filename | Original | Location | Date | Camera |\n\
             |-------|----------|----------|----------|------|--------|\n\
             | 1 | image_0a1b2c3d.jpeg | beach.jpg | 📍 32.7900°N, 16.9200°W | 📅 2023-12-06 | iPhone SE (3rd generation) |\n\
             | 2 | image_ffee0011.jpeg | plain.png | - | - | - |\n\n</details>\n\n"
        );
        assert_eq!(
            metadata_table(&rows[1..], false, None),
            "<details>\n<summary>📸 Image Metadata (1 image)</summary>\n\n<!-- mlxk:filenames -->\n\
             | Image | Filename |\n|-------|----------|\n| 2 | image_ffee0011.jpeg |\n\n</details>\n\n"
        );
        assert!(metadata_table(&rows, true, Some((2, 3, 3, 4)))
            .contains("<summary>📸 Chunk 2/3: Images 3-4</summary>"));
        let s = exif(Some(-10.5), Some(20.3), None, None);
        let r = [ImageRow {
            id: 1,
            short_hash: "00000000",
            original: "x",
            exif: Some(&s),
        }];
        assert!(metadata_table(&r, true, None).contains("| 📍 10.5000°S, 20.3000°E | - | - |"));
    }

    #[test]
    fn prompt_lines_follow_mlx_knife() {
        let e = exif(
            Some(32.79),
            Some(-16.92),
            Some("2023-12-06T12:19:21"),
            Some("Apple iPhone SE (3rd generation)"),
        );
        assert_eq!(
            augment_prompt("Describe.", &[Some(&e)]),
            "[GPS: 32.7900°N, 16.9200°W | Date: 2023-12-06 | Camera: Apple iPhone SE 3rd gen]\n\nDescribe."
        );
        assert_eq!(augment_prompt("Describe.", &[None]), "Describe.");
        assert_eq!(
            augment_prompt("Compare.", &[None, Some(&e)]),
            "[Image 1]\n[Image 2 | GPS: 32.7900°N, 16.9200°W | Date: 2023-12-06 | Camera: Apple iPhone SE 3rd gen]\n\nCompare."
        );
    }

    #[test]
    fn table_ids_parse_back() {
        let e = exif(None, None, None, None);
        let rows = [
            ImageRow {
                id: 4,
                short_hash: "0a1b2c3d",
                original: "a",
                exif: Some(&e),
            },
            ImageRow {
                id: 7,
                short_hash: "99887766",
                original: "b",
                exif: None,
            },
        ];
        let t = metadata_table(&rows, true, None) + "answer | 9 | image_zz.";
        assert_eq!(
            ids_from_table(&t),
            vec![(4, "0a1b2c3d".to_string()), (7, "99887766".to_string())]
        );
        assert!(
            ids_from_table("| 1 | image_0a1b2c3d.jpeg |").is_empty(),
            "no marker, no ids"
        );
    }
}
