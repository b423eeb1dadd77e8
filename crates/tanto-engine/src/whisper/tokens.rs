//! Whisper's special tokens, the language table, and the suppression lists,
//! read from the model folder (tokenizer.json plus HF's generation_config.json
//! or CTranslate2's config.json).

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use crate::api::EngineError;
use crate::tokenizer::{read_json_opt, TextTokenizer};

/// Whisper's languages in token order (`<|en|>` is the first language token):
/// ISO-639-1 code (or Whisper's own code where there is none) and English name.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "english"),
    ("zh", "chinese"),
    ("de", "german"),
    ("es", "spanish"),
    ("ru", "russian"),
    ("ko", "korean"),
    ("fr", "french"),
    ("ja", "japanese"),
    ("pt", "portuguese"),
    ("tr", "turkish"),
    ("pl", "polish"),
    ("ca", "catalan"),
    ("nl", "dutch"),
    ("ar", "arabic"),
    ("sv", "swedish"),
    ("it", "italian"),
    ("id", "indonesian"),
    ("hi", "hindi"),
    ("fi", "finnish"),
    ("vi", "vietnamese"),
    ("he", "hebrew"),
    ("uk", "ukrainian"),
    ("el", "greek"),
    ("ms", "malay"),
    ("cs", "czech"),
    ("ro", "romanian"),
    ("da", "danish"),
    ("hu", "hungarian"),
    ("ta", "tamil"),
    ("no", "norwegian"),
    ("th", "thai"),
    ("ur", "urdu"),
    ("hr", "croatian"),
    ("bg", "bulgarian"),
    ("lt", "lithuanian"),
    ("la", "latin"),
    ("mi", "maori"),
    ("ml", "malayalam"),
    ("cy", "welsh"),
    ("sk", "slovak"),
    ("te", "telugu"),
    ("fa", "persian"),
    ("lv", "latvian"),
    ("bn", "bengali"),
    ("sr", "serbian"),
    ("az", "azerbaijani"),
    ("sl", "slovenian"),
    ("kn", "kannada"),
    ("et", "estonian"),
    ("mk", "macedonian"),
    ("br", "breton"),
    ("eu", "basque"),
    ("is", "icelandic"),
    ("hy", "armenian"),
    ("ne", "nepali"),
    ("mn", "mongolian"),
    ("bs", "bosnian"),
    ("kk", "kazakh"),
    ("sq", "albanian"),
    ("sw", "swahili"),
    ("gl", "galician"),
    ("mr", "marathi"),
    ("pa", "punjabi"),
    ("si", "sinhala"),
    ("km", "khmer"),
    ("sn", "shona"),
    ("yo", "yoruba"),
    ("so", "somali"),
    ("af", "afrikaans"),
    ("oc", "occitan"),
    ("ka", "georgian"),
    ("be", "belarusian"),
    ("tg", "tajik"),
    ("sd", "sindhi"),
    ("gu", "gujarati"),
    ("am", "amharic"),
    ("yi", "yiddish"),
    ("lo", "lao"),
    ("uz", "uzbek"),
    ("fo", "faroese"),
    ("ht", "haitian creole"),
    ("ps", "pashto"),
    ("tk", "turkmen"),
    ("nn", "nynorsk"),
    ("mt", "maltese"),
    ("sa", "sanskrit"),
    ("lb", "luxembourgish"),
    ("my", "myanmar"),
    ("bo", "tibetan"),
    ("tl", "tagalog"),
    ("mg", "malagasy"),
    ("as", "assamese"),
    ("tt", "tatar"),
    ("haw", "hawaiian"),
    ("ln", "lingala"),
    ("ha", "hausa"),
    ("ba", "bashkir"),
    ("jw", "javanese"),
    ("su", "sundanese"),
    ("yue", "cantonese"),
];

/// The English name of a language code (`en` → `english`).
pub fn language_name(code: &str) -> Option<&'static str> {
    LANGUAGES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// A code or English name (any case; a few common aliases) → the code.
pub fn language_code(s: &str) -> Option<&'static str> {
    let s = s.trim().to_ascii_lowercase();
    let s = match s.as_str() {
        "burmese" => "myanmar",
        "valencian" => "catalan",
        "flemish" => "dutch",
        "haitian" => "haitian creole",
        "letzeburgesch" => "luxembourgish",
        "pushto" => "pashto",
        "panjabi" => "punjabi",
        "moldavian" | "moldovan" => "romanian",
        "sinhalese" => "sinhala",
        "castilian" => "spanish",
        "mandarin" => "chinese",
        "jv" => "jw",
        other => other,
    };
    LANGUAGES
        .iter()
        .find(|(c, n)| *c == s || *n == s)
        .map(|(c, _)| *c)
}

/// The ids the decoder needs.
#[derive(Debug, Clone)]
pub struct SpecialTokens {
    pub sot: u32,
    pub eot: u32,
    pub transcribe: Option<u32>,
    pub translate: Option<u32>,
    pub sot_prev: Option<u32>,
    pub sot_lm: Option<u32>,
    pub no_speech: Option<u32>,
    pub no_timestamps: u32,
    /// `<|0.00|>`: every id from here up is a timestamp (0.02 s apart).
    pub timestamp_begin: u32,
    /// `(code, token id)` of the languages this model knows (empty for `.en`).
    pub languages: Vec<(&'static str, u32)>,
    /// Suppressed at every step.
    pub suppress: Vec<u32>,
    /// Suppressed at the first sampled step only (the blank and end-of-text).
    pub begin_suppress: Vec<u32>,
    /// First sampled timestamp at most this many steps of 0.02 s (1 s).
    pub max_initial_timestamp_index: u32,
}

impl SpecialTokens {
    pub fn multilingual(&self) -> bool {
        !self.languages.is_empty()
    }
    pub fn language_token(&self, code: &str) -> Option<u32> {
        self.languages
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, id)| *id)
    }
    /// The sequence every window starts with.
    pub fn sot_sequence(
        &self,
        language: Option<&str>,
        task: super::Task,
        timestamps: bool,
    ) -> Vec<u32> {
        let mut s = vec![self.sot];
        if self.multilingual() {
            if let Some(id) = language.and_then(|l| self.language_token(l)) {
                s.push(id);
            }
            let t = match task {
                super::Task::Transcribe => self.transcribe,
                super::Task::Translate => self.translate,
            };
            s.extend(t);
        }
        if !timestamps {
            s.push(self.no_timestamps);
        }
        s
    }
}

fn ids(v: Option<&Value>) -> Option<Vec<u32>> {
    v?.as_array().map(|a| {
        a.iter()
            .filter_map(|x| x.as_u64())
            .filter(|x| *x <= u32::MAX as u64)
            .map(|x| x as u32)
            .collect()
    })
}

/// Read the special tokens of the folder: tokenizer ids, then suppression
/// lists from generation_config.json (HF) or config.json (CTranslate2's
/// `suppress_ids` / `suppress_ids_begin` / `lang_ids`), config.json's HF
/// fields last.
pub fn read(dir: &Path, tok: &TextTokenizer, vocab: usize) -> Result<SpecialTokens, EngineError> {
    let need = |t: &str| {
        tok.token_to_id(t).ok_or_else(|| EngineError::InvalidModel {
            path: dir.join("tokenizer.json"),
            message: format!("no '{t}' token: not a Whisper tokenizer"),
        })
    };
    let sot = need("<|startoftranscript|>")?;
    let eot = need("<|endoftext|>")?;
    let no_timestamps = need("<|notimestamps|>")?;
    let gen = read_json_opt(&dir.join("generation_config.json"))?.unwrap_or(Value::Null);
    let cfg = read_json_opt(&dir.join("config.json"))?.unwrap_or(Value::Null);
    let pick = |keys: &[&str]| -> Option<Vec<u32>> {
        for src in [&gen, &cfg] {
            for k in keys {
                if let Some(v) = ids(src.get(*k)) {
                    return Some(v);
                }
            }
        }
        None
    };
    let lang_ids: Option<HashSet<u32>> = gen
        .get("lang_to_id")
        .and_then(Value::as_object)
        .map(|m| {
            m.values()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect()
        })
        .or_else(|| pick(&["lang_ids"]).map(|v| v.into_iter().collect()));
    let mut languages = Vec::new();
    for (code, _) in LANGUAGES {
        if let Some(id) = tok.token_to_id(&format!("<|{code}|>")) {
            if lang_ids.as_ref().is_none_or(|s| s.contains(&id)) && (id as usize) < vocab {
                languages.push((*code, id));
            }
        }
    }
    // `.en` checkpoints still carry language tokens in the tokenizer but
    // were not trained on them: vocab 51864 and no language table.
    let english_only = vocab < 51865
        || gen.get("is_multilingual").and_then(Value::as_bool) == Some(false)
        || lang_ids.as_ref().is_some_and(|s| s.is_empty());
    if english_only {
        languages.clear();
    }
    let opt = |t: &str| tok.token_to_id(t).filter(|id| (*id as usize) < vocab);
    let mut suppress = pick(&["suppress_tokens", "suppress_ids"]).unwrap_or_default();
    let begin_suppress =
        pick(&["begin_suppress_tokens", "suppress_ids_begin"]).unwrap_or_else(|| vec![220, eot]);
    let transcribe = opt("<|transcribe|>");
    let translate = opt("<|translate|>");
    let sot_prev = opt("<|startofprev|>");
    let sot_lm = opt("<|startoflm|>");
    let no_speech = opt("<|nospeech|>").or_else(|| opt("<|nocaptions|>"));
    // openai/whisper also keeps the decoder off the task and control tokens.
    suppress.extend(
        [
            Some(sot),
            transcribe,
            translate,
            sot_prev,
            sot_lm,
            no_speech,
        ]
        .into_iter()
        .flatten(),
    );
    suppress.retain(|id| (*id as usize) < vocab);
    suppress.sort_unstable();
    suppress.dedup();
    let max_initial_timestamp_index = gen
        .get("max_initial_timestamp_index")
        .and_then(Value::as_u64)
        .unwrap_or(50) as u32;
    Ok(SpecialTokens {
        sot,
        eot,
        transcribe,
        translate,
        sot_prev,
        sot_lm,
        no_speech,
        no_timestamps,
        timestamp_begin: no_timestamps + 1,
        languages,
        suppress,
        begin_suppress,
        max_initial_timestamp_index,
    })
}
