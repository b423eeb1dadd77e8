//! Images in chat requests: OpenAI's `{"type": "image_url", "image_url":
//! {"url": "data:image/png;base64,…", "detail": "auto"}}` parts.
//!
//! Data URLs are decoded here, under a per-image and a per-request limit
//! (413 beyond). `http(s)` URLs are refused unless the server runs with
//! `--allow-remote-images` (a server that fetches any URL it is given can be
//! pointed at the private network: SSRF); then they are fetched with a time
//! and a size limit, without following more than three redirects.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};
use tanto_core::error::ErrorType;
use tanto_engine::vision::image::{decode, DecodedImage, ImageError, ImageLimits};

use crate::error::ApiError;

/// Per-image and per-request limits (bytes of the encoded images).
#[derive(Debug, Clone)]
pub struct ImageOpts {
    pub per_image: u64,
    pub total: u64,
    pub allow_remote: bool,
    pub remote_timeout: Duration,
}

/// mlx-knife's limits: 20 MiB per image, 50 MiB per request.
pub const DEFAULT_IMAGE_LIMIT: u64 = 20 * 1024 * 1024;
pub const DEFAULT_IMAGES_TOTAL: u64 = 50 * 1024 * 1024;

impl Default for ImageOpts {
    fn default() -> Self {
        Self {
            per_image: DEFAULT_IMAGE_LIMIT,
            total: DEFAULT_IMAGES_TOTAL,
            allow_remote: false,
            remote_timeout: Duration::from_secs(10),
        }
    }
}

const MIME: &[&str] = &["png", "jpeg", "jpg", "gif", "webp"];

fn too_large(param: &str, msg: String) -> ApiError {
    ApiError::new(ErrorType::PayloadTooLarge, msg)
        .with_param(param)
        .with_code("image_too_large")
}

/// The image of one content part; `used` counts the request's image bytes.
pub fn image_part(
    po: &Map<String, Value>,
    param: &str,
    opts: &ImageOpts,
    used: &mut u64,
) -> Result<Arc<DecodedImage>, ApiError> {
    // {"image_url": {"url": …, "detail": …}}, or the string form {"image_url": "…"}.
    let (url, uparam) = match po.get("image_url").or_else(|| po.get("image")) {
        Some(Value::String(s)) => (s.as_str(), format!("{param}.image_url")),
        Some(Value::Object(io)) => {
            if let Some(d) = io.get("detail").filter(|d| !d.is_null()) {
                match d.as_str() {
                    Some("auto" | "low" | "high") => {}
                    _ => {
                        return Err(ApiError::invalid(
                            format!("{param}.image_url.detail"),
                            format!("'{param}.image_url.detail' must be auto, low or high"),
                        ))
                    }
                }
            }
            match io.get("url") {
                Some(Value::String(s)) => (s.as_str(), format!("{param}.image_url.url")),
                _ => {
                    return Err(ApiError::invalid(
                        format!("{param}.image_url.url"),
                        format!("'{param}.image_url.url' must be a string (a data: URL)"),
                    ))
                }
            }
        }
        _ => {
            return Err(ApiError::invalid(
                format!("{param}.image_url"),
                format!("'{param}.image_url' must be an object with a 'url'"),
            ))
        }
    };
    let bytes = if let Some(rest) = url.strip_prefix("data:") {
        data_url(rest, &uparam, opts)?
    } else if url.starts_with("http://") || url.starts_with("https://") {
        if !opts.allow_remote {
            return Err(ApiError::invalid(
                &uparam,
                "image URLs are not fetched by this server (a server that fetches URLs can be aimed at private hosts); send the image inline as a data URL (data:image/jpeg;base64,…), or start the server with --allow-remote-images",
            )
            .with_code("remote_image_refused"));
        }
        fetch(url, &uparam, opts)?
    } else {
        return Err(ApiError::invalid(
            &uparam,
            format!("'{uparam}' must be a data: URL (data:image/png;base64,…) or an http(s) URL"),
        ));
    };
    *used += bytes.len() as u64;
    if *used > opts.total {
        return Err(too_large(
            &uparam,
            format!(
                "the request's images total {} bytes, over the {}-byte limit per request",
                *used, opts.total
            ),
        ));
    }
    let limits = ImageLimits {
        max_bytes: opts.per_image,
        ..Default::default()
    };
    match decode(&bytes, limits) {
        Ok(d) => Ok(Arc::new(d)),
        Err(e) => Err(image_error(e, &uparam)),
    }
}

fn image_error(e: ImageError, param: &str) -> ApiError {
    let code = match &e {
        ImageError::TooLarge { .. } | ImageError::TooManyPixels { .. } => "image_too_large",
        ImageError::Unsupported(_) => "unsupported_media_type",
        ImageError::Empty | ImageError::Corrupt(_) => "invalid_image",
    };
    let kind = match e.error_type() {
        ErrorType::ValidationError => ErrorType::InvalidRequest,
        k => k,
    };
    ApiError::new(kind, format!("'{param}': {e}"))
        .with_param(param)
        .with_code(code)
}

fn data_url(rest: &str, param: &str, opts: &ImageOpts) -> Result<Vec<u8>, ApiError> {
    let Some((head, payload)) = rest.split_once(',') else {
        return Err(ApiError::invalid(
            param,
            format!("'{param}' is not a valid data URL (no comma)"),
        ));
    };
    let Some(mime) = head.strip_suffix(";base64") else {
        return Err(ApiError::invalid(
            param,
            format!("'{param}' must be base64-encoded (data:image/png;base64,…)"),
        ));
    };
    let sub = mime.strip_prefix("image/").unwrap_or("");
    if !MIME.contains(&sub.to_ascii_lowercase().as_str()) {
        return Err(ApiError::new(
            ErrorType::UnsupportedMediaType,
            format!("'{param}': image type '{mime}' is not accepted; send image/png, image/jpeg, image/gif or image/webp"),
        )
        .with_param(param)
        .with_code("unsupported_media_type"));
    }
    // 4 base64 characters per 3 bytes: refuse before decoding.
    let approx = (payload.len() as u64 / 4) * 3;
    if approx > opts.per_image + 3 {
        return Err(too_large(
            param,
            format!(
                "'{param}': the image is about {approx} bytes, over the {}-byte limit per image",
                opts.per_image
            ),
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(payload.as_bytes())
        .map_err(|e| {
            ApiError::invalid(
                param,
                format!("'{param}': the base64 data does not decode: {e}"),
            )
            .with_code("invalid_image")
        })
}

fn fetch(url: &str, param: &str, opts: &ImageOpts) -> Result<Vec<u8>, ApiError> {
    use std::io::Read;
    let client = reqwest::blocking::Client::builder()
        .timeout(opts.remote_timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| ApiError::new(ErrorType::InternalError, e.to_string()))?;
    let fail = |m: String| {
        ApiError::invalid(param, format!("'{param}': could not fetch the image: {m}"))
            .with_code("image_fetch_failed")
    };
    let over = || {
        too_large(
            param,
            format!(
                "'{param}': the image is over the {}-byte limit per image",
                opts.per_image
            ),
        )
    };
    let resp = client.get(url).send().map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status())));
    }
    if resp.content_length().is_some_and(|n| n > opts.per_image) {
        return Err(over());
    }
    let mut buf = Vec::new();
    resp.take(opts.per_image + 1)
        .read_to_end(&mut buf)
        .map_err(|e| fail(e.to_string()))?;
    if buf.len() as u64 > opts.per_image {
        return Err(over());
    }
    Ok(buf)
}
