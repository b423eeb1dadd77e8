//! `POST /v1/audio/transcriptions` and `/v1/audio/translations`: OpenAI's
//! multipart form (`file`, `model`, `language`, `prompt`, `response_format`,
//! `temperature`, `timestamp_granularities[]`) parsed into one
//! [`AudioRequest`], and the five response formats.
//!
//! The upload is streamed through `multer` with a size limit, so an
//! oversized file is refused (413) without being held in memory whole.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use tanto_core::error::ErrorType;
use tanto_engine::whisper::{subtitles, Transcript};

use crate::error::ApiError;

/// Default largest audio upload: OpenAI's own 25 MB limit.
pub const DEFAULT_AUDIO_LIMIT: usize = 25 * 1024 * 1024;

/// Largest text field (model, prompt, …) in the form.
const MAX_TEXT_FIELD: u64 = 64 * 1024;

/// How the transcript is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

impl ResponseFormat {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "json" => Self::Json,
            "text" => Self::Text,
            "srt" => Self::Srt,
            "verbose_json" => Self::VerboseJson,
            "vtt" => Self::Vtt,
            _ => return None,
        })
    }
}

/// A parsed, validated audio request (the audio itself not yet decoded).
#[derive(Debug)]
pub struct AudioRequest {
    pub model: String,
    pub file: Bytes,
    pub filename: Option<String>,
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub format: ResponseFormat,
    /// None = the fallback ladder (OpenAI's `temperature=0`, the default).
    pub temperature: Option<f32>,
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorType::PayloadTooLarge,
        format!(
            "The audio upload exceeds this server's limit of {limit} bytes; split the file (e.g. `ffmpeg -i in.wav -f segment -segment_time 600 out%03d.wav`) or raise the limit (tanto serve --audio-limit)"
        ),
    )
    .with_param("file")
}

fn form_error(e: multer::Error, limit: usize) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => too_large(limit),
        multer::Error::FieldSizeExceeded { field_name, .. } => match field_name.as_deref() {
            Some("file") | None => too_large(limit),
            Some(f) => ApiError::invalid(
                f.to_string(),
                format!("form field '{f}' is over {MAX_TEXT_FIELD} bytes"),
            ),
        },
        other => ApiError::new(
            ErrorType::InvalidRequest,
            format!("The request is not a valid multipart/form-data body: {other}"),
        )
        .with_code("invalid_multipart"),
    }
}

fn text_field(name: &str, bytes: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::invalid(name.to_string(), format!("{name} must be UTF-8 text")))
}

/// Parse the form. `content_type` is the request's header; `limit` bounds
/// the audio file (the whole body may be a little larger for the other fields).
pub async fn parse(
    content_type: Option<&str>,
    body: Body,
    limit: usize,
    default_model: Option<&str>,
) -> Result<AudioRequest, ApiError> {
    let ct = content_type.unwrap_or("");
    if !ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return Err(ApiError::new(
            ErrorType::InvalidRequest,
            format!(
                "Audio endpoints take multipart/form-data (a `file` field and a `model` field); got Content-Type '{}'",
                if ct.is_empty() { "(none)" } else { ct }
            ),
        )
        .with_code("unsupported_content_type"));
    }
    let boundary = multer::parse_boundary(ct).map_err(|e| {
        ApiError::new(
            ErrorType::InvalidRequest,
            format!("The multipart Content-Type has no usable boundary: {e}"),
        )
        .with_code("invalid_multipart")
    })?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(limit as u64 + 16 * MAX_TEXT_FIELD)
            .per_field(MAX_TEXT_FIELD)
            .for_field("file", limit as u64),
    );
    let mut form =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);

    let mut file: Option<(Bytes, Option<String>)> = None;
    let mut model = None;
    let mut language = None;
    let mut prompt = None;
    let mut format = None;
    let mut temperature = None;
    let mut granularities: Vec<String> = Vec::new();
    while let Some(field) = form.next_field().await.map_err(|e| form_error(e, limit))? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            let filename = field.file_name().map(str::to_string);
            let data = field.bytes().await.map_err(|e| form_error(e, limit))?;
            file = Some((data, filename));
            continue;
        }
        let data = field.bytes().await.map_err(|e| form_error(e, limit))?;
        match name.as_str() {
            "model" => model = Some(text_field("model", &data)?),
            "language" => language = Some(text_field("language", &data)?),
            "prompt" => prompt = Some(text_field("prompt", &data)?),
            "response_format" => format = Some(text_field("response_format", &data)?),
            "temperature" => temperature = Some(text_field("temperature", &data)?),
            "timestamp_granularities[]" | "timestamp_granularities" => {
                granularities.push(text_field("timestamp_granularities[]", &data)?)
            }
            // Fields of newer OpenAI models (stream, include[], …) and
            // unknown ones change nothing for Whisper: accepted, ignored.
            other => tracing::debug!(field = other, "ignoring audio form field"),
        }
    }

    let Some((file, filename)) = file else {
        return Err(ApiError::invalid(
            "file",
            "the form has no `file` field: attach the audio as `file`",
        ));
    };
    if file.is_empty() {
        return Err(ApiError::invalid(
            "file",
            "the uploaded audio file is empty",
        ));
    }
    let model = match model.map(|m| m.trim().to_string()) {
        Some(m) if !m.is_empty() => m,
        _ => default_model
            .map(str::to_string)
            .ok_or_else(|| ApiError::invalid("model", "model is required"))?,
    };
    let format = match format.as_deref().map(str::trim) {
        None | Some("") => ResponseFormat::Json,
        Some(f) => ResponseFormat::parse(f).ok_or_else(|| {
            ApiError::invalid(
                "response_format",
                format!(
                    "response_format must be one of json, text, srt, verbose_json, vtt; got '{f}'"
                ),
            )
        })?,
    };
    let temperature = match temperature.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => {
            let v: f32 = t.parse().map_err(|_| {
                ApiError::invalid(
                    "temperature",
                    format!("temperature must be a number; got '{t}'"),
                )
            })?;
            if !v.is_finite() || !(0.0..=1.0).contains(&v) {
                return Err(ApiError::invalid(
                    "temperature",
                    format!("temperature must be between 0 and 1; got {v}"),
                ));
            }
            // 0 = let the decoder raise it when a window fails its thresholds.
            (v > 0.0).then_some(v)
        }
    };
    for g in &granularities {
        match g.trim() {
            "segment" => {}
            "word" => {
                return Err(ApiError::invalid(
                    "timestamp_granularities[]",
                    "word timestamps are not available in this build (segment timestamps are); drop timestamp_granularities[]=word",
                ))
            }
            other => {
                return Err(ApiError::invalid(
                    "timestamp_granularities[]",
                    format!("timestamp_granularities[] must be 'segment' or 'word'; got '{other}'"),
                ))
            }
        }
    }
    if !granularities.is_empty() && format != ResponseFormat::VerboseJson {
        return Err(ApiError::invalid(
            "timestamp_granularities[]",
            "timestamp_granularities[] needs response_format=verbose_json",
        ));
    }
    let language = language
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty());
    let prompt = prompt.filter(|p| !p.trim().is_empty());
    Ok(AudioRequest {
        model,
        file,
        filename,
        language,
        prompt,
        format,
        temperature,
    })
}

/// The response in the requested format.
pub fn render(t: &Transcript, format: ResponseFormat) -> Response {
    let text_plain = |s: String| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            s,
        )
            .into_response()
    };
    let json_body = |v: serde_json::Value| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response()
    };
    match format {
        ResponseFormat::Json => json_body(json!({ "text": t.text })),
        ResponseFormat::VerboseJson => json_body(subtitles::verbose_json(t)),
        ResponseFormat::Text => text_plain(format!("{}\n", t.text)),
        ResponseFormat::Srt => text_plain(subtitles::srt(&t.segments)),
        ResponseFormat::Vtt => text_plain(subtitles::vtt(&t.segments)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "XyZboundary";

    fn form(fields: &[(&str, &[u8])]) -> (String, Body) {
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(format!("--{B}\r\n").as_bytes());
            if *name == "file" {
                body.extend_from_slice(
                    b"Content-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n",
                );
            } else {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                );
            }
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{B}--\r\n").as_bytes());
        (
            format!("multipart/form-data; boundary={B}"),
            Body::from(body),
        )
    }

    async fn run(fields: &[(&str, &[u8])], limit: usize) -> Result<AudioRequest, ApiError> {
        let (ct, body) = form(fields);
        parse(Some(&ct), body, limit, None).await
    }

    #[tokio::test]
    async fn fields_are_read_and_defaults_applied() {
        let r = run(
            &[
                ("model", b"openai/whisper-base"),
                ("file", b"RIFF...."),
                ("language", b" de "),
                ("temperature", b"0"),
                ("stream", b"false"),
            ],
            1000,
        )
        .await
        .unwrap();
        assert_eq!(r.model, "openai/whisper-base");
        assert_eq!(&r.file[..], b"RIFF....");
        assert_eq!(r.filename.as_deref(), Some("a.wav"));
        assert_eq!(r.language.as_deref(), Some("de"));
        assert_eq!(r.format, ResponseFormat::Json);
        // 0 is the fallback ladder, not a fixed temperature.
        assert_eq!(r.temperature, None);
        let r = run(
            &[
                ("model", b"m"),
                ("file", b"x"),
                ("temperature", b"0.4"),
                ("response_format", b"vtt"),
            ],
            1000,
        )
        .await
        .unwrap();
        assert_eq!(r.temperature, Some(0.4));
        assert_eq!(r.format, ResponseFormat::Vtt);
    }

    #[tokio::test]
    async fn bad_forms_name_the_field() {
        type Fields<'a> = &'a [(&'a str, &'a [u8])];
        let cases: &[(Fields, &str, u16)] = &[
            (&[("model", b"m")], "file", 400),
            (&[("model", b"m"), ("file", b"")], "file", 400),
            (&[("file", b"x")], "model", 400),
            (
                &[("model", b"m"), ("file", b"x"), ("response_format", b"mp3")],
                "response_format",
                400,
            ),
            (
                &[("model", b"m"), ("file", b"x"), ("temperature", b"hot")],
                "temperature",
                400,
            ),
            (
                &[("model", b"m"), ("file", b"x"), ("temperature", b"1.5")],
                "temperature",
                400,
            ),
            (
                &[
                    ("model", b"m"),
                    ("file", b"x"),
                    ("response_format", b"verbose_json"),
                    ("timestamp_granularities[]", b"word"),
                ],
                "timestamp_granularities[]",
                400,
            ),
            (
                &[
                    ("model", b"m"),
                    ("file", b"x"),
                    ("timestamp_granularities[]", b"segment"),
                ],
                "timestamp_granularities[]",
                400,
            ),
            (&[("model", b"m"), ("file", &[0u8; 2000])], "file", 413),
        ];
        for (fields, param, status) in cases {
            let e = run(fields, 1000).await.unwrap_err();
            assert_eq!(e.param.as_deref(), Some(*param), "{e}");
            assert_eq!(e.status().as_u16(), *status, "{e}");
        }
    }

    #[tokio::test]
    async fn json_and_broken_multipart_are_refused() {
        let e = parse(Some("application/json"), Body::from("{}"), 10, None)
            .await
            .unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert!(e.message.contains("multipart/form-data"), "{}", e.message);
        let e = parse(
            Some(&format!("multipart/form-data; boundary={B}")),
            Body::from(format!(
                "--{B}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ntrunc"
            )),
            1000,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert_eq!(e.code, Some("invalid_multipart"));
    }
}
