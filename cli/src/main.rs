//! `vault`: the canister-vault command line.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match vault_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let json = cli.output.json;
    let result = vault_cli::execute(cli);
    let mut stdout = std::io::stdout().lock();
    let (printed, code) = match result {
        Ok(output) => (output.write(json, &mut stdout), ExitCode::SUCCESS),
        Err(e) => {
            let printed = if json { e.write_json(&mut stdout) } else { Ok(()) };
            let _ = writeln!(std::io::stderr(), "error: {e}");
            (printed, ExitCode::FAILURE)
        }
    };
    match printed {
        // A reader that stopped reading (`vault ... | head`) is no error: the command is done.
        Err(e) if e.kind() != ErrorKind::BrokenPipe => {
            let _ = writeln!(std::io::stderr(), "error: writing the output: {e}");
            ExitCode::FAILURE
        }
        _ => code,
    }
}
