//! `vault demo`: the whole story on embedded ICs, told with this tool's own commands. It
//! deploys a vault and a ledger app, lets timers take snapshots while the ledger keeps
//! working, breaks the ledger, restores a good snapshot, exports it to a file, imports the
//! file into a vault on another IC and restores a clone there; then backs up and restores a
//! canister without the client library through native snapshots. Every step prints the command,
//! what it said and how long it took; every check that fails ends the demo with an error.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

use crate::report::size;
use crate::output::{CliError, Output};

/// Run the end-to-end demo on embedded ICs, with the canisters this program carries.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to keep the embedded ICs and the exported file; a temporary directory by default,
    /// removed at the end.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Blobs loaded into the ledger before the first snapshot, and their size.
const BLOBS: u64 = 8;
const BLOB_BYTES: u64 = 2_500_000;

/// Runs a command line of this tool (the program name first): the demo's caller passes it.
pub type RunCommandLine<'a> = &'a dyn Fn(Vec<String>) -> Result<Output, CliError>;

/// Prints a line of the demo's story. A reader that stopped reading (`vault demo | head`) is no
/// error: the demo goes on, unheard.
macro_rules! say {
    ($($line:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($line)*);
    }};
}

struct Demo<'a> {
    /// The IC the commands run on unless a step says otherwise.
    home: PathBuf,
    steps: u32,
    run: RunCommandLine<'a>,
}

impl Demo<'_> {
    fn step(&mut self, title: &str) {
        self.steps += 1;
        say!("\n{}. {title}", self.steps);
    }

    /// Runs `vault <args>` on the IC in `dir`, printing the command, its output and its time.
    fn vault_on(&self, dir: &Path, args: &[&str]) -> Result<Output, CliError> {
        let shown = args.iter().map(|a| if a.contains(' ') || a.is_empty() { format!("'{a}'") } else { a.to_string() }).collect::<Vec<_>>().join(" ");
        let prefix = if dir == self.home { String::new() } else { format!("VAULT_EMBEDDED={} ", dir.display()) };
        say!("   $ {prefix}vault {shown}");
        let started = Instant::now();
        let mut argv = vec!["vault".to_string(), "--embedded".to_string(), dir.display().to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let output = (self.run)(argv)?;
        for line in output.text.lines() {
            say!("     {line}");
        }
        say!("     ({:.2} s)", started.elapsed().as_secs_f64());
        Ok(output)
    }

    fn vault(&self, args: &[&str]) -> Result<Output, CliError> {
        self.vault_on(&self.home.clone(), args)
    }

    /// Runs `vault <args>` without printing it (for loading data and reading digests).
    fn quietly(&self, dir: &Path, args: &[&str]) -> Result<Output, CliError> {
        let mut argv = vec!["vault".to_string(), "--embedded".to_string(), dir.display().to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        (self.run)(argv)
    }

    /// The ledger's update count and state hash, as candid text.
    fn digest(&self, dir: &Path, app: &str) -> Result<String, CliError> {
        Ok(self.quietly(dir, &["embedded", "call", app, "digest"])?.text)
    }

    /// The vault's cycle balance on the IC in `dir`.
    fn vault_cycles(&self, dir: &Path, vault: &str) -> Result<u128, CliError> {
        let status = self.quietly(dir, &["embedded", "status"])?.json;
        let canister = status["canisters"].as_array().into_iter().flatten().find(|c| c["canister"] == vault);
        canister.and_then(|c| c["cycles"].as_u64().map(u128::from).or_else(|| c["cycles"].as_f64().map(|f| f as u128))).ok_or_else(|| CliError::Check(format!("{vault} is not on the IC in {}", dir.display())))
    }
}

fn check(ok: bool, what: &str) -> Result<(), CliError> {
    if ok {
        say!("   ✓ {what}");
        Ok(())
    } else {
        Err(CliError::Check(what.to_string()))
    }
}

fn text(value: &Value, key: &str) -> Result<String, CliError> {
    value[key].as_str().map(str::to_string).ok_or_else(|| CliError::Check(format!("the output has no `{key}`: {value}")))
}

fn number(value: &Value, key: &str) -> Result<u64, CliError> {
    value[key].as_u64().ok_or_else(|| CliError::Check(format!("the output has no number `{key}`: {value}")))
}

/// Runs the demo, every command of it through `run`.
pub fn exec(args: &Args, run: RunCommandLine) -> Result<Output, CliError> {
    let temporary;
    let root = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = TempDir::new()?;
            temporary.0.clone()
        }
    };
    let started = Instant::now();
    let mut demo = Demo { home: root.join("ic"), steps: 0, run };
    say!("canister-vault demo: every command below runs on an embedded IC kept in {}", demo.home.display());

    demo.step("Create an IC with a vault, and deploy a ledger app that trusts it");
    let init = demo.vault(&["embedded", "init"])?.json;
    let vault = text(&init, "vault")?;
    let cycles_at_start = demo.vault_cycles(&demo.home, &vault)?;
    let app = text(&demo.vault(&["embedded", "deploy", "--example", "ledger"])?.json, "canister")?;

    demo.step("Register the ledger: a snapshot every 6 hours, keeping the last 3 and one a day for a week");
    demo.vault(&["register", &app, "--every", "6h", "--keep-last", "3", "--keep-daily", "7"])?;

    demo.step(&format!("Load data: {BLOBS} blobs of {} and some accounts", size(BLOB_BYTES)));
    for key in 0..BLOBS {
        demo.quietly(&demo.home, &["embedded", "call", &app, "put_blob", &format!("({key} : nat64, {BLOB_BYTES} : nat64, {key} : nat8)")])?;
    }
    say!("   $ vault embedded call {app} put_blob '(KEY : nat64, {BLOB_BYTES} : nat64, KEY : nat8)'   (for KEY in 0..{BLOBS})");
    for account in 0..5u64 {
        demo.quietly(&demo.home, &["embedded", "call", &app, "mint", &format!("({account} : nat64, 1_000 : nat64)")])?;
    }
    demo.vault(&["embedded", "call", &app, "total", "()", "--query"])?;

    demo.step("A day passes: every 6 hours the ledger serves transfers, then the timer takes a snapshot");
    // The state each snapshot must hold: the ledger's digest just before the advance that took it.
    let mut digests = std::collections::BTreeMap::new();
    for quarter in 0..4u64 {
        demo.quietly(&demo.home, &["embedded", "call", &app, "transfer", &format!("({} : nat64, {} : nat64, {} : nat64)", quarter, quarter + 1, 10 * (quarter + 1))])?;
        let digest = demo.digest(&demo.home, &app)?;
        demo.vault(&["embedded", "advance", "6h"])?;
        let listed = demo.quietly(&demo.home, &["list", &app])?.json;
        let newest = listed.as_array().and_then(|l| l.last()).ok_or_else(|| CliError::Check("no snapshot after 6 hours".into()))?;
        digests.insert(number(newest, "id")?, digest);
    }
    check(digests.len() == 4, "the timer took a snapshot every 6 hours")?;
    let listed = demo.vault(&["list", &app])?.json;
    let snapshots = listed.as_array().cloned().unwrap_or_default();
    check(snapshots.len() == 3, "the retention policy kept the newest 3 (all of one day)")?;

    demo.step("Someone breaks the ledger: every account's balance moves to account 99");
    for account in 0..5u64 {
        let balance = demo.quietly(&demo.home, &["embedded", "call", &app, "balance", &format!("({account} : nat64)"), "--query"])?.text;
        let amount = balance.trim_matches(|c| c == '(' || c == ')' || c == ',').split(':').next().unwrap_or("0").trim().to_string();
        demo.quietly(&demo.home, &["embedded", "call", &app, "transfer", &format!("({account} : nat64, 99 : nat64, {amount} : nat64)")])?;
    }
    demo.vault(&["embedded", "call", &app, "balance", "(99 : nat64)", "--query"])?;
    let broken = demo.digest(&demo.home, &app)?;

    // The second-newest snapshot was taken after the third quarter's transfer.
    let good = &snapshots[snapshots.len() - 2];
    let good_id = number(good, "id")?;
    let good_digest = &digests[&good_id];
    demo.step(&format!("Restore snapshot #{good_id}, taken before the damage"));
    demo.vault(&["list", &app])?;
    let restored = demo.vault(&["restore", &app, &good_id.to_string()])?.json;
    check(restored["phase"] == "succeeded", "the restore job succeeded")?;
    let after = demo.digest(&demo.home, &app)?;
    check(after == *good_digest && after != broken, "the ledger's memory is byte for byte what it was when the snapshot was taken")?;
    demo.vault(&["embedded", "call", &app, "balance", "(99 : nat64)", "--query"])?;

    demo.step("Export the snapshot to a file, and verify the file offline");
    let file = root.join(format!("ledger-{good_id}.cvsnap"));
    let file_arg = file.display().to_string();
    let exported = demo.vault(&["export", &app, &good_id.to_string(), "-o", &file_arg])?.json;
    check(text(&exported, "sha256")? == text(good, "sha256")?, "the file carries the snapshot's manifest hash")?;
    demo.vault(&["verify", &file_arg])?;

    let elsewhere = root.join("other-ic");
    demo.step("On another IC, with another owner: a fresh vault and a fresh ledger import the file and restore from it");
    let other_vault = text(&demo.vault_on(&elsewhere, &["embedded", "init"])?.json, "vault")?;
    let clone = text(&demo.vault_on(&elsewhere, &["embedded", "deploy", "--example", "ledger"])?.json, "canister")?;
    demo.vault_on(&elsewhere, &["register", &clone, "--every", "never"])?;
    let imported = demo.vault_on(&elsewhere, &["import", &file_arg, "--app", &clone])?.json;
    let imported_id = number(&imported["snapshot"], "id")?;
    let restored = demo.vault_on(&elsewhere, &["restore", &clone, &imported_id.to_string()])?.json;
    check(restored["phase"] == "succeeded", "the clone's restore job succeeded")?;
    check(demo.digest(&elsewhere, &clone)? == *good_digest, "the clone on the other IC holds the very same ledger")?;

    demo.step("A canister without the library: the vault, as one of its controllers, backs it up through native snapshots");
    let plain = text(&demo.vault(&["embedded", "deploy", "--example", "plain", "--controller", &vault])?.json, "canister")?;
    for entry in ["kept on the heap", "lost on an upgrade", "unless backed up"] {
        demo.quietly(&demo.home, &["embedded", "call", &plain, "add", &format!("(\"{entry}\")")])?;
    }
    let kept = demo.digest(&demo.home, &plain)?;
    demo.vault(&["register", &plain, "--native", "--every", "1d", "--keep-last", "7"])?;
    let taken = demo.vault(&["snapshot", &plain])?.json;
    demo.vault(&["embedded", "call", &plain, "clear", "()"])?;
    let restored = demo.vault(&["restore", &plain, &number(&taken, "id")?.to_string()])?.json;
    check(restored["phase"] == "succeeded", "the native restore job succeeded")?;
    check(demo.digest(&demo.home, &plain)? == kept, "the canister's heap is back, taken and loaded as a native snapshot")?;

    demo.step("What it cost");
    demo.vault(&["embedded", "status"])?;
    let spent = cycles_at_start.saturating_sub(demo.vault_cycles(&demo.home, &vault)?);
    let spent_elsewhere = init::VAULT_CYCLES.saturating_sub(demo.vault_cycles(&elsewhere, &other_vault)?);
    say!(
        "   the vault spent {:.3} TC on {} snapshots and two restores; the other IC's vault {:.3} TC on the import and the clone",
        spent as f64 / 1e12,
        digests.len() + 1,
        spent_elsewhere as f64 / 1e12
    );
    let summary = format!("demo complete in {:.1} s", started.elapsed().as_secs_f64());
    Ok(Output { json: serde_json::json!({ "ok": true, "seconds": started.elapsed().as_secs_f64() }), text: format!("\n{summary}") })
}

use super::embedded::init;

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, CliError> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("canister-vault-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| CliError::Invalid(format!("creating {}: {e}", dir.display())))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
