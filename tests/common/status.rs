//! The status file: the shim's record of how the container ended.

use std::collections::BTreeMap;

use super::log::check_timestamp;

/// `exited code=N signal=N oom=0|1 pid=N at=TS` (or a line starting with
/// `failed`).
#[derive(Clone, Debug, PartialEq)]
pub struct StatusLine {
    pub raw: String,
    pub kind: String,
    pub fields: BTreeMap<String, String>,
}

impl StatusLine {
    pub fn parse(raw: &[u8]) -> Result<StatusLine, String> {
        let s = std::str::from_utf8(raw).map_err(|_| format!("not UTF-8: {raw:?}"))?;
        if !s.ends_with('\n') || s.matches('\n').count() != 1 {
            return Err(format!("must be exactly one line ending in a newline: {s:?}"));
        }
        let line = &s[..s.len() - 1];
        let mut words = line.split(' ');
        let kind = words.next().unwrap_or_default().to_string();
        let mut fields = BTreeMap::new();
        let mut order = vec![];
        for w in words {
            let (k, v) = w.split_once('=').ok_or_else(|| format!("word {w:?} is not key=value in {line:?}"))?;
            fields.insert(k.to_string(), v.to_string());
            order.push(k.to_string());
        }
        let st = StatusLine { raw: s.to_string(), kind, fields };
        if st.kind == "exited" {
            if order != ["code", "signal", "oom", "pid", "at", "lost"] {
                return Err(format!("want `exited code= signal= oom= pid= at= lost=`, got {line:?}"));
            }
            let code = st.num("code");
            if !(0..=255).contains(&code) {
                return Err(format!("code out of 0-255: {line:?}"));
            }
            let sig = st.num("signal");
            if sig != 0 && code != 128 + sig {
                return Err(format!("killed by a signal: code must be 128+signal: {line:?}"));
            }
            if !matches!(st.fields["oom"].as_str(), "0" | "1") {
                return Err(format!("oom must be 0 or 1: {line:?}"));
            }
            st.num("pid");
            check_timestamp(&st.fields["at"])?;
        } else if st.kind == "failed" {
            if !st.fields.contains_key("code") {
                return Err(format!("a `failed` line must have code=: {line:?}"));
            }
            st.num("code");
        } else {
            return Err(format!("the status line must start with `exited` or `failed`: {line:?}"));
        }
        Ok(st)
    }

    /// A numeric field (panics when missing or not a number).
    pub fn num(&self, k: &str) -> i64 {
        let v = self.fields.get(k).unwrap_or_else(|| panic!("status line without {k}=: {:?}", self.raw));
        v.parse().unwrap_or_else(|_| panic!("status field {k}={v} is not a number: {:?}", self.raw))
    }
}
