//! Streaming text: UTF-8-safe incremental detokenization, stop strings held back
//! while they might still match, and `<think>…</think>` reasoning separation.

use crate::api::EngineError;
use crate::tokenizer::TextTokenizer;

/// Decodes a growing id list and yields only new, complete text. Decodes a short
/// window (`prefix..`) twice and emits the difference, so byte-level pieces of a
/// multi-byte character stay back until the character is complete (U+FFFD tail).
#[derive(Debug, Default)]
pub struct IncrementalDecoder {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl IncrementalDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, tok: &TextTokenizer, id: u32) -> Result<String, EngineError> {
        self.ids.push(id);
        let prefix = tok.decode(&self.ids[self.prefix_offset..self.read_offset], true)?;
        let full = tok.decode(&self.ids[self.prefix_offset..], true)?;
        if full.len() > prefix.len()
            && !full.ends_with('\u{FFFD}')
            && full.is_char_boundary(prefix.len())
        {
            let new = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(new)
        } else {
            Ok(String::new())
        }
    }

    /// Whatever is still held back (an incomplete character at the end).
    pub fn flush(&mut self, tok: &TextTokenizer) -> Result<String, EngineError> {
        let prefix = tok.decode(&self.ids[self.prefix_offset..self.read_offset], true)?;
        let full = tok.decode(&self.ids[self.prefix_offset..], true)?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        if full.len() > prefix.len() && full.is_char_boundary(prefix.len()) {
            Ok(full[prefix.len()..].to_string())
        } else {
            Ok(String::new())
        }
    }
}

/// Holds back text that could be the start of a stop string.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

/// Result of feeding text: what may be emitted now, and whether a stop matched.
#[derive(Debug, PartialEq, Eq)]
pub struct StopOutcome {
    pub emit: String,
    pub stopped: bool,
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> StopOutcome {
        self.pending.push_str(text);
        if self.stops.is_empty() {
            return StopOutcome {
                emit: std::mem::take(&mut self.pending),
                stopped: false,
            };
        }
        // Earliest full match wins.
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(pos) = hit {
            let emit = self.pending[..pos].to_string();
            self.pending.clear();
            return StopOutcome {
                emit,
                stopped: true,
            };
        }
        // Hold back the longest suffix that is a proper prefix of some stop string.
        let mut hold_from = self.pending.len();
        for (i, _) in self.pending.char_indices() {
            let suffix = &self.pending[i..];
            if self.stops.iter().any(|s| s.starts_with(suffix)) {
                hold_from = i;
                break;
            }
        }
        let emit = self.pending[..hold_from].to_string();
        self.pending.drain(..hold_from);
        StopOutcome {
            emit,
            stopped: false,
        }
    }

    /// End of generation without a stop: release what was held back.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// Which channel a piece of text belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Content,
    Reasoning,
}

/// Splits `<think>…</think>` spans out of the text stream.
#[derive(Debug)]
pub struct ReasoningSplitter {
    enabled: bool,
    in_think: bool,
    pending: String,
    /// Trim leading whitespace of the next piece (right after a marker).
    trim_next: bool,
}

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

impl ReasoningSplitter {
    /// `start_in_think`: the prompt already opened `<think>` (template-forced reasoning).
    pub fn new(enabled: bool, start_in_think: bool) -> Self {
        Self {
            enabled,
            in_think: enabled && start_in_think,
            pending: String::new(),
            trim_next: enabled && start_in_think,
        }
    }

    pub fn push(&mut self, text: &str, out: &mut Vec<(Channel, String)>) {
        if !self.enabled {
            if !text.is_empty() {
                out.push((Channel::Content, text.to_string()));
            }
            return;
        }
        self.pending.push_str(text);
        loop {
            let marker = if self.in_think { CLOSE } else { OPEN };
            if let Some(pos) = self.pending.find(marker) {
                let before: String = self.pending[..pos].to_string();
                self.emit(before, out);
                self.pending.drain(..pos + marker.len());
                self.in_think = !self.in_think;
                self.trim_next = true;
                continue;
            }
            // Hold back a possible partial marker at the end.
            let mut hold_from = self.pending.len();
            for (i, _) in self.pending.char_indices() {
                if marker.starts_with(&self.pending[i..]) {
                    hold_from = i;
                    break;
                }
            }
            let ready: String = self.pending[..hold_from].to_string();
            self.pending.drain(..hold_from);
            self.emit(ready, out);
            break;
        }
    }

    fn emit(&mut self, mut s: String, out: &mut Vec<(Channel, String)>) {
        if self.trim_next {
            let t = s.trim_start().len();
            s.drain(..s.len() - t);
            if s.is_empty() {
                return;
            }
            self.trim_next = false;
        }
        if s.is_empty() {
            return;
        }
        let ch = if self.in_think {
            Channel::Reasoning
        } else {
            Channel::Content
        };
        out.push((ch, s));
    }

    pub fn finish(&mut self, out: &mut Vec<(Channel, String)>) {
        let rest = std::mem::take(&mut self.pending);
        self.emit(rest, out);
    }
}

/// True when the rendered prompt leaves a `<think>` block open.
pub fn prompt_opens_think(rendered: &str) -> bool {
    match (rendered.rfind(OPEN), rendered.rfind(CLOSE)) {
        (Some(o), Some(c)) => o > c,
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_are_held_back_and_never_emitted() {
        let mut m = StopMatcher::new(&["\nUser:".to_string(), "END".to_string()]);
        assert_eq!(
            m.push("Hello"),
            StopOutcome {
                emit: "Hello".into(),
                stopped: false
            }
        );
        assert_eq!(
            m.push(" wor\n"),
            StopOutcome {
                emit: " wor".into(),
                stopped: false
            }
        );
        assert_eq!(
            m.push("Us"),
            StopOutcome {
                emit: "".into(),
                stopped: false
            }
        );
        // Not a stop after all: released.
        assert_eq!(
            m.push("a"),
            StopOutcome {
                emit: "\nUsa".into(),
                stopped: false
            }
        );
        assert_eq!(
            m.push("xxE"),
            StopOutcome {
                emit: "xx".into(),
                stopped: false
            }
        );
        assert_eq!(
            m.push("NDtail"),
            StopOutcome {
                emit: "".into(),
                stopped: true
            }
        );
    }

    #[test]
    fn stop_string_across_multibyte_text() {
        let mut m = StopMatcher::new(&["é!".to_string()]);
        assert_eq!(m.push("caf").emit, "caf");
        assert_eq!(m.push("é").emit, "");
        let o = m.push("!");
        assert!(o.stopped);
        assert_eq!(o.emit, "");
    }

    #[test]
    fn reasoning_is_split() {
        let mut r = ReasoningSplitter::new(true, false);
        let mut out = Vec::new();
        for piece in ["<th", "ink>\nhmm", " ok</thi", "nk>\n\nAnswer", " here"] {
            r.push(piece, &mut out);
        }
        r.finish(&mut out);
        let reasoning: String = out
            .iter()
            .filter(|(c, _)| *c == Channel::Reasoning)
            .map(|(_, s)| s.as_str())
            .collect();
        let content: String = out
            .iter()
            .filter(|(c, _)| *c == Channel::Content)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(reasoning, "hmm ok");
        assert_eq!(content, "Answer here");
    }

    #[test]
    fn reasoning_opened_by_prompt() {
        assert!(prompt_opens_think("<|im_start|>assistant\n<think>\n"));
        assert!(!prompt_opens_think("<think>\n\n</think>\n\n"));
        let mut r = ReasoningSplitter::new(true, true);
        let mut out = Vec::new();
        r.push("plan</think>done", &mut out);
        assert_eq!(
            out,
            vec![
                (Channel::Reasoning, "plan".to_string()),
                (Channel::Content, "done".to_string())
            ]
        );
    }
}
