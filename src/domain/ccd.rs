//! OpenVPN's client-config-dir: one file per common name, read when that
//! client connects. A `disable` line in it refuses the client without a
//! server restart; revoking adds the line and restoring removes it, keeping
//! every other directive (`ifconfig-push`, `iroute`, …) as it was.

/// Why a common name cannot be blocked through a file named after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the common name {0:?} cannot name a client-config-dir file (letters, digits and _ . @ + - only)")]
pub struct CcdNameError(pub String);

/// The file name for `common_name` inside the directory.
pub fn ccd_file_name(common_name: &str) -> Result<&str, CcdNameError> {
    let ok = !common_name.is_empty()
        && common_name.len() <= 64
        && !common_name.starts_with('.')
        && common_name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-'));
    if ok {
        Ok(common_name)
    } else {
        Err(CcdNameError(common_name.chars().take(64).collect()))
    }
}

fn is_disable(line: &str) -> bool {
    line.split_whitespace().next() == Some("disable")
}

/// The file with a `disable` line (added once, at the end).
pub fn disable(text: &str) -> String {
    if text.lines().any(is_disable) {
        return text.to_owned();
    }
    let mut out = text.trim_end_matches('\n').to_owned();
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str("disable\n");
    out
}

/// The file without its `disable` lines.
pub fn enable(text: &str) -> String {
    let kept: Vec<&str> = text.lines().filter(|l| !is_disable(l)).collect();
    if kept.iter().all(|l| l.trim().is_empty()) {
        return String::new();
    }
    let mut out = kept.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disable_is_added_once_and_removed_keeping_other_directives() {
        let file = "# alice's fixed address\nifconfig-push 10.8.0.50 255.255.255.0\n";
        let off = disable(file);
        assert_eq!(off, format!("{file}disable\n"));
        assert_eq!(disable(&off), off, "once");
        assert_eq!(enable(&off), file);
        assert_eq!(disable(""), "disable\n");
        assert_eq!(enable("disable\n"), "");
        assert_eq!(enable(file), file, "nothing to remove");
    }

    #[test]
    fn only_plain_common_names_name_a_file() {
        for good in ["alice", "bob@example.org", "phone-1.alice", "x_y+z"] {
            assert_eq!(ccd_file_name(good), Ok(good));
        }
        for bad in ["", "../etc/passwd", ".hidden", "a/b", "alice bob", "a;b", "$(id)"] {
            assert!(ccd_file_name(bad).is_err(), "{bad}");
        }
    }
}
