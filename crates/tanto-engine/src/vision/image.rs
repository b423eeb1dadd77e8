//! Image input: bytes (PNG, JPEG, GIF, WebP) decoded to 8-bit RGB, turned
//! upright by the EXIF orientation (as `transformers.image_utils.load_image`
//! does), with the EXIF facts tanto shows (GPS, capture date, camera) and a
//! content id (`sha256` of the bytes).
//!
//! Alpha is composited over white, as the Hugging Face processors'
//! `convert_to_rgb` does; grayscale and palette images become RGB before any
//! resizing (the processors resize them in palette mode, with nearest
//! neighbour; tanto keeps the model's own filter).

use sha2::{Digest, Sha256};
use tanto_core::error::ErrorType;

use super::resample::Rgb8;

/// Why an image could not be read: always the request's fault (400, 413, 415).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    #[error("the image is empty")]
    Empty,
    #[error("the image is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("the image is {width}x{height} pixels, over the {limit}-pixel limit")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("unsupported image format: {0}; send PNG, JPEG, GIF or WebP")]
    Unsupported(String),
    #[error("could not decode the image: {0}")]
    Corrupt(String),
}

impl ImageError {
    pub fn error_type(&self) -> ErrorType {
        match self {
            ImageError::TooLarge { .. } | ImageError::TooManyPixels { .. } => {
                ErrorType::PayloadTooLarge
            }
            ImageError::Unsupported(_) => ErrorType::UnsupportedMediaType,
            ImageError::Empty | ImageError::Corrupt(_) => ErrorType::ValidationError,
        }
    }

    pub fn http_status(&self) -> u16 {
        self.error_type().http_status()
    }
}

/// Limits on one image.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// Encoded size.
    pub max_bytes: u64,
    /// Decoded width x height (a 1 kB PNG can claim 100k x 100k pixels).
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            max_pixels: 64 * 1024 * 1024,
        }
    }
}

/// The EXIF facts mlx-knife shows. `None` fields were absent or unreadable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExifInfo {
    /// Decimal degrees, south negative.
    pub gps_lat: Option<f64>,
    /// Decimal degrees, west negative.
    pub gps_lon: Option<f64>,
    /// Capture time, ISO 8601 (`2024-05-01T12:34:56`): the GPS stamp (UTC)
    /// first, else DateTimeOriginal; never DateTime (306), which editors rewrite.
    pub datetime: Option<String>,
    /// Tag 272 (Model).
    pub camera: Option<String>,
}

impl ExifInfo {
    fn is_empty(&self) -> bool {
        self.gps_lat.is_none()
            && self.gps_lon.is_none()
            && self.datetime.is_none()
            && self.camera.is_none()
    }
}

/// A decoded, upright RGB image.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedImage {
    pub rgb: Rgb8,
    /// Lower-case hex sha256 of the encoded bytes.
    pub sha256: String,
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: &'static str,
    /// EXIF orientation applied (1 = none).
    pub orientation: u32,
    pub exif: Option<ExifInfo>,
}

impl DecodedImage {
    /// mlx-knife's short id: the first 8 hex digits of the sha256.
    pub fn short_id(&self) -> &str {
        &self.sha256[..8]
    }
}

/// Sniff, decode, orient and convert one image.
pub fn decode(bytes: &[u8], limits: ImageLimits) -> Result<DecodedImage, ImageError> {
    use image::ImageFormat as F;
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ImageError::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_bytes,
        });
    }
    let format = match image::guess_format(bytes) {
        Ok(F::Png) => (F::Png, "png"),
        Ok(F::Jpeg) => (F::Jpeg, "jpeg"),
        Ok(F::Gif) => (F::Gif, "gif"),
        Ok(F::WebP) => (F::WebP, "webp"),
        Ok(other) => {
            return Err(ImageError::Unsupported(
                other
                    .extensions_str()
                    .first()
                    .copied()
                    .unwrap_or("?")
                    .to_string(),
            ))
        }
        Err(_) => return Err(ImageError::Unsupported("unknown (not an image?)".into())),
    };
    let exif = read_exif(bytes);
    let orientation = exif.as_ref().map_or(1, |e| e.1);
    let decoded =
        std::panic::catch_unwind(|| decode_rgb(bytes, format.0, limits, orientation))
            .map_err(|_| ImageError::Corrupt("the decoder failed on malformed data".into()))??;
    let mut h = Sha256::new();
    h.update(bytes);
    let sha256 = h
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok(DecodedImage {
        rgb: decoded,
        sha256,
        format: format.1,
        orientation,
        exif: exif.map(|e| e.0).filter(|e| !e.is_empty()),
    })
}

fn decode_rgb(
    bytes: &[u8],
    format: image::ImageFormat,
    limits: ImageLimits,
    orientation: u32,
) -> Result<Rgb8, ImageError> {
    let check = |w: u32, h: u32| -> Result<(), ImageError> {
        if w == 0 || h == 0 {
            return Err(ImageError::Empty);
        }
        if (w as u64) * (h as u64) > limits.max_pixels {
            return Err(ImageError::TooManyPixels {
                width: w,
                height: h,
                limit: limits.max_pixels,
            });
        }
        Ok(())
    };
    let rgb = if format == image::ImageFormat::Jpeg {
        decode_jpeg(bytes, check)?
    } else {
        decode_other(bytes, format, limits, check)?
    };
    Ok(orient(rgb, orientation))
}

/// libjpeg-turbo's decoder (ISLOW IDCT, fancy upsampling), as Pillow uses it.
fn decode_jpeg(
    bytes: &[u8],
    check: impl Fn(u32, u32) -> Result<(), ImageError>,
) -> Result<Rgb8, ImageError> {
    let run = || -> Result<Rgb8, ImageError> {
        let d = mozjpeg::Decompress::with_err(jpeg_errors())
            .from_mem(bytes)
            .map_err(|e| ImageError::Corrupt(e.to_string()))?;
        let (w, h) = (d.width() as u32, d.height() as u32);
        check(w, h)?;
        if matches!(
            d.color_space(),
            mozjpeg::ColorSpace::JCS_CMYK | mozjpeg::ColorSpace::JCS_YCCK
        ) {
            return Err(ImageError::Unsupported("CMYK JPEG".into()));
        }
        let mut s = d.rgb().map_err(|e| ImageError::Corrupt(e.to_string()))?;
        let px: Vec<[u8; 3]> = s
            .read_scanlines()
            .map_err(|e| ImageError::Corrupt(e.to_string()))?;
        // A truncated file yields fewer rows: refuse rather than pad.
        if px.len() != w as usize * h as usize {
            return Err(ImageError::Corrupt("the JPEG data ends early".into()));
        }
        Ok(Rgb8::new(
            w as usize,
            h as usize,
            px.into_iter().flatten().collect(),
        ))
    };
    // libjpeg reports fatal errors by unwinding (mozjpeg's error manager).
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "libjpeg failed".into());
            Err(ImageError::Corrupt(msg))
        }
    }
}

/// libjpeg's error manager with its fatal errors and a cut-short file (which
/// libjpeg only warns about, padding the picture with grey) both unwinding
/// into the decoder's `catch_unwind`: Pillow refuses a truncated JPEG too
/// ("image file is truncated"). Other warnings (extraneous bytes) are ignored,
/// as Pillow ignores them.
fn jpeg_errors() -> mozjpeg_sys::jpeg_error_mgr {
    use mozjpeg_sys::{jpeg_common_struct, jpeg_std_error, JWRN_JPEG_EOF};
    use std::os::raw::c_int;
    extern "C-unwind" fn fatal(cinfo: &mut jpeg_common_struct) {
        // SAFETY: libjpeg calls this with its own, initialised `err`.
        let code = unsafe { cinfo.err.as_ref().map_or(-1, |e| e.msg_code) };
        std::panic::resume_unwind(Box::new(format!(
            "libjpeg error {code} (corrupt JPEG data)"
        )));
    }
    extern "C-unwind" fn message(cinfo: &mut jpeg_common_struct, level: c_int) {
        // SAFETY: as above.
        let code = unsafe { cinfo.err.as_ref().map_or(-1, |e| e.msg_code) };
        if level < 0 && code == JWRN_JPEG_EOF as c_int {
            std::panic::resume_unwind(Box::new(
                "the JPEG data ends early (truncated file)".to_string(),
            ));
        }
    }
    // SAFETY: jpeg_std_error fills every field of the zeroed manager.
    let mut err: mozjpeg_sys::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { jpeg_std_error(&mut err) };
    err.error_exit = Some(fatal);
    err.emit_message = Some(message);
    err
}

fn decode_other(
    bytes: &[u8],
    format: image::ImageFormat,
    limits: ImageLimits,
    check: impl Fn(u32, u32) -> Result<(), ImageError>,
) -> Result<Rgb8, ImageError> {
    use image::ImageDecoder;
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Unsupported(u) => ImageError::Unsupported(u.to_string()),
        other => ImageError::Corrupt(other.to_string()),
    };
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut l = image::Limits::default();
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(l);
    let decoder = reader.into_decoder().map_err(corrupt)?;
    let (w, h) = decoder.dimensions();
    check(w, h)?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    Ok(if img.color().has_alpha() {
        // Over white, rounding like Pillow's alpha_composite + convert("RGB").
        let rgba = img.to_rgba8();
        let (w, h) = rgba.dimensions();
        let mut out = Vec::with_capacity(w as usize * h as usize * 3);
        for p in rgba.pixels() {
            let a = p.0[3] as u32;
            for c in 0..3 {
                let v = p.0[c] as u32;
                out.push(((v * a + 255 * (255 - a) + 127) / 255) as u8);
            }
        }
        Rgb8::new(w as usize, h as usize, out)
    } else {
        let rgb = img.to_rgb8();
        let (w, h) = rgb.dimensions();
        Rgb8::new(w as usize, h as usize, rgb.into_raw())
    })
}

/// Maps an output pixel to the source pixel it copies.
type SourceOf = Box<dyn Fn(usize, usize) -> (usize, usize)>;

/// Turn the stored pixels upright (`PIL.ImageOps.exif_transpose`).
pub fn orient(img: Rgb8, orientation: u32) -> Rgb8 {
    let (w, h) = (img.width, img.height);
    // Source coordinates of each output pixel, and the output size.
    let (ow, oh, src): (usize, usize, SourceOf) = match orientation {
        2 => (w, h, Box::new(move |x, y| (w - 1 - x, y))),
        3 => (w, h, Box::new(move |x, y| (w - 1 - x, h - 1 - y))),
        4 => (w, h, Box::new(move |x, y| (x, h - 1 - y))),
        5 => (h, w, Box::new(move |x, y| (y, x))),
        6 => (h, w, Box::new(move |x, y| (y, h - 1 - x))),
        7 => (h, w, Box::new(move |x, y| (w - 1 - y, h - 1 - x))),
        8 => (h, w, Box::new(move |x, y| (w - 1 - y, x))),
        _ => return img,
    };
    let mut out = vec![0u8; ow * oh * 3];
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = src(x, y);
            let s = (sy * w + sx) * 3;
            let d = (y * ow + x) * 3;
            out[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    Rgb8::new(ow, oh, out)
}

/// EXIF facts and orientation, or None when the file has no readable EXIF.
fn read_exif(bytes: &[u8]) -> Option<(ExifInfo, u32)> {
    use exif::{In, Tag, Value};
    let ex = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(bytes))
        .ok()?;
    let ascii = |tag: Tag, ifd: In| -> Option<String> {
        match &ex.get_field(tag, ifd)?.value {
            Value::Ascii(v) => v.first().map(|s| {
                String::from_utf8_lossy(s)
                    .trim_end_matches('\0')
                    .to_string()
            }),
            _ => None,
        }
    };
    let rationals = |tag: Tag| -> Option<Vec<f64>> {
        match &ex.get_field(tag, In::PRIMARY)?.value {
            Value::Rational(v) => Some(v.iter().map(|r| r.num as f64 / r.denom as f64).collect()),
            _ => None,
        }
    };
    let degrees = |tag: Tag, neg_ref: &str, ref_tag: Tag| -> Option<f64> {
        let v = rationals(tag)?;
        if v.len() != 3 || v.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let d = v[0] + v[1] / 60.0 + v[2] / 3600.0;
        Some(if ascii(ref_tag, In::PRIMARY).as_deref() == Some(neg_ref) {
            -d
        } else {
            d
        })
    };
    let orientation = ex
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .filter(|o| (1..=8).contains(o))
        .unwrap_or(1);
    let gps_dt = (|| {
        let date = ascii(Tag::GPSDateStamp, In::PRIMARY)?;
        let t = rationals(Tag::GPSTimeStamp)?;
        if t.len() != 3 {
            return None;
        }
        parse_exif_datetime(&format!(
            "{date} {:02}:{:02}:{:02}",
            t[0] as i64, t[1] as i64, t[2] as i64
        ))
    })();
    // DateTimeOriginal lives in the Exif sub-IFD (kamadak-exif reads it as
    // PRIMARY); a few writers put it in IFD0, which is the same lookup here.
    let datetime =
        gps_dt.or_else(|| parse_exif_datetime(&ascii(Tag::DateTimeOriginal, In::PRIMARY)?));
    let camera = ascii(Tag::Model, In::PRIMARY)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let info = ExifInfo {
        gps_lat: degrees(Tag::GPSLatitude, "S", Tag::GPSLatitudeRef),
        gps_lon: degrees(Tag::GPSLongitude, "W", Tag::GPSLongitudeRef),
        datetime,
        camera,
    };
    Some((info, orientation))
}

/// `YYYY:MM:DD HH:MM:SS` → `YYYY-MM-DDTHH:MM:SS`, validated as a calendar time.
fn parse_exif_datetime(s: &str) -> Option<String> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b':'
        || b[7] != b':'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let month = time::Month::try_from(mo as u8).ok()?;
    time::Date::from_calendar_date(y as i32, month, d as u8).ok()?;
    if h > 23 || mi > 59 || se > 61 {
        return None;
    }
    Some(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn exif_datetimes_parse_or_are_dropped() {
        assert_eq!(
            parse_exif_datetime("2024:05:01 12:34:56").as_deref(),
            Some("2024-05-01T12:34:56")
        );
        for bad in [
            "",
            "2024:02:30 00:00:00",
            "2024-05-01 12:34:56",
            "0000:00:00 00:00:00",
            "2024:05:01 25:00:00",
        ] {
            assert_eq!(parse_exif_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn orientations_match_pillow_transposes() {
        // 3x2: a b c / d e f
        let img = Rgb8::new(3, 2, (0..18).collect());
        let px = |i: &Rgb8| -> Vec<u8> { i.data.chunks(3).map(|p| p[0] / 3).collect() };
        assert_eq!(px(&orient(img.clone(), 1)), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(px(&orient(img.clone(), 2)), vec![2, 1, 0, 5, 4, 3]);
        assert_eq!(px(&orient(img.clone(), 3)), vec![5, 4, 3, 2, 1, 0]);
        assert_eq!(px(&orient(img.clone(), 4)), vec![3, 4, 5, 0, 1, 2]);
        // 90° turns give 2x3.
        let r6 = orient(img.clone(), 6);
        assert_eq!((r6.width, r6.height), (2, 3));
        assert_eq!(px(&r6), vec![3, 0, 4, 1, 5, 2]);
        assert_eq!(px(&orient(img.clone(), 8)), vec![2, 5, 1, 4, 0, 3]);
        assert_eq!(px(&orient(img.clone(), 5)), vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(px(&orient(img, 7)), vec![5, 2, 4, 1, 3, 0]);
    }

    #[test]
    fn bad_bytes_are_typed_errors() {
        let l = ImageLimits::default();
        assert_eq!(decode(b"", l), Err(ImageError::Empty));
        assert!(matches!(
            decode(b"hello world", l),
            Err(ImageError::Unsupported(_))
        ));
        // A PNG signature with garbage after it.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&[0xff; 40]);
        assert!(matches!(decode(&png, l), Err(ImageError::Corrupt(_))));
        let small = ImageLimits { max_bytes: 4, ..l };
        assert!(matches!(
            decode(&png, small),
            Err(ImageError::TooLarge { .. })
        ));
        assert_eq!(ImageError::Unsupported("bmp".into()).http_status(), 415);
        // A 133-byte PNG that claims 100000 x 100000 pixels: refused from its
        // header, before any pixel buffer is allocated.
        let bomb = hex("89504e470d0a1a0a0000000d49484452000186a0000186a0080200000027309c9f0000000c49444154789c6360a00c000000400001b7347cef0000000049454e44ae426082");
        match decode(&bomb, l) {
            Err(ImageError::TooManyPixels { width, height, .. }) => {
                assert_eq!((width, height), (100_000, 100_000))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode(&bomb, l).unwrap_err().http_status(),
            413,
            "too many pixels is a payload problem"
        );
        // A JPEG cut short: libjpeg's error becomes a typed error, not a crash.
        let jpeg = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/vlm-tiny/images/exif.jpg"
        ))
        .unwrap();
        for cut in [2, 20, 200, jpeg.len() / 2, jpeg.len() - 10] {
            assert!(decode(&jpeg[..cut], l).is_err(), "cut at {cut}");
        }
        assert_eq!(ImageError::Empty.http_status(), 400);
    }
}
