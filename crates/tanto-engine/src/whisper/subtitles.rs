//! Transcript writers: SubRip (`srt`), WebVTT (`vtt`) and `verbose_json`,
//! as OpenAI's `response_format` and openai/whisper's writers produce them.
//! The CLI (`tanto run --audio --format`) and the server share them.

use super::{tokens, Segment, Transcript};

/// OpenAI's `verbose_json`: task, language (its English name, lower case, as
/// OpenAI writes it), `duration` in seconds of audio, text and the segments.
pub fn verbose_json(t: &Transcript) -> serde_json::Value {
    serde_json::json!({
        "task": t.task.as_str(),
        "language": tokens::language_name(&t.language).unwrap_or(&t.language),
        "duration": t.duration,
        "text": t.text,
        "segments": t.segments,
    })
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (VTT).
pub fn timestamp(seconds: f64, decimal: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}{decimal}{ms:03}")
}

/// One cue's text: trimmed, and `-->` (which would end the cue line) defused.
fn cue_text(s: &Segment) -> String {
    s.text.trim().replace("-->", "->")
}

/// SubRip: numbered cues from 1, blank line between.
pub fn srt(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(s.start, ','),
            timestamp(s.end, ','),
            cue_text(s)
        ));
    }
    out
}

/// WebVTT: the `WEBVTT` header, then cues.
pub fn vtt(segments: &[Segment]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in segments {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            timestamp(s.start, '.'),
            timestamp(s.end, '.'),
            cue_text(s)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: f64, end: f64, text: &str) -> Segment {
        Segment {
            id: 0,
            seek: 0,
            start,
            end,
            text: text.into(),
            tokens: vec![],
            temperature: 0.0,
            avg_logprob: 0.0,
            compression_ratio: 1.0,
            no_speech_prob: 0.0,
        }
    }

    #[test]
    fn timestamps_round_and_carry() {
        assert_eq!(timestamp(0.0, ','), "00:00:00,000");
        assert_eq!(timestamp(3.8, ','), "00:00:03,800");
        assert_eq!(timestamp(59.9996, '.'), "00:01:00.000");
        assert_eq!(timestamp(3725.25, '.'), "01:02:05.250");
        assert_eq!(timestamp(-1.0, ','), "00:00:00,000");
    }

    #[test]
    fn srt_and_vtt_cues() {
        let s = [
            seg(0.0, 3.8, " The quick brown fox."),
            seg(3.8, 7.0, " A --> B"),
        ];
        assert_eq!(
            srt(&s),
            "1\n00:00:00,000 --> 00:00:03,800\nThe quick brown fox.\n\n\
             2\n00:00:03,800 --> 00:00:07,000\nA -> B\n\n"
        );
        assert_eq!(
            vtt(&s),
            "WEBVTT\n\n00:00:00.000 --> 00:00:03.800\nThe quick brown fox.\n\n\
             00:00:03.800 --> 00:00:07.000\nA -> B\n\n"
        );
        assert_eq!(vtt(&[]), "WEBVTT\n\n");
    }
}
