//! Flags every command shares, flattened into the command line.

use std::path::PathBuf;

use candid::Principal;
use clap::Args;

/// Where the vault is: a network, or an embedded IC in a directory.
#[derive(Args, Clone, Debug)]
pub struct NetworkOpt {
    /// `local` (the replica `dfx start` runs on 127.0.0.1:4943), `ic` (mainnet), or a URL.
    #[arg(short = 'n', long, global = true, env = "VAULT_NETWORK", default_value = "local")]
    pub network: String,
    /// Use the embedded IC kept in this directory instead of a network (see `vault embedded`).
    #[arg(long, global = true, env = "VAULT_EMBEDDED", value_name = "DIR")]
    pub embedded: Option<PathBuf>,
}

/// Who calls.
#[derive(Args, Clone, Debug)]
pub struct IdentityOpt {
    /// A PEM private key file, or the name of a dfx identity (`~/.config/dfx/identity/<name>`).
    /// Defaults to dfx's `default`, or on an embedded IC to the identity made with it.
    #[arg(long, global = true, env = "VAULT_IDENTITY")]
    pub identity: Option<String>,
}

/// Which vault.
#[derive(Args, Clone, Debug)]
pub struct VaultOpt {
    /// The vault canister's id. On an embedded IC, defaults to the vault made with it.
    #[arg(long, global = true, env = "VAULT_ID", value_parser = parse_principal)]
    pub vault: Option<Principal>,
}

/// How to print.
#[derive(Args, Clone, Debug)]
pub struct OutputOpt {
    /// Print JSON on stdout, for scripts; progress bars are not drawn.
    #[arg(long, global = true)]
    pub json: bool,
}

pub fn parse_principal(text: &str) -> Result<Principal, String> {
    Principal::from_text(text).map_err(|e| format!("`{text}` is not a principal: {e}"))
}

/// Seconds from `90`, `30s`, `15m`, `6h`, `1d`, `2w`; `0` or `never` for none.
pub fn parse_interval(text: &str) -> Result<u64, String> {
    if text == "never" {
        return Ok(0);
    }
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = digits.parse().map_err(|_| format!("`{text}` is not a duration: use e.g. 90, 30s, 15m, 6h, 1d, 2w or never"))?;
    let unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => return Err(format!("`{text}` is not a duration: its unit `{other}` is none of s, m, h, d, w")),
    };
    n.checked_mul(unit).ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_units() {
        assert_eq!(parse_interval("90"), Ok(90));
        assert_eq!(parse_interval("6h"), Ok(21_600));
        assert_eq!(parse_interval("2w"), Ok(1_209_600));
        assert_eq!(parse_interval("never"), Ok(0));
        assert!(parse_interval("6 hours").is_err());
        assert!(parse_interval("h").is_err());
        assert!(parse_interval("99999999999999999999w").is_err());
    }
}
