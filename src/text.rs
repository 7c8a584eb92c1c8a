//! The CLIP text tokenizer (OpenAI byte-level BPE, 49,408 ids) as open_clip's `tokenize`:
//! `[49406] + BPE ids + [49407]`, zero-padded to the context length; a caption too long keeps
//! its first `context − 1` ids (start token included) and ends with 49407.
//!
//! The BPE itself is `instant-clip-tokenizer`, which bundles the official vocabulary file and
//! lowercases and splits words like open_clip. open_clip also runs ftfy's `fix_text`, unescapes
//! HTML twice and collapses whitespace before that. Whitespace needs nothing (the word split
//! skips it), and the common HTML entities (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`,
//! `&apos;`, `&nbsp;` and numeric `&#…;`) are unescaped here; ftfy's mojibake repair and rarer
//! named entities are not reproduced, so only such captions can tokenize differently.

use instant_clip_tokenizer::{Token, Tokenizer};
use std::sync::OnceLock;

/// Context length of the released text tower.
pub const CONTEXT_LENGTH: usize = 77;
/// `<start_of_text>`.
pub const SOT: u32 = 49406;
/// `<end_of_text>`; the largest id, which the text tower pools at.
pub const EOT: u32 = 49407;
/// Size of the BPE vocabulary including the two special tokens.
pub const VOCAB_SIZE: usize = 49408;

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(Tokenizer::new)
}

/// Tokenize captions to the 77-position layout of the released model.
pub fn tokenize<S: AsRef<str>>(texts: &[S]) -> Vec<[u32; CONTEXT_LENGTH]> {
    texts
        .iter()
        .map(|t| {
            let ids = tokenize_to(t.as_ref(), CONTEXT_LENGTH);
            let mut row = [0u32; CONTEXT_LENGTH];
            row.copy_from_slice(&ids);
            row
        })
        .collect()
}

/// Tokenize one caption to `context_length` (at least 2) ids.
pub fn tokenize_to(text: &str, context_length: usize) -> Vec<u32> {
    assert!(context_length >= 2, "context length must be at least 2");
    let tok = tokenizer();
    let mut ids: Vec<Token> = vec![tok.start_of_text()];
    tok.encode(&unescape_html(&unescape_html(text)), &mut ids);
    ids.truncate(context_length - 1);
    ids.push(tok.end_of_text());
    let mut out: Vec<u32> = ids.into_iter().map(|t| t.to_u16() as u32).collect();
    out.resize(context_length, 0);
    out
}

/// The token ids as a flat (B, 77) row-major vector, for an upload or a `.npy`.
pub fn tokenize_flat<S: AsRef<str>>(texts: &[S]) -> Vec<u32> {
    tokenize(texts).into_iter().flatten().collect()
}

/// The common HTML entities, once (Python's `html.unescape` covers all of HTML5's).
fn unescape_html(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..].find(';').map(|j| j + 1).filter(|&j| j <= 12);
        let decoded = end.and_then(|j| {
            let ent = &rest[1..j];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let num = ent.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse::<u32>().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, j + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids() {
        // The example of the architecture notes (open_clip output).
        let ids = tokenize(&["a photo of a cat."]);
        assert_eq!(
            &ids[0][..9],
            &[49406, 320, 1125, 539, 320, 2368, 269, 49407, 0]
        );
        assert!(ids[0][9..].iter().all(|&x| x == 0));
    }

    #[test]
    fn long_captions_keep_76_then_eot() {
        let long = "cat ".repeat(200);
        let ids = tokenize(&[long.as_str()]);
        assert_eq!(ids[0][0], SOT);
        assert_eq!(ids[0][76], EOT);
        assert!(ids[0][1..76]
            .iter()
            .all(|&x| x == ids[0][1] && x != 0 && x != EOT));
        // Exactly 75 words still fit: SOT + 75 + EOT = 77.
        let fits = "cat ".repeat(75);
        let ids = tokenize_to(&fits, 77);
        assert_eq!((ids[75], ids[76]), (ids[1], EOT));
    }

    #[test]
    fn html_entities() {
        assert_eq!(
            unescape_html("a &amp; b &lt;c&gt; &#39;d&#x27; &bogus; & e"),
            "a & b <c> 'd' &bogus; & e"
        );
        assert_eq!(unescape_html(&unescape_html("&amp;amp;")), "&");
        assert_eq!(tokenize(&["fish &amp; chips"]), tokenize(&["fish & chips"]));
    }
}
