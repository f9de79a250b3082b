//! Figure 5: binary size of each shim and of the shared libraries it loads.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::memory::met_str;
use crate::report::{Report, Stat};
use crate::shim::Kind;
use crate::{Ctx, KIB};

pub struct Elf {
    pub interp: Option<String>,
    pub dynamic: bool,
}

/// Program headers of a 64-bit little-endian ELF file: PT_INTERP, PT_DYNAMIC.
pub fn elf(path: &Path) -> Option<Elf> {
    let b = fs::read(path).ok()?;
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    let mut e = Elf { interp: None, dynamic: false };
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        match u32_at(o)? {
            2 => e.dynamic = true,
            3 => {
                let off = u64_at(o + 8)? as usize;
                let sz = u64_at(o + 32)? as usize;
                let s = b.get(off..off + sz)?;
                e.interp = Some(String::from_utf8_lossy(s).trim_end_matches('\0').to_string());
            }
            _ => {}
        }
    }
    Some(e)
}

/// Shared libraries the dynamic loader maps for `bin` (ldd), with their paths.
fn libs(bin: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd").arg(bin).stdin(Stdio::null()).output().map_err(|e| format!("ldd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        let path = if let Some((_, rhs)) = l.split_once("=>") {
            rhs.split_whitespace().next().unwrap_or("")
        } else {
            l.split_whitespace().next().unwrap_or("")
        };
        if path.starts_with('/') {
            v.push(PathBuf::from(path));
        }
    }
    Ok(v)
}

fn size(p: &Path) -> f64 {
    fs::metadata(p).map(|m| m.len() as f64).unwrap_or(0.0)
}

pub fn run(ctx: &Ctx, rep: &mut Report) -> Result<(), String> {
    let mut table = Vec::new();
    let mut totals: Vec<(Kind, f64)> = Vec::new();
    let mut rows = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for k in [Kind::Shimlet, Kind::Conmon] {
        let bin = match ctx.tools.bin(k) {
            Some(b) => b.to_path_buf(),
            None => continue,
        };
        let e = elf(&bin).ok_or_else(|| format!("{}: not a 64-bit ELF file", bin.display()))?;
        let bsize = size(&bin);
        let ls = if e.interp.is_some() { libs(&bin)? } else { Vec::new() };
        let lsize: f64 = ls.iter().map(|l| size(l)).fold(0.0, |a, b| a + b);
        let total = bsize + lsize;
        totals.push((k, total));
        rows.push((k, bin, e, bsize, ls, lsize, total));
    }
    let conmon_total = totals.iter().find(|t| t.0 == Kind::Conmon).map(|t| t.1);
    for (k, bin, e, bsize, ls, lsize, total) in rows {
        let ratio = conmon_total.map(|c| total / c);
        let name = k.name();
        let is_static = e.interp.is_none();
        rep.add("size", name, "binary", &Some(Stat::one(bsize / KIB)), "KiB");
        rep.add("size", name, "shared_libraries", &Some(Stat::one(ls.len() as f64)), "count");
        rep.add("size", name, "shared_libraries_size", &Some(Stat::one(lsize / KIB)), "KiB");
        rep.add("size", name, "total", &Some(Stat::one(total / KIB)), "KiB");
        rep.add("size", name, "total_ratio_vs_conmon", &ratio.map(Stat::one), "x");
        rep.add("size", name, "static", &Some(Stat::one(is_static as u8 as f64)), "bool");
        let target = if k == Kind::Shimlet {
            format!(
                "≤192 KiB (both front ends): {}; static: {}; no shared libs: {}",
                met_str(Some(bsize <= 192.0 * KIB)),
                met_str(Some(is_static)),
                met_str(Some(ls.is_empty()))
            )
        } else {
            String::new()
        };
        if !ls.is_empty() {
            let mut v: Vec<(f64, String)> = ls
                .iter()
                .map(|l| (size(l), l.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()))
                .collect();
            v.sort_by(|a, b| b.0.total_cmp(&a.0));
            let list: Vec<String> = v.iter().map(|(s, n)| format!("{n} {:.0}", s / KIB)).collect();
            notes.push(format!("{name} loads (KiB): {}", list.join(", ")));
        }
        table.push(vec![
            name.to_string(),
            format!("{:.1}", bsize / KIB),
            if is_static {
                if e.dynamic {
                    "yes (static-pie)".into()
                } else {
                    "yes".into()
                }
            } else {
                format!("no ({})", e.interp.unwrap_or_default())
            },
            ls.len().to_string(),
            format!("{:.1}", lsize / KIB),
            format!("{:.1}", total / KIB),
            ratio.map(|r| format!("{r:.3}x")).unwrap_or("–".into()),
            target,
        ]);
        let _ = bin;
    }
    if ctx.tools.runc.is_some() {
        table.push(vec![
            "no shim".into(),
            "0".into(),
            "–".into(),
            "0".into(),
            "0".into(),
            "0".into(),
            "–".into(),
            String::new(),
        ]);
    }
    rep.say("\n### 5. Binary size (file sizes; shared libraries as resolved by ldd, the dynamic loader included)\n");
    rep.table(
        &["shim", "binary KiB", "static", "shared libraries", "libs KiB", "total KiB", "vs conmon", "target"],
        &table,
    );
    rep.say("");
    for n in notes {
        rep.say(&n);
    }
    if let Some(r) = &ctx.tools.runc {
        rep.say(&format!("\n(for reference, the runtime every row runs: {} is {:.1} KiB)", r.display(), size(r) / KIB));
    }
    Ok(())
}
